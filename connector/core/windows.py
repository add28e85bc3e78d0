"""Window alignment: which window a time falls in, when a window may close, when a reading is late.

Windows are half-open intervals `[start, start + length)` whose starts are whole multiples of `length`
seconds since the Unix epoch (1970-01-01T00:00:00Z). UTC has no daylight saving time, so every window of a
given length is exactly that long; leap seconds do not exist in this time scale (POSIX time). A reading
exactly at a boundary belongs to the later window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from connector.core.readings import StoredReading

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _require_aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware UTC, got a naive datetime")
    return t.astimezone(UTC)


def _require_length(length_s: int) -> int:
    if isinstance(length_s, bool) or not isinstance(length_s, int) or length_s <= 0:
        raise ValueError(f"window length must be a positive whole number of seconds, got {length_s!r}")
    return length_s


def window_start(t: datetime, length_s: int) -> datetime:
    """The start of the window containing `t`: the greatest multiple of `length_s` since the epoch <= t."""
    t = _require_aware(t, "t")
    length_us = _require_length(length_s) * 1_000_000
    since_epoch_us = (t - EPOCH) // _MICROSECOND
    return EPOCH + timedelta(microseconds=since_epoch_us - since_epoch_us % length_us)


def window_end(start: datetime, length_s: int) -> datetime:
    """The (exclusive) end of the window that starts at `start`."""
    return _require_aware(start, "start") + timedelta(seconds=_require_length(length_s))


def window_bounds(t: datetime, length_s: int) -> tuple[datetime, datetime]:
    """`(start, end)` of the window containing `t`."""
    start = window_start(t, length_s)
    return start, window_end(start, length_s)


def is_closable(start: datetime, length_s: int, grace_s: int, now: datetime) -> bool:
    """True once the window's end plus the grace period has passed (`now >= end + grace`)."""
    if grace_s < 0:
        raise ValueError(f"grace must not be negative, got {grace_s}")
    deadline = window_end(start, length_s) + timedelta(seconds=grace_s)
    return _require_aware(now, "now") >= deadline


def last_closable_start(now: datetime, length_s: int, grace_s: int) -> datetime:
    """The start of the newest window that may be closed at `now`; every earlier window may be too."""
    if grace_s < 0:
        raise ValueError(f"grace must not be negative, got {grace_s}")
    newest_complete_end = window_start(_require_aware(now, "now") - timedelta(seconds=grace_s), length_s)
    return newest_complete_end - timedelta(seconds=length_s)


def is_late(observed_at: datetime, closed_until: datetime | None) -> bool:
    """True when a reading falls in a window that is already closed.

    `closed_until` is the end of the meter's newest closed window (None: nothing closed yet). Windows are
    closed in order, so every window ending at or before it is closed.
    """
    if closed_until is None:
        return False
    return _require_aware(observed_at, "observed_at") < _require_aware(closed_until, "closed_until")


def split_into_windows(
    readings: Iterable[StoredReading], length_s: int
) -> list[tuple[datetime, list[StoredReading]]]:
    """Group readings by window: `[(start, readings), ...]` by ascending start; empty windows are absent."""
    groups: dict[datetime, list[StoredReading]] = {}
    for reading in readings:
        groups.setdefault(window_start(reading.observed_at, length_s), []).append(reading)
    return sorted(groups.items())
