"""The tamper check over period roots (seed 004's experiment, extended to seed 002's summary tree).

Each built period's tree is rebuilt from the readings as they are now: every window's fingerprint,
summary and chain hash recomputed from its on-time readings, chained from its stored (anchored) link
`prev_chain_hash` so a change stays in the window it was made in, exactly as `verify --meter` does. A
period whose recomputed root differs from its stored (anchored) root holds altered readings; the others
are untouched, and the proof of every window in them still verifies against the anchored root. The
windows are recomputed one meter at a time and folded into that meter's roots, so the check holds the
meters' roots, not every window (`audit_roots`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, select

from connector.audit import load_off_chain
from connector.core.canonical import decimal_text
from connector.core.directories import DirectoryTree, MeterId, MeterRoot
from connector.core.stored_rows import seal_rows
from connector.core.trees import Period, WindowLeaf, meter_roots
from connector.settings import Settings
from connector.store.models import Meter, Window
from connector.store.tree_models import PeriodMeter, PeriodRoot
from connector.trees_store import FETCH_ROWS, period_of_row, seconds


@dataclass(frozen=True)
class RootAudit:
    """A built period's stored root and the root its readings give now."""

    tenant: str
    period: Period
    stored: str
    recomputed: str | None  # None when no window of the period is left in the store

    @property
    def matches(self) -> bool:
        return self.stored == self.recomputed


def audit_roots(conn: Connection, settings: Settings, tenant: str) -> list[RootAudit]:
    """Every built period of `tenant`, its stored root against the root recomputed from the readings.

    Memory is bounded by the meters, not their windows: each meter's windows are recomputed one meter at
    a time and compared with the meter's stored roots (`period_meters`), and each period's root is then
    hashed from its stored meter roots with the differing ones replaced by the recomputed ones (or left
    out). Where a meter's recomputed root equals its stored one the two are the same bytes, so the result
    is the root of the recomputed leaves exactly, as the whole `PeriodTree` of them would give.
    """
    rows = conn.execute(
        select(PeriodRoot).where(PeriodRoot.tenant == tenant).order_by(PeriodRoot.start, PeriodRoot.kind)
    ).all()
    if not rows:
        return []
    changed = changed_meters(conn, settings, tenant, rows)
    out = []
    for row in rows:
        root = _recomputed_root(conn, row.id, changed.get(row.id, {}))
        out.append(RootAudit(tenant, period_of_row(row), row.root, root))
    return out


Changes = dict[MeterId, MeterRoot | None]  # a meter's recomputed root; None: no window of it is left


class _Built:
    """A tenant's built periods (`period_roots` rows) by the windows they hold."""

    def __init__(self, rows: Sequence[Any]) -> None:
        self.lo = min(r.start for r in rows)
        self.hi = max(r.start + timedelta(seconds=r.length) for r in rows)
        self._rows = {(r.kind, seconds(r.start)): r for r in rows}
        self._shapes = {(r.kind, r.length) for r in rows}

    def holding(self, window_start: int, closed_at: datetime) -> Iterator[Any]:
        """The rows of the built periods a window starting at `window_start` belongs to (by the build rule:
        closed at or before the period's build)."""
        for kind, length in self._shapes:
            row = self._rows.get((kind, window_start - window_start % length))
            if row is not None and closed_at <= row.built_at:
                yield row


def changed_meters(
    conn: Connection, settings: Settings, tenant: str, rows: Sequence[Any]
) -> dict[int, Changes]:
    """Per built period (`period_roots` id), the meters whose root recomputed from their readings is not
    their stored root, one meter's windows held at a time."""
    built, changed = _Built(rows), dict[int, Changes]()
    for m in conn.execute(select(Meter).where(Meter.tenant == tenant)).all():
        for period_id, root in _meter_changes(conn, settings, m, built):
            changed.setdefault(period_id, {})[(m.entity_id, m.service_path)] = root
    return changed


def _meter_changes(
    conn: Connection, settings: Settings, meter: Any, built: _Built
) -> list[tuple[int, MeterRoot | None]]:
    """The built periods where `meter`'s recomputed root is not its stored one, with the recomputed root."""
    windows: dict[int, tuple[Any, list[WindowLeaf]]] = {}
    for leaf, closed_at in meter_leaves(conn, settings, meter, built.lo, built.hi):
        for row in built.holding(leaf.window_start, closed_at):
            windows.setdefault(row.id, (row, []))[1].append(leaf)
    now = {
        pid: next(meter_roots(meter.tenant, period_of_row(row), leaves))
        for pid, (row, leaves) in windows.items()
    }
    stored = _stored_meter_roots(conn, meter.id)
    return [
        (pid, now.get(pid))
        for pid in now.keys() | stored.keys()
        if (now[pid].root.hex() if pid in now else None) != stored.get(pid)
    ]


def _stored_meter_roots(conn: Connection, meter_id: int) -> dict[int, str]:
    query = select(PeriodMeter.period_id, PeriodMeter.meter_root).where(PeriodMeter.meter_id == meter_id)
    return {r.period_id: r.meter_root for r in conn.execute(query)}


def _recomputed_root(conn: Connection, period_id: int, changes: Changes) -> str | None:
    """The root of a period's stored meter roots with `changes` applied; None when no meter is left."""
    query = (
        select(Meter.service_path, Meter.entity_id, PeriodMeter.meter_root, PeriodMeter.window_count)
        .join(Meter, Meter.id == PeriodMeter.meter_id)
        .where(PeriodMeter.period_id == period_id)
    )
    meters = [m for m in changes.values() if m is not None]
    with conn.execute(query.execution_options(yield_per=FETCH_ROWS)) as found:
        for r in found:
            if (r.entity_id, r.service_path) not in changes:
                # Energy is not hashed and not stored per meter: the root does not depend on it.
                meters.append(
                    MeterRoot(r.service_path, r.entity_id, bytes.fromhex(r.meter_root), 0, r.window_count)
                )
    return DirectoryTree(meters).root.hex() if meters else None


def meter_leaves(
    conn: Connection, settings: Settings, meter: Any, lo: datetime, hi: datetime
) -> Iterator[tuple[WindowLeaf, datetime]]:
    """The leaves of `meter`'s windows in [lo, hi) recomputed from their readings, with their close time."""
    stored = {
        w.start: w
        for w in conn.execute(
            select(Window.start, Window.prev_chain_hash, Window.closed_at).where(
                Window.meter_id == meter.id, Window.start >= lo, Window.start < hi
            )
        )
    }
    spec = partial(settings.attribute_spec, meter.entity_type)
    for off in load_off_chain(conn, meter.id, lo, hi):
        w = stored[off.start]
        cw = seal_rows(off.rows, off.start, off.end, w.prev_chain_hash, spec)
        energy = None if cw.energy_wh is None else decimal_text(cw.energy_wh)
        leaf = WindowLeaf.from_window(
            meter.tenant,
            meter.service_path,
            meter.entity_id,
            off.start,
            energy,
            cw.fingerprint,
            cw.chain_hash,
        )
        yield leaf, w.closed_at
