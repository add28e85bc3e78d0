"""Fold consecutive windows into UTC hours or days (pure): energy summed, means weighted by count,
min of mins, max of maxes, first of the first window and last of the last. Exact decimal arithmetic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Context, Decimal, Inexact, Rounded
from fractions import Fraction
from typing import Any

from connector.core.canonical import decimal_text, round_places

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}

# Sums and products of decimals are exact with enough digits; C decimal only spends the digits it needs,
# and a result that would still need rounding raises instead of drifting (folding only adds and multiplies;
# the one division, for the mean, is done once per bucket on a Fraction).
EXACT = Context(prec=10_000, traps=[Inexact, Rounded])


def bucket_start(moment: datetime, size: str) -> datetime:
    """The start of the UTC hour or day holding `moment`."""
    if size == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class _Attr:
    first: dict[str, Any]
    count: int = 0
    total: Decimal = Decimal(0)  # sum of mean * count, i.e. the sum of the values
    low: Decimal | None = None
    high: Decimal | None = None
    last: dict[str, Any] = field(default_factory=dict)
    energy: Decimal | None = None

    def add(self, s: dict[str, Any]) -> None:
        count = int(s["count"])
        self.count += count
        self.total = EXACT.add(self.total, EXACT.multiply(Decimal(s["mean"]), count))
        self.low = _pick(min, self.low, Decimal(s["min"]))
        self.high = _pick(max, self.high, Decimal(s["max"]))
        self.last = s
        if "energy_wh" in s:
            self.energy = EXACT.add(self.energy or Decimal(0), Decimal(s["energy_wh"]))

    def as_dict(self) -> dict[str, Any]:
        out = {
            "attr": self.first["attr"],
            "type": self.first.get("type"),
            "kind": self.first.get("kind"),
            "count": self.count,
            "min": decimal_text(self.low) if self.low is not None else None,
            "max": decimal_text(self.high) if self.high is not None else None,
            "mean": decimal_text(round_places(Fraction(self.total) / self.count)) if self.count else None,
            "first": self.first.get("first"),
            "first_at": self.first.get("first_at"),
            "last": self.last.get("last"),
            "last_at": self.last.get("last_at"),
        }
        if self.energy is not None:
            out["energy_wh"] = decimal_text(round_places(Fraction(self.energy)))
        return out


def _pick(choose: Any, current: Decimal | None, new: Decimal) -> Decimal:
    return new if current is None else choose(current, new)


@dataclass
class Bucket:
    """The fold of the windows of one hour or day."""

    start: datetime
    end: datetime
    windows: int = 0
    readings: int = 0
    energy: Decimal | None = None
    attrs: dict[str, _Attr] = field(default_factory=dict)

    def add(self, reading_count: int, energy_wh: str | None, summary: list[dict[str, Any]]) -> None:
        self.windows += 1
        self.readings += reading_count
        if energy_wh is not None:
            self.energy = EXACT.add(self.energy or Decimal(0), Decimal(energy_wh))
        for s in summary:
            self.attrs.setdefault(s["attr"], _Attr(first=s)).add(s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "windows": self.windows,
            "readings": self.readings,
            "energyWh": decimal_text(self.energy) if self.energy is not None else None,
            "attributes": [self.attrs[name].as_dict() for name in sorted(self.attrs)],
        }


FoldItem = tuple[datetime, int, "str | None", list[dict[str, Any]]]


def fold(windows: Iterable[FoldItem], size: str) -> list[Bucket]:
    """Buckets of `size` (hour|day) over windows `(start, reading_count, energy_wh, summary)` given oldest
    first; only buckets holding at least one window appear."""
    buckets: list[Bucket] = []
    for start, reading_count, energy_wh, summary in windows:
        bucket = bucket_start(start, size)
        if not buckets or buckets[-1].start != bucket:
            buckets.append(Bucket(bucket, bucket + BUCKETS[size]))
        buckets[-1].add(reading_count, energy_wh, summary)
    return buckets
