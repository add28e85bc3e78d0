"""Building the period trees of closed periods from the store, after the window closer (docs/trees.md).

When a period is built: a window period `[s, s + L)` once the closer may close its window (`s <= the last
closable start at now - trees.delay`) and no meter has an open (pending) window starting at or before
`s`; a UTC day once its last window period is built. Each (tenant, period) is built once, in one store
transaction that writes its root, subtree roots, per-meter rows and its ledger work (the tenant's CREATE
the first time, the root's TRANSFER): a crash leaves either all of it or nothing, and the next run builds
what is missing (the unique (tenant, kind, start) makes a second build a no-op). On SQLite the period is
read before that transaction, outside the write turn (`build_period_in_turns`).

Windows are closed once and never change. A window that is closed after its period was built (a meter
silent past the grace period that then sends readings for that window) is in no tree: the tree holds the
windows closed when it was built, its proof route answers 404 saying so, and it stays anchored by its own
TRANSFER. `trees.delay` makes such windows rarer. Progress is kept in connector_state
("trees.window_mark", "trees.day_mark": the start of the last window period / day done).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, func, insert, select, update

from connector.core.trees import DAY, Period
from connector.core.windows import last_closable_start
from connector.ledger.roots import enqueue_root
from connector.settings import Settings
from connector.store.db import Store, unmapped
from connector.store.models import Meter, PendingWindow, State, Window
from connector.trees_store import (
    BuiltRoots,
    build_roots,
    day_attributes,
    find_root,
    last_window_id,
    moment,
    save_tree,
    seconds,
    window_attributes,
    windows_closed_since,
)

log = structlog.get_logger("connector.periods")

WINDOW_MARK = "trees.window_mark"
DAY_MARK = "trees.day_mark"


@dataclass(frozen=True)
class Built:
    """One tree built: tenant, period, root (hex) and how many windows it holds."""

    tenant: str
    period: Period
    root: str
    windows: int


def build_due_periods(store: Store, settings: Settings, now: datetime, limit: int = 96) -> list[Built]:
    """Build every tenant's tree of each complete window period (at most `limit` of them) and each
    complete day, in time order; return what was built."""
    length = settings.window.length
    with store.reading() as conn:
        upper = _complete_through(conn, settings, now)
        mark = _mark(conn, WINDOW_MARK)
        starts = _window_starts(conn, mark, upper, limit)
    built: list[Built] = []
    for start in starts:
        built += _build_all(store, Period("window", seconds(start), length), now)
        _set_mark(store, WINDOW_MARK, start, now)
    # Every window period up to `upper` is done unless the limit cut the list short.
    done_through = starts[-1] if len(starts) == limit else upper
    with store.reading() as conn:
        days = _complete_days(conn, _mark(conn, DAY_MARK), done_through, length)
    for day in days:
        built += _build_all(store, Period("day", seconds(day), DAY), now)
        _set_mark(store, DAY_MARK, day, now)
    return built


def _complete_through(conn: Connection, settings: Settings, now: datetime) -> datetime:
    """The newest window start whose period is complete at `now` (closable, closed, delay passed)."""
    cfg = settings.window
    upper = last_closable_start(now - timedelta(seconds=settings.trees.delay), cfg.length, cfg.grace)
    pending = conn.execute(select(func.min(PendingWindow.window_start))).scalar()
    if pending is not None:
        upper = min(upper, pending - timedelta(seconds=cfg.length))
    return upper  # type: ignore[no-any-return]


def _window_starts(conn: Connection, mark: datetime | None, upper: datetime, limit: int) -> list[datetime]:
    query = select(Window.start).where(Window.start <= upper).distinct().order_by(Window.start).limit(limit)
    if mark is not None:
        query = query.where(Window.start > mark)
    return [row[0] for row in conn.execute(query)]


def _complete_days(
    conn: Connection, day_mark: datetime | None, done_through: datetime, length: int
) -> list[datetime]:
    """Days with windows, after the day mark, whose last window period is at or before `done_through`."""
    through = seconds(done_through) + length  # every window starting before this is done
    end = moment(through - through % DAY)  # days ending by then are complete
    query = select(Window.start).where(Window.start < end).distinct()
    if day_mark is not None:
        query = query.where(Window.start >= day_mark + timedelta(seconds=DAY))
    days = {moment(seconds(s) - seconds(s) % DAY) for (s,) in conn.execute(query)}
    return sorted(days)


def _build_all(store: Store, period: Period, now: datetime) -> list[Built]:
    start, end = moment(period.start), moment(period.start + period.length)
    with store.reading() as conn:
        tenants = list(
            conn.execute(
                select(Meter.tenant)
                .join(Window, Window.meter_id == Meter.id)
                .where(Window.start >= start, Window.start < end)
                .distinct()
                .order_by(Meter.tenant)
            ).scalars()
        )
    out = []
    for tenant in tenants:
        built = build_period_in_turns(store, tenant, period, now)
        if built is not None:
            out.append(built)
            log.info(
                "tree.built", tenant=tenant, period=period.kind, start=start.isoformat(), root=built.root
            )
    return out


def build_period(conn: Connection, tenant: str, period: Period, now: datetime) -> Built | None:
    """Build and store one tenant's tree of `period` with its ledger work, inside `conn`'s transaction;
    None when it is already built or the tenant has no window in it."""
    if find_root(conn, tenant, period) is not None:
        return None
    built = build_roots(conn, tenant, period, closed_by=now)
    if built is None:
        return None
    return _save(conn, built, _attributes(conn, tenant, period), now)


def build_period_in_turns(store: Store, tenant: str, period: Period, now: datetime) -> Built | None:
    """`build_period`, reading the period in a read transaction on SQLite so that the write turn (which
    /notify's commits wait for) is held only to store the tree: a day of 100,000 meters is 9.6 million
    windows, minutes of reading. A window of the period closed by `now` that the read did not see (one
    committed meanwhile: ids grow in commit order, one writer at a time) makes it build again in the write
    turn, so the tree still holds exactly the windows closed by its `built_at`. PostgreSQL has no store-wide
    write turn: there it builds in one transaction."""
    if store.dialect != "sqlite":
        with store.begin() as conn:
            return build_period(conn, tenant, period, now)
    with store.reading() as reading, unmapped(reading) as conn:
        if find_root(conn, tenant, period) is not None:
            return None
        seen = last_window_id(conn)
        built = build_roots(conn, tenant, period, closed_by=now)
        attributes = _attributes(conn, tenant, period) if built is not None else {}
    with store.begin() as conn:
        if find_root(conn, tenant, period) is not None:
            return None
        if windows_closed_since(conn, seen, period, now):
            return build_period(conn, tenant, period, now)
        return None if built is None else _save(conn, built, attributes, now)


def _attributes(conn: Connection, tenant: str, period: Period) -> dict[int, list[dict[str, Any]]]:
    if period.kind == "window":
        return window_attributes(conn, tenant, moment(period.start))
    return day_attributes(conn, tenant, period)


def _save(
    conn: Connection, built: BuiltRoots, attributes: dict[int, list[dict[str, Any]]], now: datetime
) -> Built:
    period_id = save_tree(conn, built, attributes, now)
    enqueue_root(conn, built.tenant, period_id, now)
    return Built(built.tenant, built.period, built.tree.root.hex(), built.tree.window_count)


def _mark(conn: Connection, key: str) -> datetime | None:
    value = conn.execute(select(State.value).where(State.key == key)).scalar()
    return None if value is None else datetime.fromisoformat(value)


def _set_mark(store: Store, key: str, at: datetime, now: datetime) -> None:
    with store.begin() as conn:
        found = conn.execute(select(State.key).where(State.key == key)).first()
        if found is None:
            conn.execute(insert(State).values(key=key, value=at.isoformat(), updated_at=now))
        else:
            conn.execute(update(State).where(State.key == key).values(value=at.isoformat(), updated_at=now))
