"""Read-only SQL of the query API (SQLAlchemy Core over the store's models). No Flask here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, func, select

from connector.api.errors import Conflict, NotFound
from connector.api.tenancy import Scope
from connector.store.models import LedgerOutbox, Meter, Reading, Window

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
    return total, conn.execute(page.limit(limit).offset(offset)).all()


def meter_counts(conn: Connection, meter_id: int) -> dict[str, Any]:
    """Counts and first/last window of one meter, plus its CREATE transaction id."""
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
    return {
        "firstWindow": first,
        "lastWindow": last,
        "createTxId": create_tx,
        "counts": {
            "windows": n_windows,
            "readings": readings,
            "anchored": by_status.get("confirmed", 0),
            "pending": by_status.get("pending", 0) + by_status.get("sent", 0),
            "dead": by_status.get("dead", 0),
        },
    }


def _window_range(meter_id: int, from_: datetime | None, to: datetime | None) -> list[Any]:
    where: list[Any] = [Window.meter_id == meter_id]
    if from_:
        where.append(Window.start >= from_)
    if to:
        where.append(Window.start < to)
    return where


def _confirmed_windows(meter_id: int, from_: datetime | None, to: datetime | None) -> Select[Any]:
    # windows(meter_id, start) is unique, so the range scan walks that index; the outbox joins by its
    # unique window_id.
    join = and_(LedgerOutbox.window_id == Window.id, LedgerOutbox.status == "confirmed")
    return (
        select(Window, LedgerOutbox.tx_id, LedgerOutbox.block_height, LedgerOutbox.tx_json)
        .select_from(Window.__table__.join(LedgerOutbox.__table__, join))
        .where(*_window_range(meter_id, from_, to))
    )


def history_page(
    conn: Connection,
    meter_id: int,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    offset: int,
    order: str,
) -> tuple[int, list[Row[Any]]]:
    """The total and one page of confirmed windows of a meter with their TRANSFER id, height and tx JSON."""
    base = _confirmed_windows(meter_id, from_, to)
    total = conn.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    key = Window.start.desc() if order == "desc" else Window.start.asc()
    return total, conn.execute(base.order_by(key).limit(limit).offset(offset)).all()


def confirmed_windows(
    conn: Connection, meter_id: int, from_: datetime | None, to: datetime | None
) -> list[Row[Any]]:
    """Every confirmed window of a meter in range (for aggregation), oldest first, without tx JSON."""
    join = and_(LedgerOutbox.window_id == Window.id, LedgerOutbox.status == "confirmed")
    stmt = (
        select(Window.start, Window.end, Window.reading_count, Window.energy_wh, Window.summary_json)
        .select_from(Window.__table__.join(LedgerOutbox.__table__, join))
        .where(*_window_range(meter_id, from_, to))
        .order_by(Window.start)
    )
    return list(conn.execute(stmt).all())


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
    return total, conn.execute(stmt.limit(limit).offset(offset)).all()


def readings_where(
    meter_id: int, from_: datetime | None, to: datetime | None, window_length: int
) -> list[Any]:
    """Conditions for readings observed in [from_, to); the window_start bounds let the (meter_id,
    window_start) index narrow the scan, since a reading's window starts at most one window before it."""
    where: list[Any] = [Reading.meter_id == meter_id]
    margin = timedelta(seconds=window_length)
    if from_:
        earliest = datetime.min.replace(tzinfo=from_.tzinfo) + margin
        where += [Reading.observed_at >= from_, Reading.window_start >= max(from_, earliest) - margin]
    if to:
        where += [Reading.observed_at < to, Reading.window_start < to]
    return where


def window_bounds(conn: Connection, meter_id: int) -> tuple[datetime | None, datetime | None]:
    """The first and last window start of a meter (None, None without windows)."""
    first, last = conn.execute(
        select(func.min(Window.start), func.max(Window.start)).where(Window.meter_id == meter_id)
    ).one()
    return first, last
