"""Small builders for the core tests: readings at offsets from a fixed UTC instant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from connector.core.kinds import AttributeSpec
from connector.core.readings import StoredReading

T0 = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)  # a 900 s (and 60 s, 3600 s) window boundary
SEED = "0" * 64


def rd(
    attr: str,
    seconds: float,
    value: str | int | None,
    *,
    attr_type: str | None = "Number",
    unit: str | None = None,
    base: datetime = T0,
) -> StoredReading:
    """A reading of `attr` at `base + seconds`; a numeric string or int value is also its number."""
    number = None
    if isinstance(value, int) or (isinstance(value, str) and _is_number(value)):
        number = Decimal(str(value))
    return StoredReading(
        attr=attr,
        attr_type=attr_type,
        observed_at=base + timedelta(seconds=seconds),
        value_json=json.dumps(value, ensure_ascii=False, separators=(",", ":")),
        number=number,
        unit=unit,
    )


def _is_number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except ArithmeticError:
        return False


def specs(**by_attr: tuple[str, str]):
    """A spec_for callable: `specs(P=("power", "W"))`; unlisted attributes get statistics only."""
    table = {name: AttributeSpec(kind=kind, unit=unit) for name, (kind, unit) in by_attr.items()}
    return lambda attr: table.get(attr, AttributeSpec())
