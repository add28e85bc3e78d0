"""When the window closer runs: every `window.close_interval` seconds, and at the moment each window becomes
closable (its end + grace).

With the interval alone a window's closing, and with it its TRANSFERs, began up to `close_interval` (5 s)
after the window became closable, depending on when the process happened to start: 2-3 s of the anchoring
benchmark's 21 s, a different share in each run (docs/benchmarks/anchoring.md). Windows are aligned to UTC
multiples of their length, so every window becomes closable at a multiple of the length plus the grace.
The interval stays for what the aligned run leaves (a meter changed while its batch was sealed, a failed
run, a window whose readings arrived after its close).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from connector.settings import WindowSettings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CloserTrigger(BaseTrigger):
    """Fires `close_interval` seconds after the previous run and at every window's end + grace (see the
    module docstring). apscheduler's OrTrigger of two IntervalTriggers does not: it hands each the combined
    previous run, from which an IntervalTrigger counts its next, so the window-aligned one drifts."""

    def __init__(self, window: WindowSettings) -> None:
        self.interval = timedelta(seconds=window.close_interval)
        self.length = timedelta(seconds=window.length)
        self.first_close = EPOCH + timedelta(seconds=window.grace)  # windows start at multiples of length

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        """The earlier of the interval's next tick and the next moment a window becomes closable: after
        the previous run, or from `now` on when there was none."""
        if previous_fire_time is None:
            return min(now + self.interval, self._close_from(now, strictly_after=False))
        return min(previous_fire_time + self.interval, self._close_from(previous_fire_time, True))

    def _close_from(self, moment: datetime, strictly_after: bool) -> datetime:
        steps, rest = divmod(moment - self.first_close, self.length)
        if rest or strictly_after:
            steps += 1
        return self.first_close + steps * self.length  # type: ignore[no-any-return]
