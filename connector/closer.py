"""Closing windows: where 15-minute windows are closed, fingerprinted, hash-linked and queued for the ledger.

A window of a meter is closed once its end plus the grace period has passed. Each close is one store
transaction: the Window row, the meter's new chain head and the window's ledger outbox row are written
together, so a closed window is never without its TRANSFER-to-be. Windows of a meter close strictly in
time order, which is what makes the chain and the lateness rule (a reading for a window at or before the
meter's last closed window is late) hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy import Connection, delete, insert, select, update

from connector.core.canonical import decimal_text
from connector.core.fingerprint import ClosedWindow, seal_window
from connector.core.readings import StoredReading
from connector.core.windows import last_closable_start, window_end
from connector.ledger.outbox import enqueue_transfer
from connector.settings import Settings
from connector.store.db import Store
from connector.store.models import Meter, PendingWindow, Reading, Window

log = structlog.get_logger("connector.closer")


@dataclass(frozen=True)
class ClosedInfo:
    """What the closer did for one window (for logs, metrics and the demo)."""

    meter_id: int
    entity_id: str
    start: datetime
    reading_count: int
    chain_hash: str


def close_due_windows(store: Store, settings: Settings, now: datetime, limit: int = 1000) -> list[ClosedInfo]:
    """Close every pending window whose end + grace has passed at `now`; return what was closed."""
    cutoff = last_closable_start(now, settings.window.length, settings.window.grace)
    with store.reading() as conn:
        due = conn.execute(
            select(PendingWindow.meter_id, PendingWindow.window_start)
            .where(PendingWindow.window_start <= cutoff)
            .order_by(PendingWindow.meter_id, PendingWindow.window_start)
            .limit(limit)
        ).all()
    closed = []
    for meter_id, start in due:
        with store.begin() as conn:
            info = close_one(conn, settings, meter_id, start, now)
        if info is not None:
            closed.append(info)
            log.info(
                "window.closed", meter=info.entity_id, window=start.isoformat(), readings=info.reading_count
            )
    return closed


def close_one(
    conn: Connection, settings: Settings, meter_id: int, start: datetime, now: datetime
) -> ClosedInfo | None:
    """Close one (meter, window) inside `conn`'s transaction; None if another closer already did."""
    meter = _lock_meter(conn, meter_id)
    pending = conn.execute(
        select(PendingWindow.duplicates).where(
            PendingWindow.meter_id == meter_id, PendingWindow.window_start == start
        )
    ).first()
    if pending is None:
        return None
    _drop_pending(conn, meter_id, start)
    if meter.last_window_start is not None and start <= meter.last_window_start:
        return None  # cannot happen through ingest (those readings are late); never rewrite history
    end = window_end(start, settings.window.length)
    readings = _window_readings(conn, meter_id, start)
    cw = seal_window(
        readings, start, end, meter.chain_head, lambda attr: settings.attribute_spec(meter.entity_type, attr)
    )
    window_id = insert_window(conn, meter_id, cw, now, pending.duplicates, meter.late_since_close)
    enqueue_transfer(conn, meter_id, window_id, int(start.timestamp()), now)
    conn.execute(
        update(Meter)
        .where(Meter.id == meter_id)
        .values(chain_head=cw.chain_hash, last_window_start=start, late_since_close=0)
    )
    return ClosedInfo(meter_id, meter.entity_id, start, cw.reading_count, cw.chain_hash)


def _lock_meter(conn: Connection, meter_id: int):  # type: ignore[no-untyped-def]
    q = select(Meter).where(Meter.id == meter_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()  # ingest reads it FOR SHARE: no reading slips in while we close
    return conn.execute(q).one()


def _drop_pending(conn: Connection, meter_id: int, start: datetime) -> None:
    conn.execute(
        delete(PendingWindow).where(PendingWindow.meter_id == meter_id, PendingWindow.window_start == start)
    )


def _window_readings(conn: Connection, meter_id: int, start: datetime) -> list[StoredReading]:
    rows = conn.execute(
        select(
            Reading.attr,
            Reading.attr_type,
            Reading.observed_at,
            Reading.value_json,
            Reading.number,
            Reading.unit,
        )
        .where(Reading.meter_id == meter_id, Reading.window_start == start, Reading.late.is_(False))
        .order_by(Reading.observed_at, Reading.attr)
    ).all()
    return [stored_reading(*row) for row in rows]


def stored_reading(
    attr: str,
    attr_type: str | None,
    observed_at: datetime,
    value_json: str,
    number: str | None,
    unit: str | None,
) -> StoredReading:
    """A store row's columns as the fingerprint core's StoredReading."""
    return StoredReading(
        attr=attr,
        attr_type=attr_type,
        observed_at=observed_at,
        value_json=value_json,
        number=None if number is None else Decimal(number),
        unit=unit,
    )


def insert_window(
    conn: Connection, meter_id: int, cw: ClosedWindow, closed_at: datetime, duplicates: int = 0, late: int = 0
) -> int:
    """Insert a closed window's row; return its id. (Also used by tests and benchmarks to build history.)"""
    values = {
        "meter_id": meter_id,
        "start": cw.start,
        "end": cw.end,
        "closed_at": closed_at,
        "reading_count": cw.reading_count,
        "duplicate_count": duplicates,
        "late_count": late,
        "summary_json": cw.summary_json,
        "energy_wh": None if cw.energy_wh is None else decimal_text(cw.energy_wh),
        "fingerprint": cw.fingerprint,
        "prev_chain_hash": cw.prev_chain_hash,
        "chain_hash": cw.chain_hash,
    }
    return int(conn.execute(insert(Window).values(**values).returning(Window.id)).scalar_one())
