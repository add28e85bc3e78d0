"""On SQLite the period-tree builder reads a period outside the write turn (connector.periods.
build_period_in_turns): /notify's commits go on while a day of windows is read, and a window closed
meanwhile still ends in the tree (the tree holds exactly the windows closed by its `built_at`)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from connector import periods
from connector.core.trees import Period
from connector.store.db import SQLITE_MMAP_BYTES
from connector.store.models import State
from connector.store.tree_models import PeriodRoot
from connector.trees_store import find_root, stored_tree
from tests.api import history as h
from tests.api import portfolio as pf

HANG_GUARD = 60.0  # seconds; a write turn takes milliseconds here


@pytest.fixture
def sqlite_store(store):  # type: ignore[no-untyped-def]
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL has no store-wide write turn: it builds in one transaction")
    return store


def _while_reading(monkeypatch: pytest.MonkeyPatch, action: Any) -> list[Any]:
    """Run `action()` in another thread once the builder has read a period (before it stores the tree),
    waiting for it; returns what each call gave (or the exception it raised)."""
    outcomes: list[Any] = []
    real = periods.build_roots

    def build_roots(*args: Any, **kw: Any) -> Any:
        built = real(*args, **kw)

        def run() -> None:
            try:
                outcomes.append(action())
            except Exception as exc:  # noqa: BLE001 - reported to the test
                outcomes.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        worker.join(HANG_GUARD)
        assert not worker.is_alive(), "the action hung"
        return built

    monkeypatch.setattr(periods, "build_roots", build_roots)
    return outcomes


def test_a_write_commits_while_a_period_is_read(sqlite_store, api_settings, monkeypatch) -> None:
    """A write transaction from another thread (as /notify's commit) commits while the builder reads."""
    store = sqlite_store
    pf.add_portfolio(store, api_settings, n=4)
    store.write_lock.timeout = 5.0  # before: the build held the turn, so this waited and timed out

    def write() -> str:
        with store.begin() as conn:
            key = f"probe.{len(conn.execute(select(State.key)).all())}"
            conn.execute(insert(State).values(key=key, value="x", updated_at=pf.LATER))
        return "committed"

    outcomes = _while_reading(monkeypatch, write)
    built = pf.build(store, api_settings)
    assert built and outcomes and all(o == "committed" for o in outcomes), outcomes[:3]


def test_a_window_closed_while_the_period_is_read_is_in_its_tree(
    sqlite_store, api_settings, monkeypatch
) -> None:
    """A window of the period committed after the read (closed before `built_at`) is built in again: the
    stored root is that of the windows closed by `built_at`, as a proof or the tamper check rebuilds it."""
    store = sqlite_store
    p = pf.add_portfolio(store, api_settings, n=1)
    late = h.add_meter(store, "urn:m:late", p.tenant, "/north/g1")
    added: list[int] = []

    def close_one() -> int:
        if added:  # only during the first build
            return 0
        added.append(late)
        h.close_windows(store, api_settings, late, 1, start=pf.START)
        return late

    _while_reading(monkeypatch, close_one)
    period = Period("window", int(pf.START.timestamp()), api_settings.window.length)
    built = periods.build_period_in_turns(store, p.tenant, period, pf.LATER)
    assert built is not None and built.windows == len(pf.METERS) + 1
    with store.reading() as conn:
        row = find_root(conn, p.tenant, period)
        assert row.root == stored_tree(conn, row).root.hex() == built.root
        assert row.built_at.replace(tzinfo=None) >= (pf.START + timedelta(minutes=17)).replace(tzinfo=None)


def test_a_period_built_meanwhile_is_not_built_twice(sqlite_store, api_settings, monkeypatch) -> None:
    """Another builder storing the same period during the read makes this one a no-op."""
    store = sqlite_store
    p = pf.add_portfolio(store, api_settings, n=1)
    period = Period("window", int(pf.START.timestamp()), api_settings.window.length)

    def other_builder() -> Any:
        with store.begin() as conn:
            return periods.build_period(conn, p.tenant, period, pf.LATER)

    outcomes = _while_reading(monkeypatch, other_builder)
    assert periods.build_period_in_turns(store, p.tenant, period, pf.LATER) is None
    assert outcomes and outcomes[0] is not None
    with store.reading() as conn:
        assert len(conn.execute(select(PeriodRoot)).all()) == 1


def test_the_period_is_read_past_the_memory_map(sqlite_store, api_settings, monkeypatch) -> None:
    """The read goes through SQLite's bounded page cache, not its memory map (whose pages count in the
    process's RSS); the connection has its map back afterwards."""
    store = sqlite_store
    maps: list[int] = []
    used: list[Any] = []  # the builder's DBAPI connections, back in the pool afterwards
    real = periods.build_roots

    def build_roots(conn: Any, *args: Any, **kw: Any) -> Any:
        maps.append(conn.exec_driver_sql("PRAGMA mmap_size").scalar())
        used.append(conn.connection.dbapi_connection)
        return real(conn, *args, **kw)

    monkeypatch.setattr(periods, "build_roots", build_roots)
    pf.add_portfolio(store, api_settings, n=1)
    assert pf.build(store, api_settings)
    assert maps and set(maps) == {0}
    assert {c.execute("PRAGMA mmap_size").fetchone()[0] for c in used} == {SQLITE_MMAP_BYTES}
