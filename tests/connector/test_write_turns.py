"""SQLite write turns between processes (connector/store/db.py WriteLock): a foreground writer (/notify's
ingest) that is waiting goes before the background writer's (the ledger process's) next turn."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from connector.store.db import WriteLock

HUNG = 30.0  # a guard against a hang, not a speed budget


def blocked_waiters(*paths: str) -> int:
    """flock() calls blocked on `paths` right now, from /proc/locks ("->" lines)."""
    inodes = {f":{os.stat(p).st_ino} " for p in paths if os.path.exists(p)}
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and any(i in line for i in inodes))


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + HUNG
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.001)


def one_handover(ledger: WriteLock, ingest: WriteLock) -> list[str]:
    """The ledger process's thread A holds the turn; ingest queues; thread B of the ledger process wants
    the next turn as A ends. Returns who wrote after A, in order."""
    order: list[str] = []

    def write(lock: WriteLock, name: str) -> None:
        with lock:
            order.append(name)

    paths = (ingest.path, ingest.path + "-waiting")
    ledger.__enter__()  # thread A's turn
    waiting = threading.Thread(target=write, args=(ingest, "ingest"))
    waiting.start()
    wait_for(lambda: blocked_waiters(*paths) == 1, "ingest to wait for its turn")
    second = threading.Thread(target=write, args=(ledger, "ledger"))
    second.start()  # blocks on the ledger process's thread lock until A is done
    ledger.__exit__(None, None, None)
    waiting.join(HUNG)
    second.join(HUNG)
    assert not waiting.is_alive() and not second.is_alive()
    return order


def test_a_waiting_ingest_goes_before_the_ledger_process_next_turn(tmp_path) -> None:
    """Twenty handovers: each time ingest, already waiting, writes before the ledger process's next
    turn. (Without the background rule the ledger's second thread, running already, wins the race with
    the waiter the kernel wakes up, and ingest waits a second turn.)"""
    path = str(tmp_path / "store.sqlite3-writelock")
    ledger, ingest = WriteLock(path, background=True), WriteLock(path)
    try:
        orders = [one_handover(ledger, ingest) for _ in range(20)]
    finally:
        ledger.close()
        ingest.close()
    assert orders == [["ingest", "ledger"]] * 20


def test_the_background_writer_gets_turns_between_foreground_ones(tmp_path) -> None:
    """A foreground writer taking turn after turn leaves gaps, and the background writer gets its turns
    in them: it is not starved."""
    path = str(tmp_path / "store.sqlite3-writelock")
    ledger, ingest = WriteLock(path, background=True), WriteLock(path)
    stop = threading.Event()
    foreground = 0

    def commits() -> None:
        nonlocal foreground
        while not stop.is_set():
            with ingest:
                foreground += 1
                time.sleep(0.002)

    thread = threading.Thread(target=commits)
    thread.start()
    try:
        wait_for(lambda: foreground > 0, "the foreground writer's first turn")
        for _ in range(20):
            with ledger:
                pass
    finally:
        stop.set()
        thread.join(HUNG)
        ledger.close()
        ingest.close()
