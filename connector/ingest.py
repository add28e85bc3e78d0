"""Storing parsed notifications: meters registered, raw readings committed, duplicates and late ones counted.

`write_batch` stores several notifications in ONE store transaction (group commit); the `IngestWriter`
thread feeds it from the HTTP request threads, so under load one fsync acknowledges many notifications.
A request is answered only after the transaction holding its readings has committed.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.fingerprint import chain_seed
from connector.ledger.outbox import enqueue_create
from connector.settings import Settings
from connector.store.db import Store
from connector.store.models import Meter, PendingWindow, Reading
from connector.windows import window_start
from ngsi.model import Headers, ParsedNotification
from ngsi.model import Reading as NgsiReading


@dataclass(frozen=True)
class Incoming:
    """One parsed notification waiting to be stored."""

    parsed: ParsedNotification
    headers: Headers
    received_at: datetime


@dataclass
class IngestResult:
    """What became of one notification's readings."""

    accepted: int = 0
    duplicates: int = 0
    late: int = 0
    new_meters: list[str] = field(default_factory=list)


MeterKey = tuple[str, str, str]  # tenant, service path, entity id


def canonical_value(value: object) -> str:
    """The stored text of a raw value: JSON, keys sorted, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_batch(conn: Connection, items: list[Incoming], settings: Settings) -> list[IngestResult]:
    """Store every item's readings inside `conn`'s transaction; return one result per item, in order."""
    results = []
    for item in items:
        results.append(_write_one(conn, item, settings))
    return results


def _write_one(conn: Connection, item: Incoming, settings: Settings) -> IngestResult:
    result = IngestResult()
    by_entity: dict[str, list[NgsiReading]] = {}
    for r in item.parsed.readings:
        by_entity.setdefault(r.entity_id, []).append(r)
    for entity_id, readings in by_entity.items():
        key = (item.headers.tenant, item.headers.service_path, entity_id)
        meter_id, frontier, created = _meter_for(conn, key, readings[0].entity_type, item, settings)
        if created:
            result.new_meters.append(entity_id)
        _store_readings(conn, meter_id, frontier, readings, item, settings, result)
    return result


def _meter_for(
    conn: Connection, key: MeterKey, entity_type: str, item: Incoming, settings: Settings
) -> tuple[int, datetime | None, bool]:
    """The meter's id and closed-window frontier, registering it (and its CREATE) on first sight.

    On PostgreSQL the row is read FOR SHARE so the window closer (FOR UPDATE) cannot close a window of
    this meter between our lateness check and our commit; SQLite transactions are already serialized.
    """
    row = _select_meter(conn, key)
    if row is not None:
        return row[0], row[1], False
    attrs = item.parsed.entity_attrs.get(key[2], {})
    et = settings.entity_types.get(entity_type)
    seed = chain_seed(*key)
    values = {
        "tenant": key[0],
        "service_path": key[1],
        "entity_id": key[2],
        "entity_type": entity_type,
        "serial_number": _text_attr(attrs, et.serial_number_attr if et else "serialNumber"),
        "manufacturer": _text_attr(attrs, et.manufacturer_attr if et else "manufacturer"),
        "first_seen": item.received_at,
        "chain_seed": seed,
        "chain_head": seed,
        "late_since_close": 0,
    }
    ins = _insert(conn, Meter).values(**values).on_conflict_do_nothing().returning(Meter.id)
    new_id = conn.execute(ins).scalar()
    if new_id is None:  # another process registered it first
        row = _select_meter(conn, key)
        assert row is not None
        return row[0], row[1], False
    enqueue_create(conn, new_id, item.received_at)
    return new_id, None, True


def _select_meter(conn: Connection, key: MeterKey) -> tuple[int, datetime | None] | None:
    q = select(Meter.id, Meter.last_window_start).where(
        Meter.tenant == key[0], Meter.service_path == key[1], Meter.entity_id == key[2]
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(read=True)
    row = conn.execute(q).first()
    return (row[0], row[1]) if row else None


def _text_attr(attrs: dict[str, object], name: str) -> str | None:
    value = attrs.get(name)
    return None if value is None else str(value)[:256]


def _store_readings(
    conn: Connection,
    meter_id: int,
    frontier: datetime | None,
    readings: list[NgsiReading],
    item: Incoming,
    settings: Settings,
    result: IngestResult,
) -> None:
    length = settings.window.length
    rows = [_reading_row(meter_id, r, item, window_start(r.observed_at, length), frontier) for r in readings]
    rows = list({(r["attr"], r["observed_at"]): r for r in rows}.values())  # same key twice in one body
    result.duplicates += len(readings) - len(rows)
    ins = _insert(conn, Reading).on_conflict_do_nothing().returning(Reading.window_start, Reading.late)
    stored = conn.execute(ins, rows).all() if rows else []
    stored_windows = Tally(ws for ws, late in stored if not late)
    attempted = Tally(r["window_start"] for r in rows if not r["late"])
    late = sum(1 for _, is_late in stored if is_late)
    result.accepted += len(stored)
    result.late += late
    result.duplicates += len(rows) - len(stored)
    _mark_pending(conn, meter_id, attempted, stored_windows)
    if late:
        conn.execute(
            update(Meter).where(Meter.id == meter_id).values(late_since_close=Meter.late_since_close + late)
        )


def _reading_row(
    meter_id: int, r: NgsiReading, item: Incoming, ws: datetime, frontier: datetime | None
) -> dict[str, object]:
    return {
        "meter_id": meter_id,
        "attr": r.attr,
        "attr_type": r.attr_type,
        "observed_at": r.observed_at,
        "received_at": item.received_at,
        "time_source": r.time_source,
        "value_json": canonical_value(r.value),
        "number": None if r.number is None else str(r.number),
        "unit": r.unit,
        "window_start": ws,
        "late": frontier is not None and ws <= frontier,
        "correlator": item.headers.correlator,
    }


def _mark_pending(
    conn: Connection, meter_id: int, attempted: Tally[datetime], stored: Tally[datetime]
) -> None:
    """Record every open window that got readings, and the duplicates it saw, for the closer."""
    for ws, n in attempted.items():
        dups = n - stored.get(ws, 0)
        ins = _insert(conn, PendingWindow).values(meter_id=meter_id, window_start=ws, duplicates=dups)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["meter_id", "window_start"],
                set_={"duplicates": PendingWindow.duplicates + dups},
            )
        )


def _insert(conn: Connection, model: type) -> sqlite.Insert | postgresql.Insert:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


class IngestWriter:
    """A single writer thread that commits queued notifications in groups (one transaction per group).

    `submit` blocks the calling request thread until its notification's transaction has committed or
    failed. If a group's transaction fails, each of its notifications is retried alone, so one bad
    notification cannot fail the others.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        on_batch: Callable[[int], None] | None = None,
        max_batch: int = 128,
    ) -> None:
        self.store = store
        self.settings = settings
        self.on_batch = on_batch
        self.max_batch = max_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ingest-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def submit(self, item: Incoming, timeout: float = 30.0) -> IngestResult:
        """Store `item`; return when committed. Raises the store's error if it could not be stored."""
        if self._thread is None:  # not started (tests, one-off use): write synchronously
            with self.store.begin() as conn:
                return write_batch(conn, [item], self.settings)[0]
        job = _Job(item)
        self._queue.put(job)
        if not job.done.wait(timeout):
            raise TimeoutError("the store did not commit in time")
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            with self.store.begin() as conn:
                results = write_batch(conn, [j.item for j in jobs], self.settings)
        except Exception as exc:  # noqa: BLE001 - isolate the failing notification, hand its error back
            if len(jobs) == 1:
                jobs[0].error = exc
                jobs[0].done.set()
                return
            for job in jobs:
                self._commit([job])
            return
        if self.on_batch:
            self.on_batch(len(jobs))
        for job, res in zip(jobs, results, strict=True):
            job.result = res
            job.done.set()


class _Job:
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: Incoming) -> None:
        self.item = item
        self.done = threading.Event()
        self.result: IngestResult | None = None
        self.error: BaseException | None = None
