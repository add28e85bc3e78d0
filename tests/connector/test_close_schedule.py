"""When the window closer runs: every close_interval seconds and as each window becomes closable."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.close_schedule import CloserTrigger
from connector.ingest import IngestConfig, write_batch
from connector.service import Connector
from connector.settings import WindowSettings, load_settings
from connector.store.models import Window
from tests.conftest import FrozenClock
from tests.connector import payloads as p
from tests.connector.test_ingest_writer import incoming

T = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
HUNG = 120  # seconds: a guard against a hang, far below the closer's regular hour


@pytest.mark.parametrize(
    ("length", "grace", "interval", "now", "previous", "expected"),
    [
        # 15-minute windows, 2 minutes of grace: 00:15's window is closable at 00:17
        (900, 120, 5.0, T + timedelta(minutes=16, seconds=58), T + timedelta(minutes=16, seconds=56),
         T + timedelta(minutes=17)),
        (900, 120, 5.0, T + timedelta(minutes=16, seconds=50), T + timedelta(minutes=16, seconds=49),
         T + timedelta(minutes=16, seconds=54)),  # the interval's tick comes first
        # grace longer than a window: 60-s windows closable 65 s after their end's minute, at :05
        (60, 65, 30.0, T + timedelta(seconds=3.5), T, T + timedelta(seconds=5)),
        # no grace: at each boundary
        (60, 0, 30.0, T + timedelta(seconds=59.9), T + timedelta(seconds=30), T + timedelta(seconds=60)),
        # daily windows, an hour of grace
        (86400, 3600, 3600.0, T + timedelta(minutes=59, seconds=59), T + timedelta(seconds=1),
         T + timedelta(hours=1)),
    ],
)  # fmt: skip
def test_the_closer_runs_when_a_window_becomes_closable_or_at_its_interval(
    length, grace, interval, now, previous, expected
):
    """The next run is the earlier of the interval's next tick and the next window end + grace."""
    trigger = CloserTrigger(WindowSettings(length=length, grace=grace, close_interval=interval))
    assert trigger.get_next_fire_time(previous, now) == expected


def test_a_running_connector_closes_a_window_as_it_becomes_closable(tmp_path):
    """With an hour between the closer's regular runs, a window still closes soon after its end + grace:
    the connector's scheduler runs the closer at that moment."""
    settings = load_settings(
        overrides={
            "store.url": f"sqlite:///{tmp_path}/store.sqlite3",
            "state_dir": str(tmp_path / "var"),
            "ledger.enabled": False,
            "trees.enabled": False,
            "window.length": 2,
            "window.grace": 1,
            "window.close_interval": 3600,
        }
    )
    while time.time() % 2 > 0.5:  # early in a window, so the reading below lands in this one
        time.sleep(0.05)
    connector = Connector(settings).start(serve_http=False)
    try:
        now = datetime.now(UTC)
        body = p.normalized("urn:ngsi-ld:SMX:S1", now.isoformat().replace("+00:00", "Z"), 5.0)
        with connector.store.begin() as conn:
            write_batch(conn, [incoming(body, FrozenClock(now))], IngestConfig.of(settings))
        closable = datetime.fromtimestamp(int(now.timestamp()) // 2 * 2 + 2 + 1, UTC)

        def closed() -> list[datetime]:
            with connector.store.reading() as conn:
                return list(conn.execute(select(Window.start)).scalars().all())

        # A condition, not a budget: the regular run is an hour away, so only the run at the window's
        # end + grace can close it within the hang guard, however busy the machine.
        deadline = time.monotonic() + HUNG
        while not closed() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert closed() == [closable - timedelta(seconds=3)]
    finally:
        connector.stop()
