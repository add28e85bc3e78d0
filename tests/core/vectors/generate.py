"""Write tests/core/vectors/fingerprint.json from the case inputs below and the connector's implementation.

Run `.venv/bin/python tests/core/vectors/generate.py` only when the documented encoding changes on
purpose (and bump the seed domain in docs/fingerprint.md); tests/core/test_vectors.py checks the committed
file against both the implementation and an independent re-implementation written from the docs.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.core.canonical import decimal_text, time_text
from connector.core.fingerprint import StoredReading, chain_seed, fingerprint_steps, seal_window
from connector.core.kinds import AttributeSpec
from connector.core.windows import split_into_windows, window_end

OUT = Path(__file__).with_name("fingerprint.json")
FIG16 = "urn:ngsi-ld:SMX:BBB6099"


def r(
    attr: str, at: str, value: Any, number: str | None, attr_type: str | None, unit: str | None = None
) -> dict:
    """A reading input as the vectors file spells it; `value` is any JSON value, stored as canonical text."""
    value_json = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return {
        "attr": attr,
        "type": attr_type,
        "observed_at": at,
        "value": value_json,
        "number": number,
        "unit": unit,
    }


CASES: list[dict[str, Any]] = [
    {
        "name": "figure16-legacy-one-reading",
        "about": "Seed 003 Figure 16: legacy NGSIv1 string value, attribute type W, default tenant.",
        "meter": {"tenant": "", "service_path": "/", "entity_id": FIG16},
        "window_length": 900,
        "attributes": {"P": {"kind": "power", "unit": "W"}},
        "readings": [r("P", "2019-03-18T16:13:45.275Z", "-84.891", "-84.891", "W", "W")],
    },
    {
        "name": "figure16-normalized-number",
        "about": "The same reading as an NGSIv2 normalized JSON number: the stored value text differs.",
        "meter": {"tenant": "", "service_path": "/", "entity_id": FIG16},
        "window_length": 900,
        "attributes": {"P": {"kind": "power", "unit": "W"}},
        "readings": [r("P", "2019-03-18T16:13:45.275Z", -84.891, "-84.891", "Number")],
    },
    {
        "name": "two-windows-leap-out-of-order",
        "about": "kW power and kWh register, text and JSON-object readings, listed out of order, a silent "
        "window between the two windows, a tenant and a service path.",
        "meter": {
            "tenant": "tk",
            "service_path": "/terni/district-4",
            "entity_id": "urn:ngsi-ld:SMX:AAA0001",
        },
        "window_length": 900,
        "attributes": {"P": {"kind": "power", "unit": "kW"}, "E": {"kind": "energy_register", "unit": "kWh"}},
        "readings": [
            r("P", "2019-03-18T16:01:00.000Z", "0.2", "0.2", "kW", "kW"),
            r("E", "2019-03-18T16:14:59.999999Z", "12.3456", "12.3456", "kWh", "kWh"),
            r("P", "2019-03-18T16:00:00.000Z", "0.1", "0.1", "kW", "kW"),
            r("status", "2019-03-18T16:00:30.5Z", 'on "line"\n', None, "Text"),
            r("E", "2019-03-18T16:00:00.000Z", "12.3400", "12.34", "kWh", "kWh"),
            r("P", "2019-03-18T16:14:00.000Z", "0.05", "0.05", "kW", "kW"),
            r(
                "location",
                "2019-03-18T16:00:00.000Z",
                {"type": "Point", "coordinates": [12.6, 42.56]},
                None,
                "geo:json",
            ),
            r("P", "2019-03-18T16:45:00Z", "1.5E+0", "1.5", "kW", "kW"),
            r("E", "2019-03-18T16:50:00Z", "12.4", "12.4", "kWh", "kWh"),
            r("P", "2019-03-18T16:59:59.999Z", "-0.25", "-0.25", "kW", "kW"),
        ],
    },
    {
        "name": "one-minute-boundaries-statistics",
        "about": "60 s windows; a reading exactly at 16:14:00 opens the next window; names needing care in "
        "JSON (dot, dollar, non-ASCII, quote); a mean that rounds half to even.",
        "meter": {"tenant": "t1", "service_path": "/", "entity_id": 'Room "1"/ü'},
        "window_length": 60,
        "attributes": {},
        "readings": [
            r("a.b", "2019-03-18T16:13:00Z", 0.000003, "0.000003", "Number"),
            r("a.b", "2019-03-18T16:13:59.999999Z", 0, "0", "Number"),
            r("$temp", "2019-03-18T16:13:30Z", "21.50", "21.50", "Number"),
            r("ü", "2019-03-18T16:14:00Z", 7, "7", None),
            r("$temp", "2019-03-18T16:14:00Z", "-3", "-3", "Number"),
        ],
    },
    {
        "name": "one-hour-text-only",
        "about": "3600 s window, only non-numeric readings: empty summary, no energy, still fingerprinted.",
        "meter": {"tenant": "", "service_path": "/", "entity_id": "m3"},
        "window_length": 3600,
        "attributes": {},
        "readings": [
            r("status", "2019-03-18T16:13:45.275Z", "on", None, "Text"),
            r("status", "2019-03-18T16:59:00Z", None, None, "Text"),
        ],
    },
]


def stored(reading: dict) -> StoredReading:
    """The StoredReading a vectors-file reading stands for."""
    return StoredReading(
        attr=reading["attr"],
        attr_type=reading["type"],
        observed_at=datetime.fromisoformat(reading["observed_at"]),
        value_json=reading["value"],
        number=reading["number"],
        unit=reading["unit"],
    )


def expected(case: dict[str, Any]) -> dict[str, Any]:
    """The seed and the closed windows of one case, as the implementation computes them."""
    specs = {name: AttributeSpec(**spec) for name, spec in case["attributes"].items()}
    seed = chain_seed(**case["meter"])
    prev, windows = seed, []
    for start, group in split_into_windows(map(stored, case["readings"]), case["window_length"]):
        w = seal_window(
            group,
            start,
            window_end(start, case["window_length"]),
            prev,
            lambda a: specs.get(a, AttributeSpec()),
        )
        windows.append(
            {
                "start": time_text(w.start),
                "end": time_text(w.end),
                "reading_count": w.reading_count,
                "prev_chain_hash": w.prev_chain_hash,
                "steps": [{"hashed": data.decode(), "hash": h} for data, h in fingerprint_steps(group, prev)],
                "fingerprint": w.fingerprint,
                "summary": w.summary,
                "energy_wh": None if w.energy_wh is None else decimal_text(w.energy_wh),
                "chain_hash": w.chain_hash,
            }
        )
        prev = w.chain_hash
    return {"seed": seed, "windows": windows}


def build() -> dict[str, Any]:
    """The whole vectors document."""
    return {
        "about": "Test vectors for docs/fingerprint.md: inputs and every expected hash.",
        "cases": [{**case, "expected": expected(case)} for case in CASES],
    }


def render() -> str:
    """The vectors document as the committed text."""
    return json.dumps(build(), ensure_ascii=False, indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
