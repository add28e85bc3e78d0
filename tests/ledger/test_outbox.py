"""The outbox enqueue helpers: one row per key, written inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update

from connector.ledger.outbox import CREATE_SEQ, due_heads, enqueue_create, enqueue_transfer, lower_open_row
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


def _meter_with_windows(store: Store, entity_id: str, now: datetime, windows: int) -> tuple[int, list[int]]:
    """A meter with its CREATE and `windows` TRANSFERs queued; its id and its rows' ids in seq order."""
    meter_id = add_meter(store, entity_id, now)
    start = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)
    starts = [start + timedelta(minutes=15 * k) for k in range(windows)]
    window_ids = [add_window(store, meter_id, begins, now) for begins in starts]
    with store.begin() as conn:
        enqueue_create(conn, meter_id, now)
        for window_id, begins in zip(window_ids, starts, strict=True):
            enqueue_transfer(conn, meter_id, window_id, int(begins.timestamp()), now)
    with store.reading() as conn:
        ids = conn.execute(
            select(LedgerOutbox.id).where(LedgerOutbox.meter_id == meter_id).order_by(LedgerOutbox.seq)
        ).scalars()
        return meter_id, list(ids)


def _set(store: Store, row_id: int, **values: object) -> None:
    with store.begin() as conn:
        conn.execute(update(LedgerOutbox).where(LedgerOutbox.id == row_id).values(**values))


def test_due_heads_are_each_meters_lowest_open_row_if_due(store: Store, clock) -> None:
    """Per meter only its lowest-seq open row, and only when due; confirmed and dead rows below it do not
    count, a head that is not due hides the rows behind it, and rows come in next_attempt_at, id order."""
    now = clock.now()
    a, a_rows = _meter_with_windows(store, "urn:a", now, 3)
    b, b_rows = _meter_with_windows(store, "urn:b", now, 2)
    c, c_rows = _meter_with_windows(store, "urn:c", now, 2)
    with store.reading() as conn:
        assert due_heads(conn, now) == [(a_rows[0], a), (b_rows[0], b), (c_rows[0], c)]
    _set(store, a_rows[0], status="confirmed")
    _set(store, a_rows[1], status="dead")  # a dead row does not hold its meter back
    _set(store, b_rows[0], status="sent", next_attempt_at=now + timedelta(seconds=30))
    _set(store, c_rows[0], status="confirmed")
    _set(store, c_rows[1], next_attempt_at=now - timedelta(seconds=5))
    with store.reading() as conn:
        assert due_heads(conn, now) == [(c_rows[1], c), (a_rows[2], a)]  # b's head is not due yet
        assert due_heads(conn, now, meter_id=b) == []
        assert due_heads(conn, now, meter_id=a) == [(a_rows[2], a)]
        assert due_heads(conn, now, limit=1) == [(c_rows[1], c)]
        later = now + timedelta(seconds=30)
        assert due_heads(conn, later) == [(c_rows[1], c), (a_rows[2], a), (b_rows[0], b)]


def test_due_heads_look_below_a_row_on_the_open_index_not_through_the_history(store: Store) -> None:
    """On SQLite the lower-open-row probe is answered from ix_ledger_outbox_open (meter, status, seq), so its
    cost does not grow with the meter's confirmed history (ix_ledger_outbox_meter would walk it)."""
    if store.write.dialect.name != "sqlite":
        return  # PostgreSQL's plan depends on its statistics; the semantics test above runs on both
    now = datetime(2026, 1, 1, tzinfo=UTC)
    query = select(LedgerOutbox.id).where(~lower_open_row())
    with store.reading() as conn:
        sql = str(query.compile(conn.engine, compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(row) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert due_heads(conn, now) == []
    assert "ix_ledger_outbox_open" in plan, plan
