"""SQL of the relay outbox: which windows to enqueue, which rows are due, and the status moves."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, exists, insert, or_, select, update
from sqlalchemy.orm import aliased

from connector.ethereum.contract import EnergyError, energy_to_wh, meter_key
from connector.ethereum.models import EthTransaction, Plan, RelayOutbox
from connector.store.models import LedgerOutbox, Meter, Window

BACKOFF_CAP = 300.0


def backoff(attempts: int) -> timedelta:
    """Delay before attempt `attempts + 1`: 2, 4, 8 ... seconds, at most five minutes."""
    return timedelta(seconds=min(BACKOFF_CAP, 2.0 ** max(1, attempts)))


def confirmed_windows_without_relay(conn: Connection, limit: int) -> list[Any]:
    """Windows whose BigchainDB TRANSFER is confirmed and that have no relay row yet, oldest first."""
    query = (
        select(
            Window.id,
            Window.meter_id,
            Window.start,
            Window.energy_wh,
            Window.fingerprint,
            LedgerOutbox.tx_id,
            Meter.tenant,
            Meter.service_path,
            Meter.entity_id,
        )
        .join(LedgerOutbox, LedgerOutbox.window_id == Window.id)
        .join(Meter, Meter.id == Window.meter_id)
        .outerjoin(RelayOutbox, RelayOutbox.window_id == Window.id)
        .where(
            LedgerOutbox.operation == "TRANSFER", LedgerOutbox.status == "confirmed", RelayOutbox.id.is_(None)
        )
        .order_by(Window.start, Window.id)
        .limit(limit)
    )
    return list(conn.execute(query).all())


def relay_values(row: Row[Any], now: datetime) -> dict[str, Any]:
    """The relay row for one confirmed window; dead at once when it cannot be recorded on chain."""
    status, error, energy = "pending", None, 0
    try:
        energy = energy_to_wh(row.energy_wh)
    except EnergyError as exc:
        status, error = "dead", str(exc)
    if not row.tx_id:
        status, error = "dead", "confirmed TRANSFER without a ledger transaction id"
    return {
        "window_id": row.id,
        "meter_id": row.meter_id,
        "meter_key": meter_key(row.tenant, row.service_path, row.entity_id).hex(),
        "interval_start": row.start,
        "energy_wh": energy,
        "fingerprint": row.fingerprint,
        "ledger_tx_id": row.tx_id or "",
        "status": status,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": error,
        "created_at": now,
        "updated_at": now,
    }


def insert_relays(conn: Connection, values: list[dict[str, Any]]) -> None:
    if values:
        conn.execute(insert(RelayOutbox), values)


def due_batch(conn: Connection, now: datetime, limit: int) -> list[RelayOutbox]:
    """Due pending rows of the oldest due interval, skipping meters with an earlier row still in flight.

    Keeping each meter's intervals in order keeps the on-chain chain head equal to the off-chain one. An
    earlier row is in flight while it is pending, or sent in a transaction not yet mined: until it is mined
    the node may lose it (a restart empties its pool), and its rows are sent again with a new nonce, which
    would land after a later interval sent meanwhile. Once mined, its nonce is spent before any later one.
    """
    earlier = aliased(RelayOutbox)
    unmined = exists().where(
        and_(EthTransaction.id == earlier.transaction_id, EthTransaction.status == "sent")
    )
    blocked = exists().where(
        and_(
            earlier.meter_id == RelayOutbox.meter_id,
            earlier.interval_start < RelayOutbox.interval_start,
            or_(earlier.status == "pending", and_(earlier.status == "sent", unmined)),
        )
    )
    due = and_(RelayOutbox.status == "pending", RelayOutbox.next_attempt_at <= now, ~blocked)
    first = conn.execute(
        select(RelayOutbox.interval_start).where(due).order_by(RelayOutbox.interval_start).limit(1)
    )
    start = first.scalar()
    if start is None:
        return []
    query = select(*RelayOutbox.__table__.c).where(due, RelayOutbox.interval_start == start)
    return [RelayOutbox(**row._mapping) for row in conn.execute(query.order_by(RelayOutbox.id).limit(limit))]


def settle_batch(conn: Connection, now: datetime, limit: int) -> list[Any]:
    """Final relay rows with a plan, no settle transaction yet and due, of the oldest such interval.

    For a final row next_attempt_at says when settle() is next due: at finality, and after a backoff when
    a settle() landed before the plan (`retry_settle`)."""
    has_plan = exists().where(
        and_(Plan.meter_key == RelayOutbox.meter_key, Plan.interval_start == RelayOutbox.interval_start)
    )
    due = and_(
        RelayOutbox.status == "final",
        RelayOutbox.settle_transaction_id.is_(None),
        RelayOutbox.next_attempt_at <= now,
        has_plan,
    )
    start = conn.execute(
        select(RelayOutbox.interval_start).where(due).order_by(RelayOutbox.interval_start).limit(1)
    ).scalar()
    if start is None:
        return []
    query = select(
        RelayOutbox.id, RelayOutbox.meter_key, RelayOutbox.interval_start, RelayOutbox.attempts
    ).where(due, RelayOutbox.interval_start == start)
    return list(conn.execute(query.order_by(RelayOutbox.id).limit(limit)).all())


def settle_rows(conn: Connection, settle_tx_id: int) -> list[Any]:
    """(id, meter_key, attempts) of the relay rows a settle transaction covers."""
    query = select(RelayOutbox.id, RelayOutbox.meter_key, RelayOutbox.attempts).where(
        RelayOutbox.settle_transaction_id == settle_tx_id
    )
    return list(conn.execute(query).all())


def retry_settle(conn: Connection, rows: list[Any], now: datetime) -> None:
    """Unlink rows from a settle() that did not settle them and make them due again after a backoff
    (attempts counts record and settle attempts together, so the wait grows up to five minutes)."""
    for row in rows:
        conn.execute(
            update(RelayOutbox)
            .where(RelayOutbox.id == row.id)
            .values(
                settle_transaction_id=None,
                attempts=row.attempts + 1,
                next_attempt_at=now + backoff(row.attempts + 1),
                updated_at=now,
            )
        )


def mark(conn: Connection, ids: list[int], now: datetime, **values: Any) -> None:
    """Set `values` on the relay rows `ids`."""
    if ids:
        conn.execute(update(RelayOutbox).where(RelayOutbox.id.in_(ids)).values(updated_at=now, **values))


def schedule_attempt(conn: Connection, rows: list[RelayOutbox], now: datetime) -> None:
    """Count an attempt and set the next one *before* sending, so a crash mid-send retries."""
    for row in rows:
        row.attempts += 1
        conn.execute(
            update(RelayOutbox)
            .where(RelayOutbox.id == row.id)
            .values(attempts=row.attempts, next_attempt_at=now + backoff(row.attempts), updated_at=now)
        )


def add_transaction(conn: Connection, **values: Any) -> int:
    """Insert an eth_transactions row and return its id."""
    values["tx_hashes"] = json.dumps([values["tx_hash"]])
    return int(
        conn.execute(insert(EthTransaction).values(**values).returning(EthTransaction.id)).scalar_one()
    )


def open_transactions(conn: Connection) -> list[Row[Any]]:
    """Transactions not final yet (sent, or mined with too few confirmations)."""
    query = (
        select(*EthTransaction.__table__.c)
        .where(EthTransaction.status.in_(("sent", "mined")))
        .order_by(EthTransaction.id)
    )
    return list(conn.execute(query).all())


def update_transaction(conn: Connection, tx_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(EthTransaction).where(EthTransaction.id == tx_id).values(updated_at=now, **values))
