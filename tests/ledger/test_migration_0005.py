"""Migration 0005: a store's queued CREATEs move below every window (pre-1970 ones included), and the
reading_conflicts table appears; downgraded, both are undone."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, select

from connector.ledger.outbox import CREATE_SEQ, enqueue_create, enqueue_transfer
from connector.store.db import alembic_config, migrate, open_store
from connector.store.models import LedgerOutbox
from tests.ledger.helpers import add_meter, add_window


def test_migration_0005_orders_creates_first_and_adds_conflicts(store_url):
    """A CREATE queued with seq 0 beside a 1969 window's TRANSFER comes first after the upgrade."""
    store = open_store(store_url)
    try:
        migrate(store, "0004")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        start = datetime(1969, 12, 31, 23, 45, tzinfo=UTC)
        meter_id = add_meter(store, "urn:old", now)
        window_id = add_window(store, meter_id, start, now)
        with store.begin() as conn:
            conn.execute(
                LedgerOutbox.__table__.insert().values(
                    idempotency_key=f"create:{meter_id}", meter_id=meter_id, operation="CREATE", seq=0,
                    status="pending", attempts=0, next_attempt_at=now, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            enqueue_transfer(conn, meter_id, window_id, int(start.timestamp()), now)
        migrate(store)
        with store.reading() as conn:
            order = conn.execute(select(LedgerOutbox.operation).order_by(LedgerOutbox.seq)).scalars().all()
            assert order == ["CREATE", "TRANSFER"]
            assert "reading_conflicts" in inspect(conn).get_table_names()
        with store.begin() as conn:
            enqueue_create(conn, meter_id, now)  # already queued: nothing changes
        cfg = alembic_config(store.url)
        with store.write.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
            conn.commit()
        with store.reading() as conn:
            seqs = conn.execute(select(LedgerOutbox.seq).where(LedgerOutbox.operation == "CREATE")).all()
            assert seqs == [(0,)] and CREATE_SEQ < 0
            assert "reading_conflicts" not in inspect(conn).get_table_names()
    finally:
        store.dispose()
