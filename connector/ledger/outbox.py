"""Outbox rows for the ledger writer, written inside the caller's database transaction.

A meter's registration enqueues its CREATE; closing a window enqueues its TRANSFER. Both are idempotent:
the row is keyed by `idempotency_key`, and a second enqueue of the same key changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from connector.store.models import LedgerOutbox

CREATE = "CREATE"
TRANSFER = "TRANSFER"


def create_key(meter_id: int) -> str:
    """The idempotency key of a meter's CREATE row."""
    return f"create:{meter_id}"


def window_key(window_id: int) -> str:
    """The idempotency key of a window's TRANSFER row."""
    return f"window:{window_id}"


def enqueue_create(conn: Connection, meter_id: int, now: datetime) -> None:
    """Queue the CREATE of `meter_id`'s asset (seq 0); a no-op if it is already queued."""
    _insert_if_absent(conn, create_key(meter_id), meter_id, None, CREATE, 0, now)


def enqueue_transfer(conn: Connection, meter_id: int, window_id: int, seq: int, now: datetime) -> None:
    """Queue the TRANSFER of a closed window; `seq` is the window start in Unix seconds (order within the
    meter). A no-op if the window is already queued."""
    _insert_if_absent(conn, window_key(window_id), meter_id, window_id, TRANSFER, seq, now)


def _insert_if_absent(
    conn: Connection,
    key: str,
    meter_id: int,
    window_id: int | None,
    operation: str,
    seq: int,
    now: datetime,
) -> None:
    values = {
        "idempotency_key": key,
        "meter_id": meter_id,
        "window_id": window_id,
        "operation": operation,
        "seq": seq,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(LedgerOutbox).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(LedgerOutbox).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported stores
        raise ValueError(f"unsupported store dialect {dialect!r}")
    conn.execute(stmt)
