"""Folding windows into hours and days is exact: sums and weighted means equal a Fraction reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from connector.api.folding import fold
from connector.core.canonical import decimal_text, round_places

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _summary(mean: str, count: int, energy: str) -> list[dict[str, str | int]]:
    s = {"attr": "P", "kind": "power", "count": count, "mean": mean, "min": mean, "max": mean}
    return [{**s, "energy_wh": energy, "first": mean, "last": mean}]


@pytest.mark.parametrize(
    "values",
    [
        ["0.000001", "0.000002", "-0.000003", "1"],
        ["12345678901234567890123456789.123456", "0.000001", "-99999999999999999999999999999.999999"],
        ["1" + "0" * 60, "-0.000001", "3.5", "2.25"],
    ],
)
def test_fold_sums_and_means_are_exact(values: list[str]) -> None:
    """Energy is the exact sum and the mean the count-weighted mean, rounded once, for values of any size."""
    items = [(T0 + i * timedelta(minutes=15), 15, v, _summary(v, 15 - i, v)) for i, v in enumerate(values)]
    (bucket,) = fold(items, "hour")
    out = bucket.as_dict()
    exact = sum((Fraction(v) for v in values), Fraction(0))
    assert out["energyWh"] == decimal_text(round_places(exact, places=1000))
    weights = [15 - i for i in range(len(values))]
    mean = sum(Fraction(v) * w for v, w in zip(values, weights, strict=True)) / sum(weights)
    (p,) = out["attributes"]
    assert p["mean"] == decimal_text(round_places(mean))
    assert p["energy_wh"] == decimal_text(round_places(exact))
    assert p["count"] == sum(weights) and out["windows"] == len(values)
