"""The store's write turns on SQLite (connector/store/db.py WriteLock): processes whose writes can wait
(the ledger and closer processes) let the ingest writer's urgent turn go first."""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time

import pytest

from connector.store import db
from connector.store.db import WriteLock, urgent_writer_waiting


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
