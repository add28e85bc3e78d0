"""Meter histories for the API tests: readings, windows closed with the real fingerprint core, and their
TRANSFERs anchored on a live dev ledger by the real ledger writer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select, update

from connector.audit import LedgerWindow, OffChainWindow
from connector.closer import insert_window
from connector.core.canonical import time_text
from connector.core.fingerprint import chain_seed, seal_window
from connector.core.readings import StoredReading
from connector.keystore import Keystore
from connector.ledger.outbox import enqueue_create, enqueue_transfer
from connector.ledger.writer import LedgerWriter
from connector.settings import Settings
from connector.store.db import Store
from connector.store.models import LedgerOutbox, Meter, Reading

T0 = datetime(2024, 3, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


@dataclass
class MeterHistory:
    meter_id: int
    entity_id: str
    windows: list[datetime]


def add_meter(store: Store, entity_id: str, tenant: str = "", path: str = "/", type_: str = "SMX") -> int:
    """Insert a meter with its real chain seed; returns its id."""
    seed = chain_seed(tenant, path, entity_id)
    with store.begin() as conn:
        values = dict(tenant=tenant, service_path=path, entity_id=entity_id, entity_type=type_, first_seen=T0)
        values.update(chain_seed=seed, chain_head=seed, late_since_close=0)
        meter_id = int(conn.execute(insert(Meter).values(**values)).inserted_primary_key[0])
        enqueue_create(conn, meter_id, T0)
    return meter_id


def minute_readings(start: datetime, minutes: int = 15, base: int = 0) -> list[StoredReading]:
    """One power (W) and one register (kWh) reading per minute, deterministic values."""
    out = []
    for m in range(minutes):
        at = start + timedelta(minutes=m, seconds=7)
        p = Decimal(1000 + (base + m) % 50 * 3) / 2
        e = Decimal(base * 15 + m) / 1000 + 100
        out.append(StoredReading("P", "Number", at, json.dumps(float(p)), p, "W"))
        out.append(StoredReading("E", "Number", at, json.dumps(float(e)), e, "kWh"))
    return out


def close_windows(
    store: Store, settings: Settings, meter_id: int, n: int, start: datetime = T0, anchor: bool = True
) -> list[datetime]:
    """Store `n` windows of minute readings from `start`, closed with the fingerprint core and queued
    for the ledger (when `anchor`). Returns the window starts."""
    starts = []
    with store.begin() as conn:
        meter = conn.execute(select(Meter).where(Meter.id == meter_id)).one()
        head = meter.chain_head
        for i in range(n):
            ws = start + i * WINDOW
            readings = minute_readings(ws, base=i)
            _insert_readings(conn, meter_id, ws, readings)
            cw = seal_window(readings, ws, ws + WINDOW, head, lambda a: settings.attribute_spec("SMX", a))
            window_id = _insert_window(conn, meter_id, cw)
            if anchor:
                enqueue_transfer(conn, meter_id, window_id, int(ws.timestamp()), T0)
            head = cw.chain_hash
            starts.append(ws)
        conn.execute(update(Meter).where(Meter.id == meter_id).values(chain_head=head, last_window_start=ws))
    return starts


def _insert_readings(conn, meter_id: int, ws: datetime, readings: list[StoredReading]) -> None:  # type: ignore[no-untyped-def]
    rows = [
        dict(
            meter_id=meter_id,
            attr=r.attr,
            attr_type=r.attr_type,
            observed_at=r.observed_at,
            received_at=r.observed_at + timedelta(seconds=1),
            time_source="TimeInstant",
            value_json=r.value_json,
            number=None if r.number is None else str(r.number),
            unit=r.unit,
            window_start=ws,
            late=False,
        )
        for r in readings
    ]
    conn.execute(insert(Reading), rows)


def _insert_window(conn, meter_id: int, cw) -> int:  # type: ignore[no-untyped-def]
    return insert_window(conn, meter_id, cw, cw.end + timedelta(minutes=2))


def anchor(store: Store, settings: Settings, keystore: Keystore, urls: list[str]) -> None:
    """Run the real ledger writer until every outbox row is confirmed (asserts it)."""
    # The real clock: the rows were queued at T0, in 2024, and must be due.
    deadline = time.monotonic() + 120  # a hang guard: the writer retries with backoff on a busy machine
    with LedgerWriter(settings.ledger, store, keystore, urls, lambda: datetime.now(UTC)) as writer:
        while True:
            writer.dispatch_once()
            with store.reading() as conn:
                unconfirmed = select(LedgerOutbox.id).where(LedgerOutbox.status != "confirmed")
                open_rows = conn.execute(unconfirmed).all()
            if not open_rows:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(open_rows)} outbox rows not confirmed")
            time.sleep(0.05)


def put_reading(store: Store, meter_id: int, ws: datetime, at: timedelta, value: str, late: bool) -> None:
    """Write one raw P reading into window `ws` directly (as a forger, or a late arrival, would)."""
    with store.begin() as conn:
        conn.execute(
            insert(Reading).values(
                meter_id=meter_id,
                attr="P",
                attr_type="Number",
                observed_at=ws + at,
                received_at=ws + (timedelta(hours=1) if late else at + timedelta(seconds=30)),
                time_source="TimeInstant",
                value_json=value,
                number=value,
                unit="W",
                window_start=ws,
                late=late,
            )
        )


def add_late_reading(store: Store, meter_id: int, ws: datetime) -> None:
    """A reading of window `ws` that arrived after the window closed (late: not in its fingerprint)."""
    put_reading(store, meter_id, ws, timedelta(minutes=3, seconds=30), "777", late=True)


def chain_of(settings, n: int, link_broken_at: int | None = None):  # type: ignore[no-untyped-def]
    """`n` sealed windows of one meter as the verifier sees them: (seed, spec, ledger side, off-chain side);
    window `link_broken_at` is chained to something other than its predecessor."""
    seed = chain_seed("", "/", "urn:m")
    spec = lambda a: settings.attribute_spec("SMX", a)  # noqa: E731
    prev, ledger, off = seed, [], []
    for i in range(n):
        ws = T0 + i * WINDOW
        readings = minute_readings(ws, base=i)
        link = "ab" * 32 if i == link_broken_at else prev
        cw = seal_window(readings, ws, ws + WINDOW, link, spec)
        ledger.append(
            LedgerWindow(f"tx{i}", ws, ws + WINDOW, cw.summary, cw.fingerprint, cw.chain_hash, link)
        )
        off.append(OffChainWindow(ws, ws + WINDOW, [_row(r) for r in readings]))
        prev = cw.chain_hash
    return seed, spec, ledger, off


def _row(r):  # type: ignore[no-untyped-def]
    # A reading as load_off_chain's rows carry it.
    return (r.attr, r.attr_type, time_text(r.observed_at), r.value_json, str(r.number), r.unit)
