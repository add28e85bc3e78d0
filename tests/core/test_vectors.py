"""Committed test vectors: the implementation reproduces them, and so does a re-implementation from the doc.

`Auditor` below is written from docs/fingerprint.md alone, with only the standard library (hashlib, json,
datetime, fractions) and no import from `connector`: if it agrees with every expected hash, the document
is precise enough to recompute fingerprints and chain hashes in another language.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

VECTORS_PATH = Path(__file__).parent / "vectors" / "fingerprint.json"
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
CASES = VECTORS["cases"]


class Auditor:
    """An independent, minimal implementation of docs/fingerprint.md."""

    EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
    POWER = {"": 1, "W": 1, "kW": 1000, "MW": 10**6, "WTT": 1, "KWT": 1000, "MAW": 10**6}
    REGISTER = {"": 1, "Wh": 1, "kWh": 1000, "MWh": 10**6, "WHR": 1, "KWH": 1000, "MWH": 10**6}

    @staticmethod
    def canonical(obj: Any) -> bytes:
        """Section 'Canonical JSON' of the doc."""
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def sha(cls, obj: Any) -> str:
        return hashlib.sha256(cls.canonical(obj)).hexdigest()

    @staticmethod
    def dec(x: Fraction) -> str:
        """Section 'Decimal text': plain notation, no trailing fractional zeros, zero is "0"."""
        sign, x, places = "-" if x < 0 else "", abs(x), 0
        while x.denominator != 1:
            x, places = x * 10, places + 1
        digits = str(x.numerator).rjust(places + 1, "0")
        whole, frac = digits[: len(digits) - places], digits[len(digits) - places :].rstrip("0")
        text = whole + ("." + frac if frac else "")
        return "0" if text == "0" else sign + text

    @staticmethod
    def round6(x: Fraction) -> Fraction:
        """Round to 6 decimal places, ties to even."""
        scaled = x * 10**6
        floor = scaled.numerator // scaled.denominator
        rest = scaled - floor
        if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
            floor += 1
        return Fraction(floor, 10**6)

    @classmethod
    def micros(cls, iso: str) -> int:
        return (datetime.fromisoformat(iso) - cls.EPOCH) // timedelta(microseconds=1)

    @classmethod
    def time(cls, us: int) -> str:
        return (cls.EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @classmethod
    def record(cls, r: dict, prev: str) -> dict:
        number = None if r["number"] is None else cls.dec(Fraction(r["number"]))
        return {
            "attr": r["attr"],
            "number": number,
            "observed_at": cls.time(r["us"]),
            "prev": prev,
            "type": r["type"],
            "unit": r["unit"],
            "value": r["value"],
        }

    @classmethod
    def fingerprint(cls, readings: list[dict], seed: str) -> tuple[str, list[dict]]:
        ordered = sorted(readings, key=lambda r: (r["us"], r["attr"], cls.canonical(cls.record(r, ""))))
        h, steps = seed, []
        for r in ordered:
            data = cls.canonical(cls.record(r, h))
            h = hashlib.sha256(data).hexdigest()
            steps.append({"hashed": data.decode("utf-8"), "hash": h})
        return h, steps

    @classmethod
    def energy(cls, kind: str, unit: str, rs: list[dict], xs: list[Fraction]) -> Fraction:
        if kind == "energy_register":
            return (xs[-1] - xs[0]) * cls.REGISTER[unit]
        total = Fraction(0)
        for i in range(1, len(xs)):
            total += (xs[i - 1] + xs[i]) * (rs[i]["us"] - rs[i - 1]["us"]) / 2
        return total * cls.POWER[unit] / 3_600_000_000

    @classmethod
    def summary(cls, readings: list[dict], attributes: dict) -> list[dict]:
        out = []
        for attr in sorted({r["attr"] for r in readings if r["number"] is not None}):
            numeric = (r for r in readings if r["attr"] == attr and r["number"] is not None)
            rs = sorted(numeric, key=lambda r: r["us"])
            xs = [Fraction(r["number"]) for r in rs]
            spec = attributes.get(attr, {"kind": "stats", "unit": ""})
            s = {
                "attr": attr,
                "type": rs[0]["type"],
                "kind": spec["kind"],
                "count": len(rs),
                "min": cls.dec(min(xs)),
                "max": cls.dec(max(xs)),
                "mean": cls.dec(cls.round6(sum(xs, Fraction(0)) / len(xs))),
                "first": cls.dec(xs[0]),
                "first_at": cls.time(rs[0]["us"]),
                "last": cls.dec(xs[-1]),
                "last_at": cls.time(rs[-1]["us"]),
            }
            if spec["kind"] != "stats":
                s["energy_wh"] = cls.dec(cls.round6(cls.energy(spec["kind"], spec["unit"], rs, xs)))
            out.append(s)
        return out

    @classmethod
    def window_energy(cls, summary: list[dict]) -> str | None:
        for kind in ("energy_register", "power"):
            values = [Fraction(s["energy_wh"]) for s in summary if s["kind"] == kind]
            if values:
                return cls.dec(sum(values, Fraction(0)))
        return None

    @classmethod
    def run(cls, case: dict) -> dict:
        """Seed and every window of one case, from its inputs."""
        seed = cls.sha({"domain": "smartmeter-connector/v1", **case["meter"]})
        length_us = case["window_length"] * 10**6
        readings = [{**r, "us": cls.micros(r["observed_at"])} for r in case["readings"]]
        starts = sorted({r["us"] - r["us"] % length_us for r in readings})
        prev, windows = seed, []
        for start in starts:
            inside = [r for r in readings if start <= r["us"] < start + length_us]
            fp, steps = cls.fingerprint(inside, prev)
            summary = cls.summary(inside, case["attributes"])
            bounds = {"start": cls.time(start), "end": cls.time(start + length_us)}
            chained = cls.sha({**bounds, "fingerprint": fp, "prev": prev, "summary": summary})
            windows.append(
                {
                    **bounds,
                    "reading_count": len(inside),
                    "prev_chain_hash": prev,
                    "steps": steps,
                    "fingerprint": fp,
                    "summary": summary,
                    "energy_wh": cls.window_energy(summary),
                    "chain_hash": chained,
                }
            )
            prev = chained
        return {"seed": seed, "windows": windows}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_auditor_reimplementation_matches_vectors(case: dict) -> None:
    """A re-implementation from docs/fingerprint.md alone reproduces every expected value."""
    assert Auditor.run(case) == case["expected"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_implementation_matches_vectors(case: dict) -> None:
    """The connector's seal_window chain reproduces every expected value of the committed vectors."""
    from .vectors.generate import expected

    assert expected(case) == case["expected"]


def test_vectors_file_is_what_the_generator_writes() -> None:
    """The committed file equals the generator's output, so inputs and expectations cannot drift apart."""
    from .vectors.generate import render

    assert VECTORS_PATH.read_text(encoding="utf-8") == render()


def test_vectors_cover_the_required_situations() -> None:
    """The vectors include Figure 16's reading, several windows, 60/900/3600 s and text-only windows."""
    names = {c["name"] for c in CASES}
    assert {"figure16-legacy-one-reading", "two-windows-leap-out-of-order", "one-hour-text-only"} <= names
    assert {c["window_length"] for c in CASES} == {60, 900, 3600}
    fig16 = next(c for c in CASES if c["name"] == "figure16-legacy-one-reading")
    assert fig16["readings"][0]["value"] == '"-84.891"'
    assert fig16["expected"]["windows"][0]["fingerprint"] == (
        "d9a1a45c403915a72a73ae7f9c9d2c441680c9dfbd82e1c95cc59b601195a811"
    )


def test_auditor_detects_a_tampered_reading() -> None:
    """Changing one stored value by a thousandth makes the recomputed chain hash differ from the vector."""
    case = json.loads(json.dumps(CASES[0]))
    case["readings"][0]["value"] = '"-84.890"'
    case["readings"][0]["number"] = "-84.890"
    assert Auditor.run(case)["windows"][0]["chain_hash"] != CASES[0]["expected"]["windows"][0]["chain_hash"]
