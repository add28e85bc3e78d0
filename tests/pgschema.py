"""A throwaway PostgreSQL schema for one test or benchmark run (shared by tests/ and bench/)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from connector.store.db import open_store

# PostgreSQL of this machine (trust auth, database `test`).
PG_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_schema(pg_url: str = PG_URL, prefix: str = "t_") -> Iterator[str]:
    """A store URL pointing at a new, empty PostgreSQL schema; the schema is dropped on exit."""
    schema = prefix + uuid.uuid4().hex[:12]
    admin = open_store(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
