"""Issue 19: the CSV export neutralises cells a spreadsheet would run as formulas (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from connector.api.present import csv_cell

CSV = {"Fiware-Service": "tk", "Accept": "text/csv"}


def hostile_notification() -> str:
    """Attributes whose names, types, units and values start with formula characters (a string value is
    exported as its JSON, which starts with a double quote)."""
    meta = {"TimeInstant": {"type": "DateTime", "value": "2024-03-01T00:01:00Z"}}
    attrs = {
        "=HYPERLINK(1)": {
            "type": "+Type",
            "value": "=cmd|' /C calc'!A0",
            "metadata": {**meta, "unitCode": {"value": "-2+3"}},
        },
        "@SUM": {"type": "-Type", "value": -84.891, "metadata": {**meta, "unitCode": {"value": "@U"}}},
    }
    return json.dumps({"subscriptionId": "5f0a", "data": [{"id": "urn:csv:1", "type": "SMX", **attrs}]})


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-84.891", "-84.891"),
        ("+1e5", "+1e5"),
        ("P", "P"),
        ('"=quoted json"', '"=quoted json"'),
    ],
)
def test_csv_cell(raw, cell):
    """Formula starters get a leading quote; plain signed numbers and other text stay as they are."""
    assert csv_cell(raw) == cell


def test_csv_export_neutralises_names_types_units_and_values(client):
    """No cell of an exported reading starts with a formula character, numbers excepted."""
    body = hostile_notification()
    answer = client.post(
        "/notify", data=body, headers={"Content-Type": "application/json", "Fiware-Service": "tk"}
    )
    assert answer.status_code in (200, 204) and b'"accepted":2' in answer.data.replace(b" ", b""), answer.data
    exported = client.get("/v1/meters/urn:csv:1/readings", headers=CSV).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(exported)))[1:]
    cells = [cell for row in rows for cell in row]
    # Tab and CR never reach the store (ingest refuses control characters); csv_cell covers them above.
    assert {"'=HYPERLINK(1)", "'+Type", "'-2+3", "'@SUM", "'-Type", "'@U"} <= set(cells)
    assert "-84.891" in cells
    unsafe = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and c != "-84.891"]
    assert unsafe == []
