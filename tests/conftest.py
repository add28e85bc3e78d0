"""Shared fixtures: settings, a migrated store on SQLite and on PostgreSQL, a frozen clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from connector.settings import Settings, load_settings
from connector.store.db import Store, migrate, open_store

# PostgreSQL of this machine (trust auth, database `test`); each test gets its own schema.
PG_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file, or a fresh schema in PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.sqlite3"
        return
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = open_store(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


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
