"""The outbox enqueue helpers: one row per key, written inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from connector.ledger.outbox import CREATE_SEQ, enqueue_create, enqueue_transfer
from connector.store.db import Store
from connector.store.models import LedgerOutbox

from .helpers import add_meter, add_window


def test_enqueue_is_idempotent(store: Store, clock) -> None:
    """Enqueuing the same CREATE and TRANSFER twice leaves one row each, with the documented fields."""
    now = clock.now()
    meter_id = add_meter(store, "urn:ngsi-ld:SMX:1", now)
    start = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)
    window_id = add_window(store, meter_id, start, now)
    for _ in range(2):
        with store.begin() as conn:
            enqueue_create(conn, meter_id, now)
            enqueue_transfer(conn, meter_id, window_id, int(start.timestamp()), now)
    with store.reading() as conn:
        rows = conn.execute(select(LedgerOutbox).order_by(LedgerOutbox.seq)).all()
    assert [(r.idempotency_key, r.operation, r.seq, r.status, r.attempts) for r in rows] == [
        (f"create:{meter_id}", "CREATE", CREATE_SEQ, "pending", 0),
        (f"window:{window_id}", "TRANSFER", int(start.timestamp()), "pending", 0),
    ]
    assert rows[1].window_id == window_id and rows[0].window_id is None
    assert rows[0].next_attempt_at == now


def test_enqueue_rolls_back_with_caller(store: Store, clock) -> None:
    """A row enqueued in a transaction that fails is not kept."""
    meter_id = add_meter(store, "urn:ngsi-ld:SMX:2", clock.now())
    try:
        with store.begin() as conn:
            enqueue_create(conn, meter_id, clock.now())
            raise RuntimeError("closing failed")
    except RuntimeError:
        pass
    with store.reading() as conn:
        assert conn.execute(select(LedgerOutbox)).all() == []
