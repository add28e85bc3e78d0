"""The stored form of one reading, as the window closer and the verifier see it (plain data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal


@dataclass(frozen=True)
class StoredReading:
    """One raw attribute value of one meter as it sits in the off-chain store.

    `value_json` is the canonical JSON text of the value as received (`"-84.891"` for a legacy string,
    `-84.891` for a JSON number); `number` is the value as a decimal when it is numeric, else None.
    `observed_at` must be timezone-aware; it is normalized to UTC. A `number` given as decimal text (as the
    store keeps it) is converted to Decimal.
    """

    attr: str
    attr_type: str | None
    observed_at: datetime
    value_json: str
    number: Decimal | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None or self.observed_at.utcoffset() is None:
            raise ValueError(f"reading {self.attr!r}: observed_at must be timezone-aware, not naive")
        object.__setattr__(self, "observed_at", self.observed_at.astimezone(UTC))
        number = self.number
        if isinstance(number, str):
            number = Decimal(number)
            object.__setattr__(self, "number", number)
        if number is not None and not number.is_finite():
            raise ValueError(f"reading {self.attr!r}: number must be finite, got {number}")

    @property
    def is_numeric(self) -> bool:
        """True when the reading carries a number and is therefore aggregated."""
        return self.number is not None
