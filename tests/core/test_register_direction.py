"""An import-only register's energy is negative (the seeds' convention: consumption is negative)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from connector.core.aggregate import summarize, window_energy_wh
from connector.core.kinds import AttributeSpec
from connector.core.readings import StoredReading

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def register(kwh: str, minute: int) -> StoredReading:
    return StoredReading("E", "Number", T0 + timedelta(minutes=minute), kwh, Decimal(kwh), None)


@pytest.mark.parametrize(("direction", "expected"), [("import", "-250"), ("export", "250"), ("net", "250")])
def test_register_direction_sets_the_sign_of_its_energy(direction, expected):
    """1.000 -> 1.250 kWh is 250 Wh drawn (import: -250) or fed in (export/net: +250)."""
    spec = AttributeSpec(kind="energy_register", unit="kWh", direction=direction)
    summary = summarize([register("1.000", 0), register("1.250", 10)], lambda _attr: spec)
    assert summary[0]["energy_wh"] == expected
    assert window_energy_wh(summary) == Decimal(expected)
