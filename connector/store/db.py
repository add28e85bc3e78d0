"""Engines for the store: SQLite (WAL, immediate write transactions) or PostgreSQL, and migrations."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_MMAP_BYTES = 256 * 1024 * 1024  # address space only: the OS maps what is read
SQLITE_CACHE_KIB = 64 * 1024  # per connection, at most
# All of SQLite's memory in one process, its connections' page caches together (soft_heap_limit: past it
# a cache reuses its pages rather than growing). Pages past the first SQLITE_MMAP_BYTES of the file are
# read into the caches, so with a store of 100,000 meters each process's SQLite memory grew as the file
# did, by 64 MiB a connection at most (the HTTP process: 2 -> 33 MB in an hour of the soak, all of its
# heap's growth; docs/benchmarks/soak.md). Three connections reading a 200 MB table: 198 MB without it.
SQLITE_HEAP_BYTES = 64 * 1024 * 1024
# How the WAL is copied back into the database. SQLite's default, a checkpoint by the commit that brings the
# WAL to 1,000 pages, runs inside that writer's write turn. At 10,000 pages (which sped ingest up: a group
# commit rewrites the same index pages again and again, so fewer copies write each page fewer times;
# 7.4 -> 6.4 us per reading, docs/benchmarks/ingest.md) it held every other writer, /notify's included,
# for about 200 ms once a minute in the anchoring benchmark: a third of its slowest 1 % of answers. Now the
# process that closes windows copies it back every CHECKPOINT_EVERY seconds, out of the writers' way
# (`checkpoint_round`); a commit's own checkpoint is left as the backstop for a WAL nobody copies back
# (160 MB of WAL at most).
SQLITE_BACKSTOP_PAGES = 40_000
CHECKPOINT_EVERY = 2.0


@dataclass
class Store:
    """The store's engines. `write` runs write transactions; `read` serves queries.

    On SQLite every write transaction starts with BEGIN IMMEDIATE, so a transaction that reads and then
    writes (closing a window, registering a meter) holds the write lock from its first statement and never
    sees a stale snapshot. Reads use a separate engine with ordinary deferred transactions.
    """

    url: str
    write: Engine
    read: Engine
    write_lock: WriteLock | None = field(default=None, compare=False)

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        with self.write_lock or nullcontext(), self.write.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with self.read.connect() as conn:
            yield conn

    def ping(self) -> None:
        """Raise if the store cannot answer a trivial query."""
        with self.read.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.write.dispose()
        self.read.dispose()
        if self.write_lock is not None:
            self.write_lock.close()


class WriteLock:
    """Write transactions on one SQLite file taken in turn by every thread of every process.

    SQLite's own lock has no queue: a writer that finds it taken sleeps (1, 2, 5 ... 100 ms) and tries
    again, so with several connector processes one of them could wait a second while the other took the
    lock over and over (ack p99 above 1 s with 2 workers). A blocking flock() on a file beside the
    database wakes the waiter as soon as the lock is released; a thread lock in front of it serializes
    the threads of one process, which share the flock. Re-entrant, like SQLAlchemy's nested begin.
    """

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._threads = threading.RLock()
        self._depth = 0
        self._held_since = 0.0
        # Told how long each write turn held the lock (seconds), once it is released; the connector
        # exports it as `connector_store_write_hold_seconds` by process role (who makes /notify wait).
        self.observe: Callable[[float], None] | None = None

    def __enter__(self) -> None:
        if not self._threads.acquire(timeout=self.timeout):
            raise TimeoutError(f"no write turn on {self.path} within {self.timeout} s")
        if self._depth == 0:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
            self._held_since = time.perf_counter()
        self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
            if self.observe is not None:
                self.observe(time.perf_counter() - self._held_since)
        self._threads.release()

    def _file(self) -> int:
        if self._fd is None:  # opened on first use, so a Store built before a fork shares no descriptor
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def open_store(url: str, pool_size: int = 10, **engine_kw: Any) -> Store:
    """Open the store at `url`; a SQLite file's folder is created. Does not migrate."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _open_sqlite(url, parsed.database, engine_kw)
    write = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **engine_kw)
    return Store(url, write, write)


def _open_sqlite(url: str, database: str | None, engine_kw: dict[str, Any]) -> Store:
    if not database or database == ":memory:":
        raise ValueError(
            "the store needs a SQLite file, not an in-memory database (several connections share it)"
        )
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"timeout": 30, "check_same_thread": False}
    write = create_engine(url, connect_args=connect_args, **engine_kw)
    read = create_engine(url, connect_args=connect_args, **engine_kw)
    for engine, immediate in ((write, True), (read, False)):
        _sqlite_events(engine, immediate)
    return Store(url, write, read, WriteLock(f"{database}-writelock"))


def _sqlite_events(engine: Engine, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours; WAL lets readers run beside the writer.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(
            "PRAGMA synchronous=FULL"
        )  # an acknowledged reading survives power loss, not just a crash
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Pages read through a memory map and a larger page cache: with several processes writing in
        # turn, each transaction finds its cache invalidated by the other's commit, and mapped pages are
        # cheap to look at again (ingest with 2 workers: 36,300 -> 42,700 readings/s, docs/benchmarks).
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_BYTES}")  # the process's, set by each connection
        cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_BACKSTOP_PAGES}")
        cur.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Straight to the driver: SQLAlchemy's statement machinery cost more than the BEGIN itself, once
        # per group commit of the ingest writer.
        conn.connection.dbapi_connection.execute(begin)  # type: ignore[union-attr]


@contextmanager
def unmapped(conn: Connection) -> Iterator[Connection]:
    """`conn` reading SQLite's file through its page cache (bounded by SQLITE_HEAP_BYTES) instead of its
    memory map, for a read of a large part of the store: every mapped page it touches counts in the
    process's RSS, up to SQLITE_MMAP_BYTES (a day's tree of 100,000 meters took a process to 497 MiB,
    270 of them mapped file). Call before the transaction's first read; no-op on PostgreSQL."""
    if conn.dialect.name != "sqlite":
        yield conn
        return
    conn.exec_driver_sql("PRAGMA mmap_size=0")
    try:
        yield conn
    finally:
        conn.exec_driver_sql(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")


def checkpoint_round(store: Store) -> tuple[int, int] | None:
    """Copy the WAL back into the database file, out of the writers' way (SQLite; None elsewhere): a
    PASSIVE checkpoint outside the write turn copies what the WAL holds while the others go on writing,
    then one inside a write turn copies the few pages they added meanwhile. The WAL then holds nothing
    uncopied, so the next writer starts it again from its beginning; copied only outside the write turn,
    it was never found wholly copied and grew until a commit's backstop checkpoint (SQLITE_BACKSTOP_PAGES).

    Returns the WAL's pages and those copied, as the second checkpoint found them. Goes through SQLite only:
    opening and closing the `-shm` file in this process would drop SQLite's own locks on it (POSIX locks
    belong to the process, and close() releases them all)."""
    if store.write_lock is None:
        return None
    raw = store.read.raw_connection()  # in autocommit (`_sqlite_events`): the pragma needs no transaction
    try:
        sqlite = raw.driver_connection
        sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
        with store.write_lock:
            _busy, pages, copied = sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # type: ignore[union-attr]
    finally:
        raw.close()
    return int(pages), int(copied)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(store: Store, revision: str = "head") -> None:
    """Bring the store's schema to `revision` (Alembic)."""
    cfg = alembic_config(store.url)
    with store.write.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
