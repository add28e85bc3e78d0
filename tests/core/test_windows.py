"""Window alignment, closing and lateness: pure functions over aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.windows import (
    is_closable,
    is_late,
    last_closable_start,
    split_into_windows,
    window_bounds,
    window_end,
    window_start,
)

from ._factory import rd


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("t", "length", "expected"),
    [
        (utc(2019, 3, 18, 16, 13, 45, 275000), 900, utc(2019, 3, 18, 16, 0)),
        (utc(2019, 3, 18, 16, 13, 45, 275000), 60, utc(2019, 3, 18, 16, 13)),
        (utc(2019, 3, 18, 16, 13, 45, 275000), 3600, utc(2019, 3, 18, 16, 0)),
        # exactly at a boundary: the later window
        (utc(2019, 3, 18, 16, 15), 900, utc(2019, 3, 18, 16, 15)),
        (utc(2019, 3, 18, 17, 0), 3600, utc(2019, 3, 18, 17, 0)),
        (utc(2019, 3, 18, 16, 14), 60, utc(2019, 3, 18, 16, 14)),
        # one microsecond before a boundary: the earlier window
        (utc(2019, 3, 18, 16, 14, 59, 999999), 900, utc(2019, 3, 18, 16, 0)),
        (utc(2019, 3, 18, 16, 59, 59, 999999), 3600, utc(2019, 3, 18, 16, 0)),
        # midnight, year end, the epoch and before it
        (utc(2019, 12, 31, 23, 59, 59, 999999), 900, utc(2019, 12, 31, 23, 45)),
        (utc(2020, 1, 1), 86400, utc(2020, 1, 1)),
        (utc(1970, 1, 1), 900, utc(1970, 1, 1)),
        (utc(1969, 12, 31, 23, 59, 59), 900, utc(1969, 12, 31, 23, 45)),
        # a day in which Europe changes to summer time: UTC windows are unaffected
        (utc(2019, 3, 31, 1, 0), 3600, utc(2019, 3, 31, 1, 0)),
        (utc(2019, 3, 31, 1, 59, 59), 3600, utc(2019, 3, 31, 1, 0)),
        # a window length that does not divide an hour still aligns to the epoch
        (utc(2019, 3, 18, 16, 13, 45), 7 * 60, utc(2019, 3, 18, 16, 7)),  # 1552925220 = 3697441 * 420
    ],
)
def test_window_start_table(t: datetime, length: int, expected: datetime) -> None:
    """window_start returns the aligned start of the window containing t."""
    assert window_start(t, length) == expected


def test_window_start_converts_other_offsets_to_utc() -> None:
    """A time with a non-UTC offset is aligned on the UTC time line and returned in UTC."""
    cet = timezone(timedelta(hours=1))
    start = window_start(datetime(2019, 3, 18, 17, 13, 45, tzinfo=cet), 900)
    assert start == utc(2019, 3, 18, 16, 0)
    assert start.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("t", "length", "message"),
    [
        (datetime(2019, 3, 18, 16, 13), 900, "naive"),
        (utc(2019, 3, 18), 0, "positive"),
        (utc(2019, 3, 18), -60, "positive"),
        (utc(2019, 3, 18), 1.5, "positive"),
        (utc(2019, 3, 18), True, "positive"),
    ],
)
def test_window_start_refuses_bad_input(t: datetime, length: int, message: str) -> None:
    """Naive times and non-positive or non-integral lengths raise ValueError."""
    with pytest.raises(ValueError, match=message):
        window_start(t, length)


@pytest.mark.parametrize("length", [60, 900, 3600])
def test_bounds_are_half_open_and_adjacent(length: int) -> None:
    """A window's end is the next window's start; the end itself is outside the window."""
    start, end = window_bounds(utc(2019, 3, 18, 16, 13, 45), length)
    assert end - start == timedelta(seconds=length)
    assert window_start(end, length) == end
    assert window_start(end - timedelta(microseconds=1), length) == start
    assert window_end(start, length) == end


@given(
    t=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    length=st.sampled_from([1, 60, 300, 900, 3600, 86400]),
)
def test_window_start_properties(t: datetime, length: int) -> None:
    """start <= t < start + length, and start is a whole multiple of length since the epoch."""
    start = window_start(t, length)
    assert start <= t < start + timedelta(seconds=length)
    assert (start - utc(1970, 1, 1)) % timedelta(seconds=length) == timedelta(0)


@pytest.mark.parametrize(
    ("now", "grace", "closable"),
    [
        (utc(2019, 3, 18, 16, 16, 59, 999999), 120, False),
        (utc(2019, 3, 18, 16, 17), 120, True),
        (utc(2019, 3, 18, 16, 15), 0, True),
        (utc(2019, 3, 18, 16, 14, 59), 0, False),
        (utc(2019, 3, 19), 120, True),
    ],
)
def test_is_closable_table(now: datetime, grace: int, closable: bool) -> None:
    """A window may close once its end plus the grace period has passed."""
    assert is_closable(utc(2019, 3, 18, 16, 0), 900, grace, now) is closable


@pytest.mark.parametrize(
    ("now", "grace", "expected"),
    [
        (utc(2019, 3, 18, 16, 17), 120, utc(2019, 3, 18, 16, 0)),
        (utc(2019, 3, 18, 16, 16, 59), 120, utc(2019, 3, 18, 15, 45)),
        (utc(2019, 3, 18, 16, 15), 0, utc(2019, 3, 18, 16, 0)),
        (utc(2019, 3, 18, 18, 40), 120, utc(2019, 3, 18, 18, 15)),
    ],
)
def test_last_closable_start_table(now: datetime, grace: int, expected: datetime) -> None:
    """last_closable_start is the newest window is_closable accepts; the next one is not closable yet."""
    assert last_closable_start(now, 900, grace) == expected
    assert is_closable(expected, 900, grace, now)
    assert not is_closable(expected + timedelta(seconds=900), 900, grace, now)


@pytest.mark.parametrize(
    ("observed", "closed_until", "late"),
    [
        (utc(2019, 3, 18, 16, 14), None, False),
        (utc(2019, 3, 18, 16, 14), utc(2019, 3, 18, 16, 15), True),
        (utc(2019, 3, 18, 16, 15), utc(2019, 3, 18, 16, 15), False),
        (utc(2019, 3, 18, 15, 0), utc(2019, 3, 18, 16, 15), True),
    ],
)
def test_is_late_table(observed: datetime, closed_until: datetime | None, late: bool) -> None:
    """A reading before the end of the newest closed window is late; one at that end is not."""
    assert is_late(observed, closed_until) is late


def test_split_groups_a_leap_of_several_windows() -> None:
    """Readings separated by silent windows form only the non-empty windows, in order of start."""
    readings = [rd("P", 3 * 900 + 5, "2"), rd("P", 10, "1"), rd("P", 899.999999, "1.5"), rd("P", 900, "3")]
    groups = split_into_windows(readings, 900)
    assert [start for start, _ in groups] == [
        utc(2019, 3, 18, 16, 0),
        utc(2019, 3, 18, 16, 15),
        utc(2019, 3, 18, 16, 45),
    ]
    assert [sorted(r.value_json for r in rs) for _, rs in groups] == [['"1"', '"1.5"'], ['"3"'], ['"2"']]
    assert split_into_windows([], 900) == []
