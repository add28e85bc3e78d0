"""Closing windows: where 15-minute windows are closed, fingerprinted, hash-linked and queued for the ledger.

A window of a meter is closed once its end plus the grace period has passed. Windows of a meter close
strictly in time order, which is what makes the chain and the lateness rule (a reading for a window at or
before the meter's last closed window is late) hold. The Window row, the meter's new chain head and the
window's ledger outbox row are written in one store transaction, so a closed window is never without its
TRANSFER-to-be.

The closer works in batches of due (meter, window) pairs, each in two steps:

1. read and seal, outside the write transaction: the batch's meters and all their readings are read in
   one snapshot and each meter's windows are sealed in time order, chained from its head (`seal_batch`);
2. check and write, in one short write transaction (`write_batch`): each meter's row (on PostgreSQL
   locked FOR UPDATE SKIP LOCKED in id order), its pending windows and its readings' counts are read again;
   a meter whose head, pending windows or readings changed since step 1 (a reading arrived, another
   closer was first, a lock is held) is left for the next run; the others' windows, outbox rows, heads
   and pending rows are written with a statement each for the whole batch.

On SQLite the HTTP process waits for the same write lock, so only step 2 holds it. Readings are never
deleted or changed, so an unchanged count of a window's readings means unchanged readings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple, TypeVar

import structlog
from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, insert, or_, select

from connector.core.canonical import decimal_text
from connector.core.fingerprint import ClosedWindow, seal_window
from connector.core.readings import StoredReading
from connector.core.windows import last_closable_start, window_end
from connector.ledger.outbox import enqueue_transfers
from connector.settings import Settings
from connector.store.db import Store
from connector.store.ingest_sql import run_sql, time_binder, time_reader
from connector.store.models import Meter, PendingWindow, Reading, Window

log = structlog.get_logger("connector.closer")

# (meter, window) pairs per write transaction. On SQLite (docs/benchmarks/anchoring.md) the write step of
# 50 windows held the lock /notify waits for 12-14 ms (p50, 2026-12-07's slower machine, commit's fsync
# included; 16-18 ms before the statements were built once); the seal step runs outside it. All of a
# window's closing cost 0.55 ms of CPU there (--closer-only).
BATCH = 50

Pair = tuple[int, datetime]  # meter id, window start
Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class ClosedInfo:
    """What the closer did for one window (for logs, metrics and the demo)."""

    meter_id: int
    entity_id: str
    start: datetime
    reading_count: int
    chain_hash: str


class WindowRow(NamedTuple):
    """A closed window's Window row but its duplicate and late counts, its times as the store binds them
    (`time_binder`): the first columns of `_WINDOW_COLUMNS`."""

    meter_id: int
    start: Any
    end: Any
    closed_at: Any
    reading_count: int
    summary_json: str
    energy_wh: str | None
    fingerprint: str
    prev_chain_hash: str
    chain_hash: str


@dataclass
class MeterWork:
    """One meter's share of a batch, read and sealed outside the write transaction."""

    meter_id: int
    entity_id: str
    head: str  # the chain head the windows were sealed from
    last_start: datetime | None  # the meter's last closed window when they were sealed
    starts: list[datetime]  # the batch's due windows of this meter, in time order
    counts: dict[datetime, int]  # readings of each of those windows (late ones too) when sealed
    bound_starts: list[Any] = field(default_factory=list)  # `starts` as the store binds them
    sealed: list[ClosedWindow] = field(default_factory=list)  # those after last_start, chained
    rows: list[WindowRow] = field(default_factory=list)  # their Window rows but the two counts


def close_due_windows(
    store: Store,
    settings: Settings,
    now: datetime,
    batch: int = BATCH,
    stopping: Callable[[], bool] | None = None,
) -> list[ClosedInfo]:
    """Close every pending window whose end + grace has passed at `now`, `batch` pairs per transaction;
    return what was closed. A meter that changed while its batch was sealed waits for the next run. Once
    `stopping()` is true no further batch starts (a run over 100,000 windows takes minutes); the
    scheduler's runs use `close_batches` to count each batch as it commits and keep nothing."""
    return [info for infos in close_batches(store, settings, now, batch, stopping) for info in infos]


def close_batches(
    store: Store,
    settings: Settings,
    now: datetime,
    batch: int = BATCH,
    stopping: Callable[[], bool] | None = None,
) -> Iterator[list[ClosedInfo]]:
    """`close_due_windows` one batch at a time: what each batch closed, as it commits."""
    cutoff = last_closable_start(now, settings.window.length, settings.window.grace)
    after: Pair | None = None
    while not (stopping is not None and stopping()):
        with store.reading() as conn:
            due = due_pairs(conn, cutoff, after, batch)
            if not due:
                return
            work = seal_batch(conn, settings, due, now)
        after = due[-1]
        began = time.perf_counter()
        with store.begin() as conn:
            locked = time.perf_counter()
            infos, waiting = write_batch(conn, work, now)
        done = time.perf_counter()
        _log_batch(due, infos, waiting, lock_wait=locked - began, held=done - locked)
        yield infos


def due_pairs(conn: Connection, cutoff: datetime, after: Pair | None, limit: int) -> list[Pair]:
    """Up to `limit` pending (meter, window start) with start <= `cutoff`, after `after`, in key order."""
    if after is None:
        rows = conn.execute(_DUE_FIRST, {"cutoff": cutoff, "limit": limit}).all()
    else:
        rows = conn.execute(
            _DUE_AFTER, {"cutoff": cutoff, "limit": limit, "m": after[0], "s": after[1]}
        ).all()
    return [(int(m), s) for m, s in rows]


# The closer's statements are built once: SQLAlchemy then finds each one's compiled form from a memoized
# cache key, where building them per batch (their IN lists' values coerced one by one) cost about 0.3 ms
# of CPU each, ten of them a batch. Their rows are taken with .all() (one fetchall, not a fetchone a row).
_DUE_FIRST = (
    select(PendingWindow.meter_id, PendingWindow.window_start)
    .where(PendingWindow.window_start <= bindparam("cutoff"))
    .order_by(PendingWindow.meter_id, PendingWindow.window_start)
    .limit(bindparam("limit"))
)
_DUE_AFTER = _DUE_FIRST.where(
    or_(
        PendingWindow.meter_id > bindparam("m"),
        and_(PendingWindow.meter_id == bindparam("m"), PendingWindow.window_start > bindparam("s")),
    )
)


# -- step 1: read and seal (no write lock) -----------------------------------------------------------------


def seal_batch(conn: Connection, settings: Settings, due: Sequence[Pair], now: datetime) -> list[MeterWork]:
    """Seal the windows of `due` (in key order) from one read of their meters and readings; their rows
    say they closed at `now`."""
    starts: dict[int, list[datetime]] = {}
    for meter_id, start in due:
        starts.setdefault(meter_id, []).append(start)
    meters = conn.execute(_METERS, {"ids": list(starts)}).all()
    readings = window_readings(conn, due)
    ordered = sorted(meters, key=_row_id)
    bind = time_binder(conn.dialect)
    return [_seal_meter(settings, meter, starts[meter.id], readings, now, bind) for meter in ordered]


_METERS = select(
    Meter.id, Meter.entity_id, Meter.entity_type, Meter.chain_head, Meter.last_window_start
).where(Meter.id.in_(bindparam("ids", expanding=True)))


def _row_id(row: Any) -> int:
    return int(row.id)


def _seal_meter(
    settings: Settings,
    meter: Any,
    starts: list[datetime],
    readings: dict[Pair, list[tuple[bool, StoredReading]]],
    now: datetime,
    bind: Callable[[datetime], Any],
) -> MeterWork:
    """One meter's windows sealed in time order, each chained to the one before; their rows' times bound
    with `bind` here, so the write transaction does not spend the time."""
    work = MeterWork(meter.id, meter.entity_id, meter.chain_head, meter.last_window_start, starts, {})
    spec_for = partial(settings.attribute_spec, meter.entity_type)
    head = meter.chain_head
    closed_at = bind(now)
    for start in starts:
        rows = readings.get((meter.id, start), [])
        work.counts[start] = len(rows)
        work.bound_starts.append(bind(start))
        if meter.last_window_start is not None and start <= meter.last_window_start:
            continue  # cannot happen through ingest (those readings are late); never rewrite history
        on_time = [r for late, r in rows if not late]
        cw = seal_window(on_time, start, window_end(start, settings.window.length), head, spec_for)
        work.sealed.append(cw)
        work.rows.append(_window_row(meter.id, cw, work.bound_starts[-1], bind(cw.end), closed_at))
        head = cw.chain_hash
    return work


def window_readings(conn: Connection, pairs: Sequence[Pair]) -> dict[Pair, list[tuple[bool, StoredReading]]]:
    """Every reading of the (meter, window start) `pairs` as (late, reading), by pair, in key order."""
    found: dict[Pair, list[tuple[bool, StoredReading]]] = {}
    rows = conn.execute(*pairs_query(_READINGS, _READINGS_ONE_START, pairs)).all()
    for meter_id, start, late, attr, attr_type, observed_at, value_json, number, unit in rows:
        reading = stored_reading(attr, attr_type, observed_at, value_json, number, unit)
        found.setdefault((meter_id, start), []).append((bool(late), reading))
    return found


_READINGS = select(
    Reading.meter_id,
    Reading.window_start,
    Reading.late,
    Reading.attr,
    Reading.attr_type,
    Reading.observed_at,
    Reading.value_json,
    Reading.number,
    Reading.unit,
)


_ONE_START = and_(
    Reading.window_start == bindparam("start"), Reading.meter_id.in_(bindparam("meters", expanding=True))
)
_READINGS_ONE_START = _READINGS.where(_ONE_START)


def pairs_query(query: Q, one_start: Q, pairs: Sequence[Pair]) -> tuple[Q, dict[str, Any]]:
    """`query` (over readings) restricted to the rows of `pairs`, and its parameters. The usual batch, all
    of one window start, takes `one_start`, the query built once with `start = :start AND meter_id IN
    (:meters)`; other batches get the query built for their pairs (`pairs_match`)."""
    starts = {s for _m, s in pairs}
    if len(starts) == 1:
        return one_start, {"start": next(iter(starts)), "meters": [m for m, _s in pairs]}
    return query.where(pairs_match(Reading.meter_id, Reading.window_start, pairs)), {}


def pairs_match(meter_col: Any, start_col: Any, pairs: Iterable[Pair]) -> ColumnElement[bool]:
    """A WHERE clause for rows of any of `pairs`: one term per window start (`start = s AND meter IN
    (...)`), or per meter if there are fewer meters than starts; each term searches the (meter, start) key."""
    by_start, groups = pair_groups(pairs)
    if by_start:
        return or_(*(and_(start_col == s, meter_col.in_(ms)) for s, ms in groups.items()))
    return or_(*(and_(meter_col == m, start_col.in_(ss)) for m, ss in groups.items()))


def pair_groups(pairs: Iterable[tuple[int, Any]]) -> tuple[bool, dict[Any, list[Any]]]:
    """(True, {start: meters}) of (meter, start) `pairs`, or (False, {meter: starts}) if there are fewer
    meters than starts: the fewer terms of a WHERE clause matching them."""
    by_start: dict[Any, list[int]] = {}
    by_meter: dict[int, list[Any]] = {}
    for meter_id, start in pairs:
        by_start.setdefault(start, []).append(meter_id)
        by_meter.setdefault(meter_id, []).append(start)
    if len(by_start) <= len(by_meter):
        return True, by_start
    return False, by_meter


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


# -- step 2: check and write (one short write transaction) -------------------------------------------------


def write_batch(conn: Connection, work: Sequence[MeterWork], now: datetime) -> tuple[list[ClosedInfo], int]:
    """Write the sealed windows of the meters of `work` unchanged since they were sealed, inside `conn`'s
    transaction; return what was closed and how many pairs were left as they are, for a later run.

    Its statements go to the driver as fixed SQL (`run_sql`), the rows' values bound when they were
    sealed: through SQLAlchemy a batch of 50 windows spent 4.1 ms of CPU here, under the store's write
    lock, as driver SQL 1.9 ms (SQLite; PostgreSQL 7.3 -> 4.1 ms)."""
    if not work:
        return [], 0
    current = _lock_meters(conn, sorted(w.meter_id for w in work))
    pairs = [(w.meter_id, b) for w in work for b in w.bound_starts]
    pending = _pending(conn, list(current), max(b for _m, b in pairs))
    counts = _counts(conn, pairs)
    ready = [w for w in work if _unchanged(w, current.get(w.meter_id), pending.get(w.meter_id, {}), counts)]
    rows = [  # the meter's late readings are reported in its first window closed, as one by one
        (*row, pending[w.meter_id][cw.start], 0 if i else current[w.meter_id][2])
        for w in ready
        for i, (row, cw) in enumerate(zip(w.rows, w.sealed, strict=True))
    ]
    keys = [(w.meter_id, cw.start) for w in ready for cw in w.sealed]  # in the order of `rows`
    ids = _insert_windows(conn, rows, keys)
    transfers = [(m, wid, int(start.timestamp())) for (m, start), wid in zip(keys, ids, strict=True)]
    enqueue_transfers(conn, transfers, now)
    heads = [(w.rows[-1].chain_hash, w.rows[-1].start, w.meter_id) for w in ready if w.rows]
    run_sql(conn, _MOVE_HEAD, heads)
    dropped = [(w.meter_id, b) for w in ready for b in w.bound_starts]
    run_sql(conn, _DROP_PENDING, dropped)
    closed = [
        ClosedInfo(w.meter_id, w.entity_id, cw.start, cw.reading_count, cw.chain_hash)
        for w in ready
        for cw in w.sealed
    ]
    return closed, len(pairs) - len(dropped)


def _marks(n: int) -> str:
    """n ? placeholders, for an IN list."""
    return ", ".join(["?"] * n)


def _times(conn: Connection, values: Iterable[Any]) -> dict[Any, Any]:
    """Each distinct time of a driver row's column as the ORM gives it (a batch has a few distinct ones)."""
    read = time_reader(conn.dialect)
    return {value: read(value) for value in set(values)}


def _lock_meters(conn: Connection, ids: list[int]) -> dict[int, tuple[str, datetime | None, int]]:
    """{id: (chain head, last window start, late since close)} of the meters of `ids` this transaction
    holds. On PostgreSQL each is locked FOR UPDATE (ingest reads meters FOR SHARE: no reading slips in
    while we write) and one locked by someone else is skipped, not waited for, so the closer never waits
    in a lock cycle with ingest or the ledger writer. SQLite's write transactions are serialized."""
    lock = " FOR UPDATE SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
    rows = run_sql(conn, _LOCK.format(_marks(len(ids))) + lock, tuple(ids)).all()
    lasts = _times(conn, (last for _m, _head, last, _late in rows))
    return {m: (head, lasts[last], late) for m, head, last, late in rows}


_LOCK = (
    "SELECT meters.id, meters.chain_head, meters.last_window_start, meters.late_since_close FROM meters "
    "WHERE meters.id IN ({}) ORDER BY meters.id"
)


def _pending(conn: Connection, ids: list[int], until: Any) -> dict[int, dict[datetime, int]]:
    """{meter: {window start: duplicates}} of the pending windows of `ids` starting by `until` (bound)."""
    found: dict[int, dict[datetime, int]] = {}
    if not ids:
        return found
    rows = run_sql(conn, _PENDING.format(_marks(len(ids))), (*ids, until)).all()
    starts = _times(conn, (start for _m, start, _n in rows))
    for meter_id, start, duplicates in rows:
        found.setdefault(meter_id, {})[starts[start]] = duplicates
    return found


_PENDING = (
    "SELECT pending_windows.meter_id, pending_windows.window_start, pending_windows.duplicates "
    "FROM pending_windows WHERE pending_windows.meter_id IN ({}) AND pending_windows.window_start <= ?"
)


def _counts(conn: Connection, pairs: Sequence[tuple[int, Any]]) -> dict[Pair, int]:
    """How many readings each (meter, window start) of `pairs` (starts bound) has now, from the key alone:
    one term per window start, or per meter if there are fewer meters than starts (as `pairs_match`)."""
    by_start, groups = pair_groups(pairs)
    term = "(readings.window_start = ? AND readings.meter_id IN ({}))"
    if not by_start:
        term = "(readings.meter_id = ? AND readings.window_start IN ({}))"
    where = " OR ".join(term.format(_marks(len(group))) for group in groups.values())
    params = tuple(v for key, group in groups.items() for v in (key, *group))
    rows = run_sql(conn, _COUNTS.format(where), params).all()
    starts = _times(conn, (start for _m, start, _n in rows))
    return {(m, starts[s]): n for m, s, n in rows}


_COUNTS = (
    "SELECT readings.meter_id, readings.window_start, count(*) FROM readings WHERE {} "
    "GROUP BY readings.meter_id, readings.window_start"
)


def _unchanged(
    w: MeterWork,
    current: tuple[str, datetime | None, int] | None,
    pending: dict[datetime, int],
    counts: dict[Pair, int],
) -> bool:
    """True if `w`'s meter is held and nothing it was sealed from has changed: the same head, its pending
    windows up to the batch's last one are exactly the batch's (none closed by another closer, no earlier
    one new), and every window has the readings it was sealed with."""
    if current is None or (current[0], current[1]) != (w.head, w.last_start):
        return False
    last = w.starts[-1]
    if sorted(s for s in pending if s <= last) != w.starts:
        return False
    return all(counts.get((w.meter_id, s), 0) == n for s, n in w.counts.items())


def _window_values(
    meter_id: int, cw: ClosedWindow, closed_at: datetime, duplicates: int = 0, late: int = 0
) -> dict[str, Any]:
    """The Window row of a closed window, its times as datetimes (for the ORM)."""
    row = _window_row(meter_id, cw, cw.start, cw.end, closed_at)
    return {**row._asdict(), "duplicate_count": duplicates, "late_count": late}


def _window_row(meter_id: int, cw: ClosedWindow, start: Any, end: Any, closed_at: Any) -> WindowRow:
    """The Window row of a closed window but its two counts, for the driver: its times come bound."""
    energy = None if cw.energy_wh is None else decimal_text(cw.energy_wh)
    return WindowRow(
        meter_id, start, end, closed_at, cw.reading_count, cw.summary_json, energy, cw.fingerprint,
        cw.prev_chain_hash, cw.chain_hash,
    )  # fmt: skip


def _insert_windows(conn: Connection, rows: list[tuple[Any, ...]], keys: list[Pair]) -> list[int]:
    """Insert Window rows (`_WINDOW_COLUMNS`) of the (meter, window start) `keys`; their ids in the order
    of `rows`.

    Multi-row INSERTs return their ids in no promised order, and asking for the parameters' order makes
    SQLite insert a row per statement (80 ms for 200 windows, all of it under the write lock): the ids are
    matched back by the windows' unique (meter, start) instead.
    """
    ids: dict[Pair, int] = {}
    for sql, params in _window_inserts(rows):
        found = run_sql(conn, sql, params).all()
        starts = _times(conn, (start for _wid, _m, start in found))
        ids.update(((m, starts[s]), int(wid)) for wid, m, s in found)
    return [ids[key] for key in keys]


def _window_inserts(rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The statements inserting `rows` and their parameters: a multi-row VALUES per 1,000 rows."""
    for first in range(0, len(rows), _WINDOWS_PER_INSERT):
        part = rows[first : first + _WINDOWS_PER_INSERT]
        values = ", ".join(["(" + _marks(len(_WINDOW_COLUMNS)) + ")"] * len(part))
        yield (
            f"INSERT INTO windows ({_COLUMN_LIST}) VALUES {values} {_RETURNING}",
            tuple(v for r in part for v in r),
        )


_WINDOW_COLUMNS = (*WindowRow._fields, "duplicate_count", "late_count")
_COLUMN_LIST = ", ".join(f'"{column}"' for column in _WINDOW_COLUMNS)  # quoted: "end" is an SQL keyword
_RETURNING = "RETURNING id, meter_id, start"
_WINDOWS_PER_INSERT = 1000  # 12,000 parameters: below SQLite's limit (32,766) and PostgreSQL's (65,535)

# Each meter's chain head and last window to its last sealed window; its late count starts again.
_MOVE_HEAD = (
    "UPDATE meters SET chain_head = ?, last_window_start = ?, late_since_close = 0 WHERE meters.id = ?"
)
_DROP_PENDING = (
    "DELETE FROM pending_windows WHERE pending_windows.meter_id = ? AND pending_windows.window_start = ?"
)


def _log_batch(
    due: Sequence[Pair], infos: list[ClosedInfo], waiting: int, lock_wait: float, held: float
) -> None:
    """One line per batch: how many windows closed, how many pairs were left for later, the lock times."""
    starts = sorted({s for _m, s in due})
    log.info(
        "windows.closed",
        windows=len(infos),
        meters=len({i.meter_id for i in infos}),
        waiting=waiting,
        first_window=starts[0].isoformat(),
        last_window=starts[-1].isoformat(),
        lock_wait_ms=round(lock_wait * 1000, 1),
        write_ms=round(held * 1000, 1),
    )


def insert_window(
    conn: Connection, meter_id: int, cw: ClosedWindow, closed_at: datetime, duplicates: int = 0, late: int = 0
) -> int:
    """Insert a closed window's row; return its id. (Used by tests and benchmarks to build history.)"""
    values = _window_values(meter_id, cw, closed_at, duplicates, late)
    return int(conn.execute(insert(Window).values(**values).returning(Window.id)).scalar_one())
