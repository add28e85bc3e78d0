"""Engines for the store: SQLite (WAL, immediate write transactions) or PostgreSQL, and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


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

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        with self.write.begin() as conn:
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
    return Store(url, write, read)


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
        cur.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Straight to the driver: SQLAlchemy's statement machinery cost more than the BEGIN itself, once
        # per group commit of the ingest writer.
        conn.connection.dbapi_connection.execute(begin)  # type: ignore[union-attr]


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
