"""The store's write turns on SQLite (connector/store/db.py): processes whose writes can wait (the ledger
and closer processes) let the ingest writer's urgent turn go first (WriteLock), and no commit copies the
WAL back into the database (Checkpointer)."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import struct
import threading
import time

import pytest
from sqlalchemy import text

from connector.store import db
from connector.store.db import Checkpointer, WriteLock, open_store, urgent_writer_waiting


@pytest.fixture
def lock_path(tmp_path) -> str:
    return str(tmp_path / "store.sqlite3-writelock")


def _waiting_file_is_held(path: str) -> bool:
    """True while an urgent writer is seen waiting (tested from a descriptor of its own, nothing taken)."""
    fd = os.open(f"{path}-waiting", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        return urgent_writer_waiting(fd)
    finally:
        os.close(fd)


def _read_lock(path: str) -> int:
    """A descriptor holding the read lock an urgent writer holds while it waits (closing it lets go)."""
    fd = os.open(f"{path}-waiting", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
    return fd


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _enter_in_thread(lock: WriteLock, order: list[str], name: str, urgent: bool = False) -> threading.Thread:
    def run() -> None:
        lock.enter(urgent=urgent)
        order.append(name)
        lock.__exit__(None, None, None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_an_urgent_writer_is_seen_waiting_only_while_it_waits(lock_path) -> None:
    holder, urgent = WriteLock(lock_path), WriteLock(lock_path)
    order: list[str] = []
    with holder:
        thread = _enter_in_thread(urgent, order, "urgent", urgent=True)
        _wait_until(lambda: _waiting_file_is_held(lock_path))
        assert order == []  # still waiting for the holder's turn
    thread.join(timeout=30)
    assert order == ["urgent"]
    assert not _waiting_file_is_held(lock_path)  # let go once it had its turn
    for lock in (holder, urgent):
        lock.close()


def test_a_writer_that_gives_way_lets_a_waiting_urgent_writer_go_first(lock_path, monkeypatch) -> None:
    """The holder releases while both wait: the urgent writer's turn comes first, whoever flock() would
    have woken first. The writer that gives way does not even ask for the lock while the other waits."""
    monkeypatch.setattr(db, "GIVE_WAY_MAX", 60.0)  # only the urgent writer's turn can end its wait here
    holder, urgent, background = WriteLock(lock_path), WriteLock(lock_path), WriteLock(lock_path)
    background.gives_way = True
    order: list[str] = []
    with holder:
        first = _enter_in_thread(urgent, order, "urgent", urgent=True)
        _wait_until(lambda: _waiting_file_is_held(lock_path))
        second = _enter_in_thread(background, order, "background")
        time.sleep(0.05)  # let it reach its wait (the order below holds however long this takes)
    first.join(timeout=30)
    second.join(timeout=30)
    assert order == ["urgent", "background"]
    for lock in (holder, urgent, background):
        lock.close()


def test_giving_way_is_bounded(lock_path, monkeypatch) -> None:
    """An urgent writer that keeps waiting (ingest flat out) holds a writer that gives way back for
    GIVE_WAY_MAX at most: then it takes its turn, so anchoring goes on during an Orion backlog."""
    monkeypatch.setattr(db, "GIVE_WAY_MAX", 0.3)
    background = WriteLock(lock_path)
    background.gives_way = True
    signal = _read_lock(lock_path)  # as an urgent writer holds while it waits, for the whole test
    try:
        began = time.monotonic()
        with background:
            waited = time.monotonic() - began
    finally:
        os.close(signal)
        background.close()
    assert waited >= 0.3


def test_a_writer_that_does_not_give_way_takes_a_free_turn_at_once(lock_path, monkeypatch) -> None:
    """Only the ledger and closer processes give way: any other writer is not held back by a signal."""
    monkeypatch.setattr(db, "GIVE_WAY_MAX", 60.0)
    plain = WriteLock(lock_path)
    signal = _read_lock(lock_path)
    order: list[str] = []
    try:
        _enter_in_thread(plain, order, "plain").join(timeout=30)
    finally:
        os.close(signal)
        plain.close()
    assert order == ["plain"]


PAGE = 4096


def _write_pages(store, pages: int, per_commit: int) -> None:
    """About `pages` new database pages, written in commits of `per_commit` pages (one blob a page)."""
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, data BLOB)"))
    for first in range(0, pages, per_commit):
        with store.begin() as conn:
            conn.execute(
                text("INSERT INTO scratch (data) VALUES (randomblob(:size))"),
                [{"size": PAGE - 100} for _ in range(min(per_commit, pages - first))],
            )


def test_no_commit_copies_the_wal_back_the_checkpointer_does(tmp_path) -> None:
    """12,000 pages written in commits of 500: no commit ran a checkpoint (SQLite's would have, past its
    wal_autocheckpoint: 200 ms of copying under the write lock for 10,000 pages); the checkpointer then
    copies every frame back, and the next writer starts the WAL from its beginning."""
    database = tmp_path / "store.sqlite3"
    store = open_store(f"sqlite:///{database}")
    ckpt = Checkpointer(str(database))
    try:
        _write_pages(store, 12_000, 500)
        busy, frames, copied = ckpt.run_once()
        assert busy == 0
        assert frames >= 12_000, frames  # every commit's pages still in the WAL: none checkpointed
        assert copied == frames
        _write_pages(store, 10, 10)
        assert ckpt.run_once()[1] < 100  # the WAL started again from its beginning
    finally:
        ckpt.stop()
        store.dispose()


def test_the_primary_process_runs_the_checkpointer(settings) -> None:
    """On SQLite the primary process (here the in-process connector, role ALL) starts the thread; it stops
    with the connector."""
    from connector.service import Connector

    settings = settings.replace(ledger=dataclasses.replace(settings.ledger, enabled=False))
    connector = Connector(settings).start(serve_http=False)
    try:
        names = [t.name for t in threading.enumerate()]
        expected = 1 if connector.store.dialect == "sqlite" else 0
        assert names.count("store-checkpoint") == expected, names
    finally:
        connector.stop()
    assert "store-checkpoint" not in [t.name for t in threading.enumerate()]
