"""Read-only SQL of the query API (SQLAlchemy Core over the store's models). No Flask here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, func, select

from connector.api.errors import Conflict, NotFound
from connector.api.tenancy import Scope
from connector.keystore import KEY_MISSING
from connector.store.models import LedgerOutbox, Meter, Reading, ReadingConflict, Window

TRANSFER = "TRANSFER"


def find_meter(conn: Connection, scope: Scope, entity_id: str) -> Row[Any]:
    """The meter `entity_id` visible in `scope`; NotFound if none, Conflict if several service paths
    hold it."""
    rows = conn.execute(select(Meter).where(scope.clause(), Meter.entity_id == entity_id).limit(2)).all()
    if not rows:
        raise NotFound(f"meter {entity_id!r} not found for this Fiware-Service and Fiware-ServicePath")
    if len(rows) > 1:
        raise Conflict(f"meter {entity_id!r} exists in several service paths; name one in Fiware-ServicePath")
    return rows[0]


def meter_exists(conn: Connection, scope: Scope, entity_id: str) -> bool:
    """Whether a meter `entity_id` is visible in `scope` (in one service path or several)."""
    found = select(Meter.id).where(scope.clause(), Meter.entity_id == entity_id).limit(1)
    return conn.execute(found).first() is not None


def list_meters(
    conn: Connection, scope: Scope, entity_type: str | None, path_prefix: str | None, limit: int, offset: int
) -> tuple[int, list[Row[Any]]]:
    """The total and one page of meters in `scope`, ordered by service path and entity id."""
    where = [scope.clause()]
    if entity_type:
        where.append(Meter.entity_type == entity_type)
    if path_prefix:
        where.append(Meter.service_path.startswith(path_prefix, autoescape=True))
    total = conn.execute(select(func.count()).select_from(Meter).where(*where)).scalar_one()
    page = select(Meter).where(*where).order_by(Meter.service_path, Meter.entity_id, Meter.id)
    return total, list(conn.execute(page.limit(limit).offset(offset)).all())  # type: ignore[arg-type]


def meter_counts(conn: Connection, meter_id: int) -> dict[str, Any]:
    """Counts and first/last window of one meter, its CREATE transaction id, and why its ledger work is
    held (the keystore lacks its asset's key), else None."""
    first, last, n_windows = conn.execute(
        select(func.min(Window.start), func.max(Window.start), func.count()).where(
            Window.meter_id == meter_id
        )
    ).one()
    readings = conn.execute(select(func.count()).where(Reading.meter_id == meter_id)).scalar_one()
    status = conn.execute(
        select(LedgerOutbox.status, func.count())
        .where(LedgerOutbox.meter_id == meter_id, LedgerOutbox.operation == TRANSFER)
        .group_by(LedgerOutbox.status)
    ).all()
    by_status = dict(status)  # type: ignore[arg-type]
    create_tx = conn.execute(
        select(LedgerOutbox.tx_id).where(
            LedgerOutbox.meter_id == meter_id, LedgerOutbox.operation == "CREATE"
        )
    ).scalar()
    held = conn.execute(
        select(LedgerOutbox.last_error)
        .where(
            LedgerOutbox.meter_id == meter_id,
            LedgerOutbox.status.in_(("pending", "sent")),
            LedgerOutbox.last_error.startswith(KEY_MISSING),
        )
        .limit(1)
    ).scalar()
    return {
        "firstWindow": first,
        "lastWindow": last,
        "createTxId": create_tx,
        "ledgerHeld": held,
        "counts": {
            "windows": n_windows,
            "readings": readings,
            "anchored": by_status.get("confirmed", 0),
            "pending": by_status.get("pending", 0) + by_status.get("sent", 0),
            "dead": by_status.get("dead", 0),
        },
    }


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seq_at_or_after(moment: datetime) -> int:
    """The smallest whole Unix second not before `moment` (exact, no float)."""
    seconds, rest = divmod(moment - EPOCH, timedelta(seconds=1))
    return int(seconds) + (1 if rest else 0)


def _anchored(meter_id: int, from_: datetime | None, to: datetime | None) -> list[Any]:
    # A window TRANSFER's seq is its window's start in Unix seconds (ledger/outbox.py) and window starts are
    # whole seconds, so start >= from <=> seq >= ceil(from), and likewise for to. These conditions are all
    # on ix_ledger_outbox_history: counting and skipping never read an outbox row.
    where: list[Any] = [
        LedgerOutbox.meter_id == meter_id,
        LedgerOutbox.operation == TRANSFER,
        LedgerOutbox.status == "confirmed",
    ]
    if from_:
        where.append(LedgerOutbox.seq >= _seq_at_or_after(from_))
    if to:
        where.append(LedgerOutbox.seq < _seq_at_or_after(to))
    return where


def history_page(
    conn: Connection,
    meter_id: int,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    offset: int,
    order: str,
) -> tuple[int, list[Row[Any]]]:
    """The total and one page of confirmed windows of a meter: window id, start, end, TRANSFER id, block
    height and the transaction's JSON text."""
    where = _anchored(meter_id, from_, to)
    total = conn.execute(select(func.count()).select_from(LedgerOutbox).where(*where)).scalar_one()
    key = LedgerOutbox.seq.desc() if order == "desc" else LedgerOutbox.seq.asc()
    # The page's outbox ids come from the index alone; only those rows and their windows are read.
    ids = select(LedgerOutbox.id).where(*where).order_by(key).limit(limit).offset(offset)
    cols = (Window.id, Window.start, Window.end, LedgerOutbox.tx_id, LedgerOutbox.block_height)
    stmt = (
        select(*cols, LedgerOutbox.tx_json)
        .select_from(LedgerOutbox.__table__.join(Window.__table__, LedgerOutbox.window_id == Window.id))
        .where(LedgerOutbox.id.in_(ids.scalar_subquery()))
        .order_by(key)
    )
    return total, list(conn.execute(stmt).all())  # type: ignore[arg-type]


def window_row(conn: Connection, window_id: int) -> Row[Any]:
    """One window row, every column."""
    return conn.execute(select(Window).where(Window.id == window_id)).one()


def confirmed_windows(
    conn: Connection, meter_id: int, from_: datetime | None, to: datetime | None
) -> Iterable[Row[Any]]:
    """Every confirmed window of a meter in range (for aggregation), oldest first, without tx JSON; the
    rows stream from `conn` (consume them before it closes)."""
    stmt = (
        select(Window.start, Window.reading_count, Window.energy_wh, Window.summary_json)
        .select_from(LedgerOutbox.__table__.join(Window.__table__, LedgerOutbox.window_id == Window.id))
        .where(*_anchored(meter_id, from_, to))
        .order_by(LedgerOutbox.seq)
    )
    return conn.execute(stmt)


def bucket_stamps(
    conn: Connection, meter_id: int, from_: datetime | None, to: datetime | None, width: int
) -> list[Row[Any]]:
    """Per bucket of `width` seconds (UTC hours or days) holding confirmed windows of a meter in range:
    `(bucket, windows, seq_sum, id_sum)`, bucket being its start in Unix seconds, oldest first. From the
    history index alone; the stamp changes whenever a window enters or leaves the bucket."""
    seq = LedgerOutbox.seq
    bucket = (seq - (seq % width + width) % width).label("bucket")  # floor, also before 1970
    stmt = (
        select(bucket, func.count().label("windows"), func.sum(seq), func.sum(LedgerOutbox.id))
        .where(*_anchored(meter_id, from_, to))
        .group_by(bucket)
        .order_by(bucket)
    )
    return list(conn.execute(stmt).all())  # type: ignore[arg-type]


def readings_page(
    conn: Connection,
    meter_id: int,
    from_: datetime | None,
    to: datetime | None,
    attr: str | None,
    window_length: int,
    limit: int,
    offset: int,
) -> tuple[int, list[Row[Any]]]:
    """The total and one page of raw readings, ordered by observation time then attribute."""
    where = readings_where(meter_id, from_, to, window_length)
    if attr:
        where.append(Reading.attr == attr)
    total = conn.execute(select(func.count()).select_from(Reading).where(*where)).scalar_one()
    stmt = select(Reading).where(*where).order_by(Reading.observed_at, Reading.attr, Reading.id)
    return total, list(conn.execute(stmt.limit(limit).offset(offset)).all())  # type: ignore[arg-type]


def readings_where(
    meter_id: int, from_: datetime | None, to: datetime | None, window_length: int
) -> list[Any]:
    """Conditions for readings observed in [from_, to); the window_start bounds let the readings' key
    (meter_id, window_start, ...) narrow the scan, since a reading's window starts at most one window
    before it."""
    where: list[Any] = [Reading.meter_id == meter_id]
    margin = timedelta(seconds=window_length)
    if from_:
        earliest = datetime.min.replace(tzinfo=from_.tzinfo) + margin
        where += [Reading.observed_at >= from_, Reading.window_start >= max(from_, earliest) - margin]
    if to:
        where += [Reading.observed_at < to, Reading.window_start < to]
    return where


MAX_CONFLICTS = 1000  # conflicts shown per answer; the oldest first


def conflicts(
    conn: Connection,
    meter_id: int,
    from_: datetime | None,
    to: datetime | None,
    attr: str | None,
) -> list[Row[Any]]:
    """The meter's conflicting readings observed in [from_, to) (at most MAX_CONFLICTS), oldest first."""
    where: list[Any] = [ReadingConflict.meter_id == meter_id]
    if from_:
        where.append(ReadingConflict.observed_at >= from_)
    if to:
        where.append(ReadingConflict.observed_at < to)
    if attr:
        where.append(ReadingConflict.attr == attr)
    stmt = select(ReadingConflict).where(*where)
    order = (ReadingConflict.observed_at, ReadingConflict.attr, ReadingConflict.id)
    return list(conn.execute(stmt.order_by(*order).limit(MAX_CONFLICTS)).all())  # type: ignore[arg-type]


def window_bounds(conn: Connection, meter_id: int) -> tuple[datetime | None, datetime | None]:
    """The first and last window start of a meter (None, None without windows)."""
    first, last = conn.execute(
        select(func.min(Window.start), func.max(Window.start)).where(Window.meter_id == meter_id)
    ).one()
    return first, last
