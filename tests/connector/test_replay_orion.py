"""bench/replay_orion: a folder of recorded cases is posted to a connector on embedded defaults and every
numeric value is found through the query API (the project's own cases, written here)."""

from __future__ import annotations

import json
from decimal import Decimal

from bench.replay_orion import classify, main, numeric_values

LEGACY = {"subscriptionId": "s", "originator": "localhost", "contextResponses": [
    {"contextElement": {"id": "E1", "type": "T", "isPattern": "false", "attributes": [
        {"name": "A", "type": "", "value": "12.5"}]}, "statusCode": {"code": "200"}},
    {"contextElement": {"id": "E2", "type": "T", "isPattern": "false", "attributes": [
        {"name": "A", "type": "", "value": "7"}]}, "statusCode": {"code": "200"}}]}  # fmt: skip
WHEN = "2024-01-01T00:00:00Z"
LD = {
    "id": "urn:n:1", "type": "Notification", "subscriptionId": "urn:s:1", "notifiedAt": WHEN,
    "data": [{"id": "urn:w:1", "type": "W", "temperature": {"type": "Property", "value": 21.5},
              "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": WHEN}}}],
}  # fmt: skip


def normalized(value: object) -> dict:
    meta = {"TimeInstant": {"value": WHEN}}
    return {
        "subscriptionId": "s",
        "data": [{"id": "m", "type": "T", "P": {"value": value, "metadata": meta}}],
    }


def case(name: str, body: object, headers: dict[str, str], raw: str | None = None) -> dict:
    return {"case": name, "family": "test", "url": "http://localhost:1028/notify?subscriptionId=s",
            "json": raw is None, "headers": headers, "body": body, "raw_body": raw}  # fmt: skip


def test_replay_posts_every_case_and_finds_every_value(tmp_path, capsys):
    """Legacy with two paths, NGSI-LD typed DateTime, a conflict (found among the conflicts) and a
    text/plain custom case (415)."""
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    cases = [
        case("1", LEGACY, {**json_type, "Fiware-Service": "t1", "Fiware-ServicePath": "/a,/b"}),
        case("2", LD, {"Content-Type": "application/json", "NGSILD-Tenant": "ld"}),
        case("3", normalized(1), {**json_type, "Ngsiv2-AttrsFormat": "normalized"}),
        case("4", normalized(2), {**json_type, "Ngsiv2-AttrsFormat": "normalized"}),
        case("5", None, {"Content-Type": "text/plain"}, raw="The temperature is 34 degrees"),
    ]
    for c in cases:
        (tmp_path / f"{c['case']}.json").write_text(json.dumps(c))
    assert main([str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["statuses"] == {"2xx": 4, "4xx": 1, "5xx": 0}
    assert report["values"] == {"checked": 5, "found": 5, "rejected": 0, "missing": 0}
    assert numeric_values(cases[0]) == [
        ("t1", "/a", "E1", "A", Decimal("12.5")),
        ("t1", "/b", "E2", "A", Decimal("7")),
    ]


def test_a_rejection_counts_only_for_the_entity_it_names():
    """A value absent from the store is "rejected" only when its own entity's attribute is listed; another
    entity's rejected attribute of the same name leaves it missing."""
    stored = {("t", "/", "E1", "A"): set(), ("t", "/", "E2", "A"): set(), ("t", "/", "E3", "A"): {Decimal(3)}}
    listed = {("E1", "data[0].A")}
    expected = [
        ("c", ("t", "/", "E1", "A", Decimal(1)), listed),
        ("c", ("t", "/", "E2", "A", Decimal(2)), listed),
        ("c", ("t", "/", "E3", "A", Decimal(3)), listed),
    ]
    found, rejected, missing = classify(expected, stored)
    assert (found, rejected) == (1, 1)
    assert missing == [{"case": "c", "tenant": "t", "path": "/", "entity": "E2", "attr": "A", "number": "2"}]
