"""Sealing a window from the store's rows (`seal_rows`, the verifier's recomputation) gives exactly what
`seal_window` gives over the same readings: the same window, byte for byte, or the same error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connector.core.canonical import time_text
from connector.core.fingerprint import seal_window
from connector.core.kinds import AttributeSpec
from connector.core.stored_rows import Row, parse_time_text, seal_rows, stored_reading

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=15)
PREV = "0123456789abcdef" * 4
SPECS = {"P": AttributeSpec("power", "kW"), "E": AttributeSpec("energy_register", "Wh", "import")}


def spec_for(attr: str) -> AttributeSpec:
    return SPECS.get(attr, AttributeSpec())


def sealed_or_error(seal, *args):  # type: ignore[no-untyped-def]
    """The window `seal(*args)` gives with its stored summary text, or the type of what it raised."""
    try:
        cw = seal(*args)
    except (ValueError, ArithmeticError) as exc:
        return type(exc)
    return cw, cw.summary_json


def general(rows: list[Row], start: datetime, end: datetime, prev: str):  # type: ignore[no-untyped-def]
    return seal_window([stored_reading(r) for r in rows], start, end, prev, spec_for)


def assert_same(rows: list[Row], start: datetime = START, end: datetime = END, prev: str = PREV) -> None:
    """seal_rows and the general path agree on `rows`."""
    expected = sealed_or_error(general, rows, start, end, prev)
    assert sealed_or_error(seal_rows, rows, start, end, prev, spec_for) == expected


numbers = (
    st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.decimals(places=3, min_value=-(10**6), max_value=10**6).map(str)
    | st.integers(-(10**30), 10**30).map(str)
    | st.sampled_from(["0", "-0", "0.0", "1.50", "1E+3", "-0.001", " 7", "1_0", "x", "NaN", "1" * 150])
)
texts = st.text(max_size=6) | st.sampled_from(["P", "E", "Number", 'a"b\\c', "\x00\n", "é€😀", "\ud800"])
second_offsets = st.integers(-60, 960)  # a few outside the window on either side


@st.composite
def rows(draw):  # type: ignore[no-untyped-def]
    """Rows of one window, mostly as a store holds them, some as a damaged store might."""
    out = []
    keys = st.tuples(second_offsets, st.sampled_from(["P", "E", "s"]))
    for offset, attr in draw(st.lists(keys, max_size=12)):
        at = time_text(START + timedelta(seconds=offset, microseconds=draw(st.sampled_from([0, 1, 999_999]))))
        number = draw(st.none() | numbers)
        value = number if number is not None and draw(st.booleans()) else draw(texts)
        attr_type, unit = draw(st.none() | texts), draw(st.none() | texts)
        out.append((attr, attr_type, at, value, number, unit))
    return draw(st.permutations(out))


@settings(max_examples=400)
@given(rows())
def test_rows_seal_as_the_general_path_seals_them(rows: list[Row]) -> None:
    """Any rows (unordered, repeated keys, odd numbers and texts, readings outside the window) seal to
    the same window, or fail the same way."""
    assert_same(rows)


def row(seconds: int, number: str | None = "1.5", attr: str = "P") -> Row:
    at = time_text(START + timedelta(seconds=seconds))
    return (attr, "Number", at, number or '"on"', number, "kW")


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [row(0)],
        [row(s, str(s * 7 % 13)) for s in range(0, 900, 60)],
        [row(60), row(0, attr="E"), row(0), row(60, None, attr="s")],  # several attributes at one time
        [row(0), row(0)],  # one attribute twice at one instant
        [row(0, "2.50"), row(60, "1E+2"), row(120, "-0")],  # decimal texts not in canonical form
        [row(0, "abc")],
        [row(900)],  # at the end: outside
        [row(0)[:2] + ("2024-03-01 12:00:00.000000", *row(0)[3:])],  # not a canonical time text
        [row(0)[:2] + ("2024-03-01T12:00:60.000000Z", *row(0)[3:])],  # a time that does not exist
        [row(0, None)[:2] + ("2024-03-01T12:00:60.000000Z", *row(0, None)[3:])],  # ... of a text value
        [("P", "Number\ud800", row(0)[2], "1", "1", None)],  # not valid Unicode
        [(None, "Number", row(0)[2], "1", "1", None)],
    ],
)
def test_stored_forms_seal_as_the_general_path_seals_them(rows: list[Row]) -> None:
    """The usual rows and each kind of odd one give what the general path gives."""
    assert_same(rows)


@example(START, END, "not a hash")
@example(START.replace(tzinfo=None), END, PREV)
@example(END, START, PREV)
@given(st.just(START), st.just(END), st.just(PREV))
def test_bounds_and_chain_seed_are_checked_as_the_general_path_checks_them(start, end, prev) -> None:
    """Naive or reversed bounds and a previous chain hash that is no hash fail as seal_window fails."""
    assert_same([row(0)], start, end, prev)


def test_the_canonical_time_text_is_the_only_one_read() -> None:
    """A row's time is its canonical UTC text; any other text is refused."""
    assert parse_time_text("2024-03-01T12:00:00.000001Z") == START + timedelta(microseconds=1)
    for text in ("2024-03-01T12:00:00Z", "2024-03-01 12:00:00.000000", "2024-03-01T12:00:00.000000+00:00"):
        with pytest.raises(ValueError):
            parse_time_text(text)


def test_a_month_of_stored_rows_seals_as_the_closer_sealed_it() -> None:
    """A chain of windows of one-minute power readings: each recomputed window equals the closer's."""
    prev = PREV
    for w in range(96):
        start = START + w * timedelta(minutes=15)
        rows = [row(w * 900 + s, str(Decimal(w * 37 + s) / 100)) for s in range(0, 900, 60)]
        closed = general(rows, start, start + timedelta(minutes=15), prev)
        assert seal_rows(rows, start, start + timedelta(minutes=15), prev, spec_for) == closed
        prev = closed.chain_hash
