"""The fingerprint core's shortcuts give exactly what the general code gives: reading records, summaries
and chain records written directly, decimal and time text, and energy and means summed in decimals before
one rational division."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connector.core.aggregate import power_energy_wh, summarize, window_energy_wh
from connector.core.canonical import (
    CanonicalError,
    canonical_json,
    decimal_text,
    plain_decimal_text,
    round_places,
    round_ratio,
    time_text,
)
from connector.core.fingerprint import (
    chain_record,
    chain_record_json,
    reading_record,
    reading_record_json,
    summary_json_bytes,
)
from connector.core.kinds import AttributeSpec
from connector.core.readings import StoredReading

_US_PER_HOUR = 3_600_000_000
decimals = st.decimals(allow_nan=False, allow_infinity=False) | st.decimals(places=6, allow_nan=False).filter(
    Decimal.is_finite
)
texts = st.text() | st.sampled_from(["", "P", 'a"b\\c', "\x00\x1f\x7f", "é€😀", "\ud800", "W\u2028"])
times = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(0), "GMT")]),
) | st.datetimes(timezones=st.just(timezone(timedelta(hours=5, minutes=30)))).filter(lambda t: t.year > 1)


def assert_same_or_both_refuse(general: Callable[[], object], fast: Callable[[], object]) -> None:
    """The fast path gives what the general path gives, or refuses (CanonicalError) where it refuses."""
    try:
        expected = general()
    except CanonicalError:
        with pytest.raises(CanonicalError):
            fast()
        return
    assert fast() == expected


@given(decimals)
def test_decimal_text_equals_the_general_path(d: Decimal) -> None:
    """Every finite decimal gets the text (or the refusal) the general path gives."""
    assert_same_or_both_refuse(lambda: plain_decimal_text(d), lambda: decimal_text(d))


@given(times)
def test_time_text_equals_the_general_path(t: datetime) -> None:
    """UTC times take isoformat; the text is the field-by-field one for every aware time."""
    u = t.astimezone(UTC)
    day, clock = f"{u.year:04d}-{u.month:02d}-{u.day:02d}", f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    expected = f"{day}T{clock}.{u.microsecond:06d}Z"
    assert time_text(t) == expected


@given(
    attr=texts,
    attr_type=st.none() | texts,
    unit=st.none() | texts,
    value=texts,
    number=st.none() | decimals,
    at=times,
    prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_reading_record_written_directly_equals_canonical_json(
    attr, attr_type, unit, value, number, at, prev
):
    """The directly written record is byte for byte canonical_json of the record, and refuses what it
    refuses (a lone surrogate, a decimal without plain form)."""
    r = StoredReading(attr, attr_type, at, value, number, unit)
    assert_same_or_both_refuse(
        lambda: canonical_json(reading_record(r, prev)), lambda: reading_record_json(r, prev)
    )


def reference_energy(readings: list[StoredReading], factor: int) -> Fraction:
    total = Fraction(0)
    for a, b in zip(readings, readings[1:], strict=False):
        dt_us = (b.observed_at - a.observed_at) // timedelta(microseconds=1)
        total += (Fraction(a.number) + Fraction(b.number)) * dt_us / 2
    return total * factor / _US_PER_HOUR


power = st.lists(
    st.tuples(st.integers(0, 10**9), decimals | st.sampled_from([Decimal("1E+900"), Decimal("-1E-900")])),
    max_size=20,
    unique_by=lambda p: p[0],
)


@given(power, st.sampled_from([1, 1000, 10**6]))
def test_power_energy_equals_the_rational_sum(points, factor) -> None:
    """The trapezoid summed in exact decimals, divided once, is the rational sum of the halves (also where
    the decimal context runs out of digits and the rational path takes over)."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    readings = [
        StoredReading("P", "Number", t0 + timedelta(microseconds=us), "0", n, "W") for us, n in sorted(points)
    ]
    assert power_energy_wh(readings, factor) == reference_energy(readings, factor)


@given(power, st.sampled_from([1, 1000, 10**6]))
def test_summary_energy_is_the_rational_sum_rounded_once(points, factor) -> None:
    """A power attribute's energy_wh in the summary is the rational trapezoid sum rounded once."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    readings = [
        StoredReading("P", "Number", t0 + timedelta(microseconds=us), "0", n, "W") for us, n in sorted(points)
    ]
    if not readings:
        return
    spec = AttributeSpec(kind="power", unit="W" if factor == 1 else "kW" if factor == 1000 else "MW")
    try:
        (summary,) = summarize(readings, lambda _a: spec)
    except CanonicalError:
        return  # min/max/first/last without plain form: refused before and after alike
    assert summary["energy_wh"] == decimal_text(round_places(reference_energy(readings, factor)))


@given(st.integers(), st.integers(min_value=1), st.integers(0, 12))
@example(1, 2_000_000, 6)  # ties: to the even neighbour, 0
@example(3, 2_000_000, 6)  # 2
@example(-3, 2_000_000, 6)  # -2
def test_round_ratio_equals_round_places(numerator, denominator, places) -> None:
    """Rounding an integer ratio gives exactly what rounding its Fraction gives, ties to even."""
    x = Fraction(numerator, denominator)
    assert round_ratio(numerator, denominator, places) == round_places(x, places)
    assert str(round_ratio(numerator, denominator, places)) == str(round_places(x, places))


energy_texts = st.lists(
    decimals.map(str) | decimals.map(decimal_text) | st.sampled_from(["NaN", "1E+1001", "-0", "1_0", "1/3"]),
    min_size=1,
    max_size=5,
)


@given(energy_texts, st.sampled_from(["power", "energy_register"]))
def test_window_energy_equals_the_rational_sum(texts, kind) -> None:
    """The window's energy from its summary is the rational sum of the texts rounded once, and refused
    where that is refused."""
    summary = [{"attr": f"a{i}", "kind": kind, "energy_wh": t} for i, t in enumerate(texts)]
    try:
        expected = Decimal(decimal_text(round_places(sum(map(Fraction, texts), Fraction(0)))))
    except (ValueError, ArithmeticError) as exc:
        with pytest.raises(type(exc)):
            window_energy_wh(summary)
        return
    result = window_energy_wh(summary)
    assert result == expected and str(result) == str(expected)


@given(st.lists(decimals, min_size=1, max_size=20))
def test_mean_equals_the_rational_mean(numbers) -> None:
    """The summary's mean (summed in exact decimals) is the rational mean rounded once."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    readings = [
        StoredReading("P", "Number", t0 + timedelta(seconds=i), "0", n, "W") for i, n in enumerate(numbers)
    ]
    spec = AttributeSpec(kind="stats", unit="")
    try:
        (summary,) = summarize(readings, lambda _a: spec)
    except CanonicalError:
        return  # min/max/first/last without plain form: refused before and after alike
    mean = sum(map(Fraction, numbers), Fraction(0)) / len(numbers)
    assert summary["mean"] == decimal_text(Decimal(f"{round(mean * 10**6)}E-6"))


summary_values = st.none() | texts | st.integers() | st.booleans() | decimals | times
summaries = st.lists(st.dictionaries(texts, summary_values, max_size=12), max_size=4)
hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@given(summaries)
def test_summary_written_directly_equals_canonical_json(summary) -> None:
    """A summary's bytes are canonical_json's, for plain entries and for any others (decimals, times,
    booleans, lone surrogates) alike, refusals included."""
    assert_same_or_both_refuse(lambda: canonical_json(summary), lambda: summary_json_bytes(summary))


@given(summaries, hashes, hashes, times, times)
def test_chain_record_written_directly_equals_canonical_json(summary, fp, prev, start, end) -> None:
    """The chain record around the summary's bytes is canonical_json of the record Algorithm 2 hashes."""
    try:
        expected = canonical_json(chain_record(summary, fp, prev, start, end))
    except CanonicalError:
        return
    assert chain_record_json(summary_json_bytes(summary), fp, prev, start, end) == expected
