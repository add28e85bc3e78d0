"""The ingest hot path's SQL, run on the DBAPI cursor of an open SQLAlchemy transaction.

Building SQLAlchemy statements for every group commit cost more CPU than the database work itself (the
tuple IN of the meter lookup and the upsert's `excluded` alone were a third of the writer thread), so the
few statements of every batch are fixed SQL text here. Values pass through the models' own bind
processors, so a row written here is byte-for-byte the row the ORM would write (same time text on SQLite).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, overload

from sqlalchemy import Connection, CursorResult, Dialect

from connector.store.models import UTCDateTime

READING_COLUMNS = (
    "meter_id, attr, attr_type, observed_at, received_at, time_source, value_json, number, unit, "
    "window_start, late, correlator"
)
MeterKey = tuple[str, str, str]  # tenant, service path, entity id
METER_COLUMNS = (
    "tenant", "service_path", "entity_id", "entity_type", "serial_number", "manufacturer", "first_seen",
    "chain_seed", "chain_head", "late_since_close",
)  # fmt: skip
MeterRow = tuple[str, str, str, str, str | None, str | None, datetime, str, str, int]
# meter id, attr, attr type, observed at, received at, time source, value, number, unit, window start, late,
# correlator; the three times as the dialect binds them (time_binder)
ReadingRow = tuple[int, str, Any, Any, Any, str, str, Any, Any, Any, bool, Any]
Content = tuple[Any, str, Any]  # attribute type, value (canonical JSON), unit: what tells two readings apart
CONFLICT_COLUMNS = (
    "meter_id, attr, attr_type, observed_at, received_at, time_source, value_json, number, unit, "
    "window_start, late, correlator, digest"
)
_CHUNK = 300  # rows per statement: far below both databases' parameter limits


class IngestSql:
    """The batch statements for one connection's dialect (SQLite or PostgreSQL)."""

    def __init__(self, conn: Connection) -> None:
        dialect = conn.dialect
        self.pg = dialect.name == "postgresql"
        self.ph = "%s" if self.pg else "?"
        self.cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        self.time_in = _memoized(time_binder(dialect))
        self.time_out = time_reader(dialect)

    def meters(self, keys: Sequence[MeterKey]) -> dict[MeterKey, tuple[int, datetime | None]]:
        """Existing meters among `keys`: id and closed-window frontier.

        On PostgreSQL the rows are read FOR SHARE so the window closer (FOR UPDATE) cannot close a window
        of these meters between our lateness check and our commit; SQLite write transactions are
        serialized.
        """
        found: dict[MeterKey, tuple[int, datetime | None]] = {}
        row = f"({self.ph},{self.ph},{self.ph})"
        for start in range(0, len(keys), _CHUNK):
            part = keys[start : start + _CHUNK]
            values = ",".join([row] * len(part))
            if self.pg:
                sql = (
                    "SELECT tenant, service_path, entity_id, id, last_window_start FROM meters "
                    f"WHERE (tenant, service_path, entity_id) IN ({values}) FOR SHARE"
                )
            else:  # SQLite scans the whole meters index for a row-value IN list; a join searches it per key
                sql = (
                    f"WITH k(t, p, e) AS (VALUES {values}) "
                    "SELECT m.tenant, m.service_path, m.entity_id, m.id, m.last_window_start "
                    "FROM k CROSS JOIN meters AS m "
                    "ON m.tenant = k.t AND m.service_path = k.p AND m.entity_id = k.e"
                )
            self.cursor.execute(sql, [v for key in part for v in key])
            for t, sp, e, mid, frontier in self.cursor.fetchall():
                found[(t, sp, e)] = (mid, None if frontier is None else self.time_out(frontier))
        return found

    def register_meters(self, rows: Sequence[MeterRow]) -> dict[MeterKey, int]:
        """Insert new meters (METER_COLUMNS, first seen as a datetime); the id of each one inserted. A meter
        already registered (by another process) is skipped and absent from the answer."""
        found: dict[MeterKey, int] = {}
        row = "(" + ",".join([self.ph] * len(METER_COLUMNS)) + ")"
        step = _CHUNK // len(METER_COLUMNS)  # 30 rows, 300 parameters per statement
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            sql = (
                f"INSERT INTO meters ({', '.join(METER_COLUMNS)}) VALUES {','.join([row] * len(part))} "
                "ON CONFLICT DO NOTHING RETURNING tenant, service_path, entity_id, id"
            )
            self.cursor.execute(sql, [v for r in part for v in (*r[:6], self.time_in(r[6]), *r[7:])])
            found.update(((t, p, e), mid) for t, p, e, mid in self.cursor.fetchall())
        return found

    def insert_readings(self, rows: Sequence[ReadingRow]) -> list[bool]:
        """Insert `rows`, their times already bound (`time_binder`); a duplicate of a stored reading is
        skipped. True for each row stored."""
        if not self.pg:
            return self._insert_sqlite(rows)
        stored_keys: set[tuple[int, str, datetime]] = set()
        row = "(" + ",".join(["%s"] * 12) + ")"
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            sql = (
                f"INSERT INTO readings ({READING_COLUMNS}) VALUES {','.join([row] * len(part))} "
                "ON CONFLICT DO NOTHING RETURNING meter_id, attr, observed_at"
            )
            self.cursor.execute(sql, [v for r in part for v in r])
            stored_keys.update((m, a, self.time_out(t)) for m, a, t in self.cursor.fetchall())
        return [(r[0], r[1], r[3]) in stored_keys for r in rows]

    def _insert_sqlite(self, rows: Sequence[ReadingRow]) -> list[bool]:
        # SQLite: all rows in one executemany (the row loop runs in C) inside a savepoint; when every row
        # was stored (the usual case) that is all. Otherwise the savepoint is rolled back and the rows are
        # inserted one by one, where rowcount tells stored (1) from duplicate (0) without RETURNING.
        sql = f"INSERT INTO readings ({READING_COLUMNS}) VALUES ({','.join('?' * 12)}) ON CONFLICT DO NOTHING"
        cursor, params = self.cursor, rows
        cursor.execute("SAVEPOINT ingest_rows")
        cursor.executemany(sql, params)
        if cursor.rowcount == len(params):
            cursor.execute("RELEASE ingest_rows")
            return [True] * len(params)
        cursor.execute("ROLLBACK TO ingest_rows")
        cursor.execute("RELEASE ingest_rows")
        stored = []
        for p in params:
            cursor.execute(sql, p)
            stored.append(cursor.rowcount == 1)
        return stored

    def stored_contents(self, rows: Sequence[ReadingRow]) -> list[Content | None]:
        """For each row, the content of the stored reading with its key (None if there is none). Only
        readings the unique key refused are looked up: rare, so one indexed lookup each."""
        ph = self.ph
        sql = (
            "SELECT attr_type, value_json, unit FROM readings "
            f"WHERE meter_id = {ph} AND window_start = {ph} AND observed_at = {ph} AND attr = {ph}"
        )
        found: list[Content | None] = []
        for r in rows:
            self.cursor.execute(sql, (r[0], r[9], r[3], r[1]))
            row = self.cursor.fetchone()
            found.append(None if row is None else (row[0], row[1], row[2]))
        return found

    def insert_conflicts(self, rows: Sequence[ReadingRow]) -> None:
        """Keep conflicting readings as evidence; the same conflicting reading again is kept once."""
        ph = ",".join([self.ph] * 13)
        self.cursor.executemany(
            f"INSERT INTO reading_conflicts ({CONFLICT_COLUMNS}) VALUES ({ph}) ON CONFLICT DO NOTHING",
            [(*r, conflict_digest(r[2], r[6], r[8])) for r in rows],
        )

    def time_text(self, bound: Any) -> str:
        """A bound time (as `time_binder` gives it) as ISO 8601 UTC text with a Z."""
        moment: datetime = self.time_out(bound)
        return moment.isoformat().replace("+00:00", "Z")

    def mark_pending(self, params: Sequence[tuple[int, datetime, int]]) -> None:
        """Upsert (meter, window start, duplicates seen): the closer's work list, duplicates added up."""
        ph = self.ph
        self.cursor.executemany(
            f"INSERT INTO pending_windows (meter_id, window_start, duplicates) VALUES ({ph},{ph},{ph}) "
            "ON CONFLICT (meter_id, window_start) "
            "DO UPDATE SET duplicates = pending_windows.duplicates + excluded.duplicates",
            [(m, self.time_in(ws), n) for m, ws, n in params],
        )

    def add_late(self, late_per_meter: dict[int, int]) -> None:
        """Count late readings on their meters (reported with the meter's next window)."""
        ph = self.ph
        self.cursor.executemany(
            f"UPDATE meters SET late_since_close = late_since_close + {ph} WHERE id = {ph}",
            [(n, m) for m, n in late_per_meter.items()],
        )

    def close(self) -> None:
        self.cursor.close()


def conflict_digest(attr_type: Any, value_json: str, unit: Any) -> str:
    """The key of one conflicting reading's content (its value may be too long for an index)."""
    text = json.dumps([attr_type, value_json, unit], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def time_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    """A time as the store's dialect binds it (SQLite: its text; PostgreSQL: the aware datetime)."""
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return bind or (lambda v: v)


def time_reader(dialect: Dialect) -> Callable[[Any], Any]:
    """A time as the store's dialect returns it in a driver row, as the aware UTC datetime the ORM gives."""
    read = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    return read or (lambda v: v)


@overload
def run_sql(conn: Connection, sql: str, params: tuple[Any, ...]) -> CursorResult[*tuple[Any, ...]]: ...
@overload
def run_sql(
    conn: Connection, sql: str, params: list[tuple[Any, ...]]
) -> CursorResult[*tuple[Any, ...]] | None: ...
def run_sql(
    conn: Connection, sql: str, params: tuple[Any, ...] | list[tuple[Any, ...]]
) -> CursorResult[*tuple[Any, ...]] | None:
    """`sql`, written with ? placeholders (psycopg's %s on PostgreSQL), as driver SQL in `conn`'s
    transaction: once with a tuple of `params`, once per tuple of a list (nothing for an empty list). A
    batch's fixed statements without SQLAlchemy's statement machinery, which cost more CPU than the
    database's own work under the store's write lock; its events still fire. Times come bound
    (`time_binder`) and are read back with `time_reader`."""
    if isinstance(params, list) and not params:
        return None
    return conn.exec_driver_sql(sql.replace("?", "%s") if conn.dialect.name == "postgresql" else sql, params)


def _memoized(bind: Callable[[datetime], Any]) -> Callable[[datetime], Any]:
    """`bind`, remembering its answers for this batch: a batch repeats the same few times (one receipt
    time per notification, a handful of window starts, often one observation time for many entities)."""
    seen: dict[datetime, Any] = {}

    def bound(value: datetime) -> Any:
        text = seen.get(value)
        if text is None:
            text = seen[value] = bind(value)
        return text

    return bound
