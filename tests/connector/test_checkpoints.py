"""SQLite's WAL copied back out of the writers' way (`checkpoint_round`); its memory bounded per process."""

from __future__ import annotations

import ctypes
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from connector.store.db import SQLITE_BACKSTOP_PAGES, SQLITE_HEAP_BYTES, Store, checkpoint_round, open_store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'wal.sqlite3'}")
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, body TEXT)"))
    yield store
    store.dispose()


def wal_restarts(store: Store) -> int:
    """The WAL header's checkpoint sequence number: one more every time a writer starts the WAL again.
    Read from the -wal file, which SQLite takes no lock on (unlike -shm, which this process must not open
    and close: that would drop SQLite's own locks on it)."""
    header = Path(f"{store.write.url.database}-wal").read_bytes()[:16]
    return int(struct.unpack(">I", header[12:16])[0])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Writer(threading.Thread):
    """Another writer on the same file with its own Store (its own flock, as another process has), writing
    2 KB rows without a pause until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.store = open_store(url)
        self.commits = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.store.begin() as conn:
                    conn.execute(text("INSERT INTO scratch (body) VALUES (:b)"), {"b": "x" * 2048})
                self.commits += 1
        finally:
            self.store.dispose()


@pytest.fixture
def writer(sqlite_store: Store) -> Iterator[Writer]:
    thread = Writer(str(sqlite_store.write.url))
    thread.start()
    yield thread
    thread.stop.set()
    thread.join(timeout=30)


def wal_pages(store: Store) -> int:
    return Path(f"{store.write.url.database}-wal").stat().st_size // 4096


def test_commits_leave_the_wal_to_the_rounds(sqlite_store: Store) -> None:
    """11,000 pages of commits and no round: no commit copied the WAL back (SQLite's 1,000 pages and the
    old 10,000 are both passed; only the backstop, SQLITE_BACKSTOP_PAGES, would)."""
    with sqlite_store.begin() as conn:
        conn.execute(text("INSERT INTO scratch (body) VALUES ('first')"))
    before = wal_restarts(sqlite_store)
    for _ in range(11):  # a commit of about 1,000 pages each
        with sqlite_store.begin() as conn:
            conn.execute(text("INSERT INTO scratch (body) VALUES (:b)"), [{"b": "x" * 3500}] * 1000)
    with sqlite_store.begin() as conn:  # a writer after a wholly copied WAL would start it again
        conn.execute(text("INSERT INTO scratch (body) VALUES ('last')"))
    assert 11_000 < wal_pages(sqlite_store) < SQLITE_BACKSTOP_PAGES
    assert wal_restarts(sqlite_store) == before


def test_a_round_copies_the_wal_back_and_it_starts_again_while_another_writer_writes(
    sqlite_store: Store, writer: Writer
) -> None:
    """While another writer commits without a pause, a round leaves the WAL wholly copied, so that writer's
    next commit starts the WAL again from its beginning; a PASSIVE checkpoint outside the write turn alone
    never finds it wholly copied (the writer adds pages while it copies)."""
    wait_for(lambda: wal_pages(sqlite_store) > 500, "500 pages of WAL")
    before = wal_restarts(sqlite_store)
    found = checkpoint_round(sqlite_store)
    assert found is not None
    pages, copied = found
    assert pages == copied > 500, found
    commits = writer.commits
    wait_for(lambda: writer.commits > commits + 3, "three more commits")
    assert wal_restarts(sqlite_store) > before


def test_a_round_is_nothing_on_postgresql(store: Store) -> None:
    if store.dialect == "sqlite":
        pytest.skip("PostgreSQL only")
    assert checkpoint_round(store) is None


# A fresh interpreter reads a 20 MB table through three connections of a store, the memory map off and the
# process's limit set to 4 MiB, and prints SQLite's memory then (each connection's cache would hold it all).
CACHES = """
import ctypes, sys
from sqlalchemy import text
import connector.store.db as db
db.SQLITE_MMAP_BYTES, db.SQLITE_HEAP_BYTES = 0, int(sys.argv[2])
store = db.open_store(f"sqlite:///{sys.argv[1]}")
with store.begin() as conn:
    conn.execute(text("CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT)"))
    conn.execute(text("INSERT INTO big (body) VALUES (:b)"), [{"b": "x" * 1000}] * 20_000)
conns = [store.write.connect(), store.read.connect(), store.read.connect()]
for conn in conns:
    assert conn.execute(text("SELECT count(body) FROM big")).scalar() == 20_000
lib = ctypes.CDLL("libsqlite3.so.0")
lib.sqlite3_memory_used.restype = ctypes.c_int64
print(lib.sqlite3_memory_used())
"""


def sqlite_memory(tmp_path: Path, limit: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CACHES, str(tmp_path / "big.sqlite3"), str(limit)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def test_sqlite_memory_is_bounded_per_process_not_per_connection(tmp_path: Path) -> None:
    """Past the memory-mapped part of the file, pages are read into each connection's cache (64 MiB each):
    the process's limit keeps them all within SQLITE_HEAP_BYTES."""
    try:
        ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        pytest.skip("Python's sqlite3 is not the shared libsqlite3 here")
    with open_store(
        f"sqlite:///{tmp_path / 'limit.sqlite3'}"
    ).read.connect() as conn:  # what every store sets
        assert conn.exec_driver_sql("PRAGMA soft_heap_limit").scalar() == SQLITE_HEAP_BYTES
    assert sqlite_memory(tmp_path, 4 * 1024 * 1024) < 6 * 1024 * 1024
