"""Store rows as the query API's JSON objects (plain dicts the response schemas dump)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import orjson
from flask import Response
from sqlalchemy import Row

from connector.ledger.metadata import MetadataError, transfer_metadata


def meter_summary(m: Any) -> dict[str, Any]:
    """The public face of a meter row: identity and ledger identity (no key material but the public key)."""
    return {
        "entityId": m.entity_id,
        "entityType": m.entity_type,
        "servicePath": m.service_path,
        "assetId": m.asset_id,
        "publicKey": m.public_key,
    }


def meter_detail(m: Any, counts: dict[str, Any]) -> dict[str, Any]:
    """A meter row with its counts, first/last window and CREATE transaction id."""
    return {
        **meter_summary(m),
        "serialNumber": m.serial_number,
        "manufacturer": m.manufacturer,
        "firstSeen": m.first_seen,
        **counts,
    }


def reading(r: Any) -> dict[str, Any]:
    """One raw reading; `value` is the value as received (parsed from its canonical JSON)."""
    return {
        "attr": r.attr,
        "attrType": r.attr_type,
        "observedAt": r.observed_at,
        "receivedAt": r.received_at,
        "timeSource": r.time_source,
        "value": _value(r.value_json),
        "number": r.number,
        "unit": r.unit,
        "windowStart": r.window_start,
        "late": bool(r.late),
    }


def _value(text: str) -> Any:
    # The store keeps canonical JSON; text that no longer parses (a damaged row) is shown as it is.
    try:
        return json.loads(text)
    except ValueError:
        return text


CSV_COLUMNS = (
    "attr",
    "attr_type",
    "observed_at",
    "received_at",
    "time_source",
    "value_json",
    "number",
    "unit",
    "window_start",
    "late",
)


def reading_csv_row(r: Row[Any]) -> list[str]:
    """One reading as a CSV row (CSV_COLUMNS); times ISO 8601 UTC, the value as its canonical JSON; every
    cell passed through `csv_cell`, so none is read as a formula by a spreadsheet."""
    cells = [
        r.attr,
        r.attr_type or "",
        r.observed_at.isoformat(),
        r.received_at.isoformat(),
        r.time_source,
        r.value_json,
        r.number if r.number is not None else "",
        r.unit or "",
        r.window_start.isoformat(),
        "true" if r.late else "false",
    ]
    return [csv_cell(c) for c in cells]


# OWASP "CSV Injection": a cell starting with one of these is run as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> str:
    """`value` as a CSV cell that a spreadsheet shows as text: a cell starting with =, +, -, @, tab or CR
    gets a leading `'` (OWASP), except a plain signed number such as -84.891, which no spreadsheet runs."""
    text = str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def history_item(row: Row[Any], metadata: Any) -> dict[str, Any]:
    """One confirmed window of the local index."""
    return {
        "start": row.start,
        "end": row.end,
        "txId": row.tx_id,
        "blockHeight": row.block_height,
        "metadata": metadata,
    }


def stored_metadata(row: Row[Any], meter: Any, load_window: Any) -> Any:
    """The TRANSFER metadata of an index row: from the signed transaction kept in the outbox (its JSON text
    spliced in as an orjson.Fragment when the transaction has the ledger writer's serialized form, else
    parsed), or rebuilt from the window row (`load_window()`) with the ledger writer's own function."""
    if row.tx_json:
        text = transfer_metadata_text(row.tx_json)
        if text is not None:
            return orjson.Fragment(text)
        try:
            return orjson.loads(row.tx_json).get("metadata")
        except (orjson.JSONDecodeError, AttributeError):
            pass
    try:
        return transfer_metadata(meter, load_window())
    except MetadataError:
        return None


_HEAD, _OPERATION, _TAIL = '{"asset":{"id":"', ',"operation":"TRANSFER","outputs":[', '],"version":"2.0"}'
_KEY = '"metadata":'


def transfer_metadata_text(tx_json: str) -> str | None:
    """The metadata value of a TRANSFER as serialized by the ledger writer (sorted keys, no spaces), cut from
    the text without parsing it; None when the text does not have that form (the caller parses it then).

    In that form the top-level keys come as asset, id, inputs, metadata, operation, outputs, version. The
    first structural `"metadata":` is the top-level key, since asset ({"id"}) and inputs hold no such key
    and a quote inside a string is always escaped; `,"operation":"TRANSFER","outputs":[` last occurs at
    the top level, since outputs and version after it hold no such key. So the text between is exactly
    the metadata value: valid JSON, because the whole text was written by a JSON encoder.
    """
    if not (tx_json.startswith(_HEAD) and tx_json.endswith(_TAIL)):
        return None
    start = tx_json.find(_KEY) + len(_KEY)
    end = tx_json.rfind(_OPERATION)
    if start < len(_KEY) or end < start or tx_json[start] not in "{n":
        return None
    return tx_json[start:end]


def json_response(body: dict[str, Any]) -> Response:
    """`body` (plain dicts, lists, str, int, float, None and aware datetimes) as a JSON answer.

    Routes whose bodies are large return this instead of letting flask-smorest dump them through
    marshmallow: they build the body to the documented schema already, and times come out as isoformat(),
    as marshmallow's DateTime writes them; only the encoding is faster. orjson refuses integers beyond 64
    bits (a raw reading's value may be one), so those bodies take the standard library's encoder.
    """
    try:
        data = orjson.dumps(body)
    except orjson.JSONEncodeError:
        data = json.dumps(body, default=_isoformat, ensure_ascii=False).encode()
    return Response(data, mimetype="application/json")


def _isoformat(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
