"""Storing parsed notifications: meters registered, raw readings committed, duplicates and late ones counted.

`write_batch` stores several notifications in ONE store transaction (group commit); the `IngestWriter`
thread feeds it from the HTTP request threads, so under load one fsync acknowledges many notifications.
A request is answered only after the transaction holding its readings has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Dialect

from connector.core.fingerprint import chain_seed
from connector.core.windows import window_start
from connector.ingest_rows import insert_readings, reading_rows, record_conflicts
from connector.ledger.outbox import enqueue_creates
from connector.settings import IngestSettings, Settings
from connector.store.db import Store
from connector.store.ingest_sql import IngestSql, MeterKey, MeterRow, time_binder
from ngsi.model import Headers, ParsedNotification
from ngsi.parse import EARLIEST, LATEST
from ngsi.schemas import parse_time

# No window may start before this: its end and its seq must stay computable (year 2 of the calendar).
EARLIEST_POSSIBLE = datetime(2, 1, 1, tzinfo=UTC)


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
    # Readings whose (meter, attribute, observation time) already held a different value: kept as evidence
    # in reading_conflicts, never fingerprinted. One dict per reading: id, attr, observedAt, value, stored.
    conflicts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class IngestConfig:
    """The slice of the settings the ingest path reads."""

    window_length: int  # seconds (window.length)
    # Entity type -> (serial number attribute, manufacturer attribute) of its meters (entity_types).
    identity_attrs: dict[str, tuple[str, str]] = field(default_factory=dict)
    workers: int = 1  # server.workers: more than one shares SQLite's write turn between processes

    @classmethod
    def of(cls, settings: Settings) -> IngestConfig:
        """The ingest slice of `settings`."""
        identity = {
            name: (et.serial_number_attr, et.manufacturer_attr) for name, et in settings.entity_types.items()
        }
        return cls(settings.window.length, identity, settings.server.workers)


DEFAULT_IDENTITY = ("serialNumber", "manufacturer")


def write_batch(
    conn: Connection, items: list[Incoming], config: IngestConfig, prepared: list[Prepared] | None = None
) -> list[IngestResult]:
    """Store every item's readings inside `conn`'s transaction; return one result per item, in order.

    The whole group costs one meter lookup, one readings insert and one pending-window upsert, whatever
    the number of notifications in it (plus a registration per meter seen for the first time).
    `prepared` (one per item, from `RowBuilder`) is what needs no database, built before the write turn;
    built here when not given.
    """
    if prepared is None:
        builder = RowBuilder(conn.dialect, config.window_length)
        prepared = [builder.build(item) for item in items]
    results = [IngestResult() for _ in items]
    wanted: dict[MeterKey, tuple[str, int]] = {}  # meter -> (entity type, first item carrying it)
    for i, prep in enumerate(prepared):
        for key, entity_type in prep.meters.items():
            if key not in wanted:
                wanted[key] = (entity_type, i)
    sql = IngestSql(conn)
    try:
        meters = sql.meters(list(wanted))
        # New meters, pending windows and late counts are written in key order: with several worker
        # processes on PostgreSQL, two transactions locking the same rows in opposite orders would deadlock.
        new = sorted(k for k in wanted if k not in meters)
        if new:
            registered = _register_meters(conn, sql, new, wanted, items, config)
            meters.update(registered)
            for key in new:
                results[wanted[key][1]].new_meters.append(key[2])
        batch = reading_rows(items, prepared, meters)
        insert_readings(sql, batch, results)
        record_conflicts(sql, batch, results, {mid: key[2] for key, (mid, _f) in meters.items()})
    finally:
        sql.close()
    for item, result in zip(items, results, strict=True):
        result.duplicates = len(item.parsed.readings) - result.accepted - len(result.conflicts)
    return results


# What a reading's row needs that no database does: meter key, attribute, attribute type, observation
# time, the same as the store binds it, time source, value (canonical JSON), number text, unit, window
# start, the same as bound.
PreRow = tuple[MeterKey, str, Any, datetime, Any, str, str, Any, Any, datetime, Any]


@dataclass
class Prepared:
    """A notification's rows as far as they can be built before the write turn."""

    rows: list[PreRow]
    received: Any  # the receipt time as the store binds it
    meters: dict[MeterKey, str]  # meter -> entity type, in order of first appearance


class RowBuilder:
    """Builds `Prepared` rows for one store dialect; used on the request's thread, outside the lock."""

    def __init__(self, dialect: Dialect, length: int) -> None:
        self.bind = time_binder(dialect)
        self.length = length

    def build(self, item: Incoming) -> Prepared:
        bind, length = self.bind, self.length
        bound: dict[datetime, Any] = {}  # a notification repeats its times (often one for all entities)
        starts: dict[datetime, datetime] = {}
        tenant, path = item.headers.tenant, item.headers.service_path
        rows: list[PreRow] = []
        meters: dict[MeterKey, str] = {}
        for r in item.parsed.readings:
            at = r.observed_at
            ws = starts.get(at)
            if ws is None:
                ws = starts[at] = window_start(at, length)
                bound[at] = bind(at)
                if ws not in bound:
                    bound[ws] = bind(ws)
            key = (tenant, r.service_path or path, r.entity_id)
            if key not in meters:
                meters[key] = r.entity_type
            number = None if r.number is None else str(r.number)
            rows.append(
                (key, r.attr, r.attr_type, at, bound[at], r.time_source, canonical_value(r.value), number,
                 r.unit, ws, bound[ws])
            )  # fmt: skip
        return Prepared(rows, bind(item.received_at), meters)


def _register_meters(
    conn: Connection,
    sql: IngestSql,
    keys: list[MeterKey],
    wanted: dict[MeterKey, tuple[str, int]],
    items: list[Incoming],
    config: IngestConfig,
) -> dict[MeterKey, tuple[int, datetime | None]]:
    """Register meters seen for the first time (`keys`, in key order) with one INSERT, and queue their
    CREATEs in the same transaction. A meter another process registered first is looked up instead.

    One statement for the group: registered one by one, a new meter cost 0.8 ms of the writer's time, so
    the first notifications of 2,000 new meters held every other notification's commit back.
    """
    rows: list[MeterRow] = []
    for key in keys:
        entity_type, i = wanted[key]
        item = items[i]
        attrs = item.parsed.entity_attrs.get(key[2], {})
        serial_attr, maker_attr = config.identity_attrs.get(entity_type, DEFAULT_IDENTITY)
        serial = _text_attr(attrs, serial_attr)
        maker = _text_attr(attrs, maker_attr)
        seed = chain_seed(*key)
        rows.append((*key, entity_type, serial, maker, item.received_at, seed, seed, 0))
    found: dict[MeterKey, tuple[int, datetime | None]] = {
        key: (mid, None) for key, mid in sql.register_meters(rows).items()
    }
    creates = [(found[key][0], items[wanted[key][1]].received_at) for key in keys if key in found]
    enqueue_creates(conn, creates)
    taken = [key for key in keys if key not in found]  # another process registered them first
    if taken:
        found.update(sql.meters(taken))
    return found


def _text_attr(attrs: dict[str, object], name: str) -> str | None:
    value = attrs.get(name)
    return None if value is None else str(value)[:256]


def observation_range(ingest: IngestSettings, received_at: datetime) -> tuple[datetime, datetime]:
    """The plausible observation times of a notification received at `received_at` (settings
    ingest.earliest_observation and ingest.max_future); outside, a reading is rejected with the reason."""
    earliest = _earliest(ingest.earliest_observation)
    if ingest.max_future > 0:
        return earliest, min(LATEST, received_at + timedelta(seconds=ingest.max_future))
    return earliest, LATEST


@functools.lru_cache(maxsize=8)
def _earliest(text: str) -> datetime:
    parsed = parse_time(text) if text else EARLIEST
    if isinstance(parsed, str):
        raise ValueError(f"ingest.earliest_observation: {parsed}")
    return max(parsed, EARLIEST_POSSIBLE)


def canonical_value(value: object) -> str:
    """The stored text of a raw value: JSON, keys sorted, no spaces, UTF-8 kept as is."""
    kind = type(value)  # the common cases first, written exactly as json.dumps would write them
    if kind is str:
        return _encode_str(value)  # type: ignore[arg-type]
    if kind is int or (kind is float and math.isfinite(value)):  # type: ignore[arg-type]
        return repr(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]


class IngestWriter:
    """A single writer thread that commits queued notifications in groups (one transaction per group).

    `submit` blocks the calling request thread until its notification's transaction has committed or
    failed. If a group's transaction fails, each of its notifications is retried alone, so one bad
    notification cannot fail the others.
    """

    def __init__(
        self,
        store: Store,
        config: IngestConfig,
        on_batch: Callable[[int], None] | None = None,
        max_batch: int = 128,
    ) -> None:
        self.store = store
        self.config = config
        self.on_batch = on_batch
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | _AsyncJob | None] = queue.SimpleQueue()  # C, no Condition
        self.rows = RowBuilder(store.write.dialect, config.window_length)
        self._thread: threading.Thread | None = None
        # Held while the writer runs a group's statements (not its commit): see `yield_to_writer`.
        self._inserting = threading.Lock()
        # Only SQLite's write turn is shared by the processes; PostgreSQL runs their transactions side by
        # side, and a statement waiting there for a row lock must not hold the event loop up.
        self._shared_turn = config.workers > 1 and store.write_lock is not None

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
                return write_batch(conn, [item], self.config)[0]
        job = _Job(item, self.rows.build(item))
        self._queue.put(job)
        if not job.done.acquire(timeout=timeout):
            raise TimeoutError("the store did not commit in time")
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def submit_async(self, item: Incoming, timeout: float = 30.0) -> Awaitable[IngestResult]:
        """`submit` for a coroutine on a running event loop: await the result (same errors)."""
        loop = asyncio.get_running_loop()
        if self._thread is None:
            future: asyncio.Future[IngestResult] = loop.create_future()
            try:
                future.set_result(self.submit(item))
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting request, as submit raises it
                future.set_exception(exc)
            return future
        job = _AsyncJob(item, self.rows.build(item), loop)
        self._queue.put(job)
        return asyncio.wait_for(job.future, timeout)

    def yield_to_writer(self) -> None:
        """With several worker processes on SQLite, wait while this process's writer is running a group's
        statements; called before a notification is parsed.

        The writer gives up the GIL at every SQLite call and gets it back only when the parsing thread
        lets go, so its statements took about twice their CPU time while it held the store's write turn,
        which the other processes' writers wait for. Parsing waits instead: a few milliseconds per group,
        and never during the commit's fsync, when the GIL is free anyway. Legacy 100-entity ingest with 2
        workers: 55,000-59,000 -> 60,000-64,000 readings/s. One process has nobody waiting for its turn:
        there it made the slowest answers slower (legacy p99 180 -> 340-590 ms) for no gain in rate.
        """
        if self._shared_turn:
            self._inserting.acquire()
            self._inserting.release()

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

    def _commit(self, jobs: list[_Job | _AsyncJob]) -> None:
        answers: dict[asyncio.AbstractEventLoop, list[tuple[_AsyncJob, Any, BaseException | None]]] = {}
        self._commit_group(jobs, answers)
        for loop, done in answers.items():  # one wake-up per event loop for the whole group
            with contextlib.suppress(RuntimeError):  # a closed loop: its requests are gone with it
                loop.call_soon_threadsafe(_AsyncJob.resolve_all, done)

    def _commit_group(self, jobs: list[_Job | _AsyncJob], answers: dict[Any, list[Any]]) -> None:
        try:
            with self.store.begin() as conn, self._inserting:
                results = write_batch(conn, [j.item for j in jobs], self.config, [j.rows for j in jobs])
        except Exception as exc:  # noqa: BLE001 - isolate the failing notification, hand its error back
            if len(jobs) == 1:
                jobs[0].finish(None, exc, answers)
                return
            for job in jobs:
                self._commit_group([job], answers)
            return
        if self.on_batch:
            self.on_batch(len(jobs))
        for job, res in zip(jobs, results, strict=True):
            job.finish(res, None, answers)


class _Job:
    """One submitted notification; `done` is held until its transaction has committed or failed.

    A plain lock released by the writer: cheaper than threading.Event, which builds a Condition.
    """

    __slots__ = ("item", "rows", "done", "result", "error")

    def __init__(self, item: Incoming, rows: Prepared) -> None:
        self.item = item
        self.rows = rows
        self.done = threading.Lock()
        self.done.acquire()
        self.result: IngestResult | None = None
        self.error: BaseException | None = None

    def finish(self, result: IngestResult | None, error: BaseException | None, answers: Any) -> None:
        self.result, self.error = result, error
        self.done.release()


class _AsyncJob:
    """One notification submitted from an event loop; answered on that loop once its group is done."""

    __slots__ = ("item", "rows", "loop", "future")

    def __init__(self, item: Incoming, rows: Prepared, loop: asyncio.AbstractEventLoop) -> None:
        self.item = item
        self.rows = rows
        self.loop = loop
        self.future: asyncio.Future[IngestResult] = loop.create_future()

    def finish(self, result: IngestResult | None, error: BaseException | None, answers: Any) -> None:
        answers.setdefault(self.loop, []).append((self, result, error))

    @staticmethod
    def resolve_all(done: list[tuple[_AsyncJob, Any, BaseException | None]]) -> None:
        for job, result, error in done:
            if job.future.done():  # the request timed out or its client went away
                continue
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)
