"""Shared fixtures: settings, a migrated store on SQLite and on PostgreSQL, a frozen clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connector.settings import Settings, load_settings
from connector.store.db import Store, migrate, open_store
from tests.pgschema import fresh_schema

# Threads of a ledger writer's batched rounds (connector/ledger/batch.py): the event-stream follower and
# the send and sign-ahead pools. Left running, a writer keeps pinging its ledger every few seconds for the
# rest of the session, and every later test in the process shares the CPU and allocator with it.
WRITER_THREADS = ("ledger-stream", "ledger-send", "ledger-sign-ahead")


@pytest.fixture(autouse=True)
def _no_writer_outlives_its_test() -> Iterator[None]:
    """Fail the test (at teardown) if a ledger writer it started is still running: close it, or use
    `with LedgerWriter(...) as writer`."""
    before = set(threading.enumerate())
    yield
    left = sorted(
        t.name
        for t in threading.enumerate()
        if t not in before and t.is_alive() and t.name.startswith(WRITER_THREADS)
    )
    assert not left, f"a ledger writer was left running (its threads {left}): close it"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file, or a fresh schema in PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.sqlite3"
        return
    with fresh_schema() as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store, on SQLite and on PostgreSQL."""
    s = open_store(store_url)
    migrate(s)
    yield s
    s.dispose()


@pytest.fixture
def settings(tmp_path, store_url: str) -> Settings:
    """Settings from the shipped config with the store and state under the test's folder."""
    return load_settings(
        overrides={
            "store.url": store_url,
            "state_dir": str(tmp_path / "var"),
            "keystore.path": str(tmp_path / "var" / "keystore"),
            "ledger.embedded_data": str(tmp_path / "var" / "devledger"),
        }
    )


class FrozenClock:
    """A clock for tests: `now()` returns the set time until it is moved."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FrozenClock:
    """A frozen clock at 2019-03-18 16:13:45.275 UTC (the time of seed 003's Figure 16)."""
    return FrozenClock(datetime(2019, 3, 18, 16, 13, 45, 275000, tzinfo=UTC))
