"""Per-attribute summaries of one window's readings, and the energy they imply.

Arithmetic is exact (rational numbers); the two derived values, `mean` and `energy_wh`, are rounded once at
the end to 6 decimal places with ties to even. Observed values (`min`, `max`, `first`, `last`) are exact.
Non-numeric readings are not summarized. The rules are written out in docs/fingerprint.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, Inexact, Overflow, Rounded, localcontext
from fractions import Fraction
from typing import Any

from connector.core.canonical import MEAN_PLACES, decimal_text, round_places, round_ratio, time_text
from connector.core.kinds import ATTRIBUTE_KINDS, AttributeSpec
from connector.core.readings import StoredReading

ENERGY_KINDS = ("power", "energy_register")

# Unit -> factor to W (power) or Wh (register). Exact spellings only: "mW" and "MW" must not be confused.
# The three-letter forms are the UN/CEFACT codes NGSI-LD uses in unitCode. "" means the base unit.
POWER_UNITS = {"": 1, "W": 1, "kW": 1000, "MW": 10**6, "WTT": 1, "KWT": 1000, "MAW": 10**6}
REGISTER_UNITS = {"": 1, "Wh": 1, "kWh": 1000, "MWh": 10**6, "WHR": 1, "KWH": 1000, "MWH": 10**6}

_US_PER_HOUR = 3_600_000_000
_MICROSECOND = timedelta(microseconds=1)


class AggregationError(ValueError):
    """An attribute's configuration cannot be applied (unknown kind or unit)."""


def unit_factor(spec: AttributeSpec) -> int:
    """The factor that turns the spec's unit into W (power) or Wh (register); 1 for statistics only."""
    if spec.kind not in ATTRIBUTE_KINDS:
        raise AggregationError(f"unknown attribute kind {spec.kind!r}; expected one of {ATTRIBUTE_KINDS}")
    if spec.kind == "stats":
        return 1
    units = POWER_UNITS if spec.kind == "power" else REGISTER_UNITS
    if spec.unit not in units:
        raise AggregationError(
            f"unit {spec.unit!r} is not valid for kind {spec.kind}; expected one of {sorted(units)}"
        )
    return units[spec.unit]


def _ordered(readings: Iterable[StoredReading]) -> list[StoredReading]:
    # value_json breaks ties only if a caller passes two readings of one attribute at one instant,
    # which the store's unique key forbids; it keeps the result independent of input order anyway.
    return sorted(readings, key=lambda r: (r.observed_at, r.value_json, r.attr_type or "", r.unit or ""))


def _number(r: StoredReading) -> Decimal:
    assert r.number is not None
    return r.number


def power_energy_wh(readings: Sequence[StoredReading], factor: int) -> Fraction:
    """Trapezoidal integral of power over consecutive readings (already ordered by time), in Wh, exact.

    Only the span from the first to the last reading counts; one reading gives 0.
    """
    return _power_energy(*_columns(readings), factor)


def _columns(readings: Sequence[StoredReading]) -> tuple[list[Decimal], list[datetime]]:
    return [_number(r) for r in readings], [r.observed_at for r in readings]


def _power_energy(numbers: Sequence[Decimal], times: Sequence[datetime], factor: int) -> Fraction:
    try:
        # The sum of (a + b) * dt in exact decimal arithmetic, divided once: the same rational number as
        # summing the halves as fractions, at a fifth of the cost.
        return Fraction(_doubled_trapezoid(numbers, times)) * factor / (2 * _US_PER_HOUR)
    except (Inexact, Rounded, Overflow):
        pass  # beyond the exact context's digits: rational arithmetic, slower but without a limit
    total = Fraction(0)
    for a, b, ta, tb in zip(numbers, numbers[1:], times, times[1:], strict=False):
        dt_us = (tb - ta) // _MICROSECOND
        total += (Fraction(a) + Fraction(b)) * dt_us / 2
    return total * factor / _US_PER_HOUR


def _power_energy_rounded(numbers: Sequence[Decimal], times: Sequence[datetime], factor: int) -> Decimal:
    """`round_places(power_energy_wh(...))`, rounded from the exact decimal sum's integer ratio where the
    exact context has the digits."""
    try:
        numerator, denominator = _doubled_trapezoid(numbers, times).as_integer_ratio()
    except (Inexact, Rounded, Overflow):
        return round_places(_power_energy(numbers, times, factor))
    return round_ratio(numerator * factor, denominator * 2 * _US_PER_HOUR)


def _doubled_trapezoid(numbers: Sequence[Decimal], times: Sequence[datetime]) -> Decimal:
    """The sum of (a + b) * dt (dt in microseconds) over consecutive readings, in the exact context."""
    with localcontext(_EXACT):
        # The context's arithmetic through the operators (C decimal reads it once per operation): the same
        # exact values as _EXACT.add and _EXACT.multiply, without a Python call per term.
        return sum(
            (
                (a + b) * ((tb - ta) // _MICROSECOND)
                for a, b, ta, tb in zip(numbers, numbers[1:], times, times[1:], strict=False)
            ),
            Decimal(0),
        )


# Sums and products of decimals are exact when the context has the digits; C decimal spends only the digits
# a result needs, and one that would still need rounding raises (the callers then use Fraction instead).
_EXACT = Context(prec=1_000, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, Rounded, Overflow])


def _exact_sum(terms: Iterable[Decimal]) -> Decimal:
    values = list(terms)  # made in the caller's context (the exact one does not trap InvalidOperation)
    with localcontext(_EXACT):
        return sum(values, Decimal(0))


def _mean_rounded(numbers: list[Decimal]) -> Decimal:
    """The mean of `numbers` rounded once to MEAN_PLACES, from the exact decimal sum where it has one."""
    try:
        numerator, denominator = _exact_sum(numbers).as_integer_ratio()
    except (Inexact, Rounded, Overflow):
        return round_places(sum(map(Fraction, numbers), Fraction(0)) / len(numbers))
    return round_ratio(numerator, denominator * len(numbers))


def register_energy_wh(readings: Sequence[StoredReading], factor: int) -> Fraction:
    """Register delta `last - first` (readings ordered by time) in Wh, exact; negative after a reset."""
    return _register_delta(_number(readings[0]), _number(readings[-1]), factor)


def _register_delta(first: Decimal, last: Decimal, factor: int) -> Fraction:
    return (Fraction(last) - Fraction(first)) * factor


def attribute_summary(
    attr: str,
    attr_type: str | None,
    numbers: list[Decimal],
    times: list[datetime],
    spec: AttributeSpec,
    first_at: str,
    last_at: str,
) -> dict[str, Any]:
    """What `summarize` gives for one attribute, from its readings' numbers and times (ordered by time, at
    least one), the first one's type and the first and last time as `time_text` writes them."""
    factor = unit_factor(spec)
    summary: dict[str, Any] = {
        "attr": attr,
        "type": attr_type,
        "kind": spec.kind,
        "count": len(numbers),
        "min": decimal_text(min(numbers)),
        "max": decimal_text(max(numbers)),
        "mean": decimal_text(_mean_rounded(numbers)),
        "first": decimal_text(numbers[0]),
        "first_at": first_at,
        "last": decimal_text(numbers[-1]),
        "last_at": last_at,
    }
    if spec.kind == "power":
        summary["energy_wh"] = decimal_text(_power_energy_rounded(numbers, times, factor))
    elif spec.kind == "energy_register":
        # An import-only register counts what was drawn from the grid: negative in the seeds' convention.
        sign = -1 if spec.direction == "import" else 1
        delta = _register_delta(numbers[0], numbers[-1], factor)
        summary["energy_wh"] = decimal_text(round_places(sign * delta))
    return summary


def summarize(
    readings: Sequence[StoredReading], spec_for: Callable[[str], AttributeSpec]
) -> list[dict[str, Any]]:
    """One summary dict per numeric attribute, sorted by attribute name (code point order).

    Each dict has attr, type, kind, count, min, max, mean, first, first_at, last, last_at, and energy_wh
    for power and energy_register attributes. Numbers are canonical decimal strings, times canonical UTC
    strings. The result does not depend on the order of `readings`.
    """
    by_attr: dict[str, list[StoredReading]] = {}
    for r in readings:
        if r.number is not None:
            by_attr.setdefault(r.attr, []).append(r)
    summaries = []
    for attr in sorted(by_attr):
        readings = _ordered(by_attr[attr])
        numbers, times = _columns(readings)
        first_at, last_at = time_text(times[0]), time_text(times[-1])
        spec = spec_for(attr)
        summaries.append(
            attribute_summary(attr, readings[0].attr_type, numbers, times, spec, first_at, last_at)
        )
    return summaries


def window_energy_wh(summary: Sequence[dict[str, Any]]) -> Decimal | None:
    """The window's energy in Wh: the sum over register attributes if there are any, else over power ones.

    A meter that reports both a register and instantaneous power would otherwise count its energy twice;
    the register is the billing-grade figure. None when no attribute carries energy.
    """
    for kind in ("energy_register", "power"):
        texts = [s["energy_wh"] for s in summary if s["kind"] == kind]
        if texts:
            # Exact: every term has at most 6 places. Canonical form, so str() of it is the stored text.
            return _decimal_total(texts)
    return None


def _decimal_total(texts: list[str]) -> Decimal:
    """`Decimal(decimal_text(round_places(sum of Fraction(t))))`, from an exact decimal sum when there is one
    that needs no rounding (always, for texts `summarize` wrote)."""
    total = _plain_sum(texts)
    if total is None:
        total = round_places(sum(map(Fraction, texts), Fraction(0)))
    return Decimal(decimal_text(total))


def _plain_sum(texts: list[str]) -> Decimal | None:
    """The exact sum of `texts` if each is a decimal text and the sum has no exponent and at most
    MEAN_PLACES places (so rounding would leave it as it is); None otherwise."""
    if not all(type(t) is str and "_" not in t for t in texts):  # Decimal reads "1_0", Fraction does not
        return None
    try:
        total = _exact_sum(Decimal(t) for t in texts)
    except ArithmeticError:  # not a decimal text (InvalidOperation), or beyond the exact context
        return None
    exponent = total.as_tuple().exponent
    return total if isinstance(exponent, int) and -MEAN_PLACES <= exponent <= 0 else None
