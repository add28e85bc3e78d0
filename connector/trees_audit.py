"""The tamper check over period roots (seed 004's experiment, extended to seed 002's summary tree).

Each built period's tree is rebuilt from the readings as they are now: every window's fingerprint,
summary and chain hash recomputed from its on-time readings, chained from its stored (anchored) link
`prev_chain_hash` so a change stays in the window it was made in, exactly as `verify --meter` does. A
period whose recomputed root differs from its stored (anchored) root holds altered readings; the others
are untouched, and the proof of every window in them still verifies against the anchored root.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from connector.audit import load_off_chain, to_stored
from connector.core.canonical import decimal_text
from connector.core.fingerprint import seal_window
from connector.core.trees import Period, PeriodTree, WindowLeaf
from connector.settings import Settings
from connector.store.models import Meter, Window
from connector.store.tree_models import PeriodRoot
from connector.trees_store import period_of_row


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
    """Every built period of `tenant`, its stored root against the root recomputed from the readings."""
    rows = conn.execute(
        select(PeriodRoot).where(PeriodRoot.tenant == tenant).order_by(PeriodRoot.start, PeriodRoot.kind)
    ).all()
    if not rows:
        return []
    lo, hi = min(r.start for r in rows), max(r.start for r in rows)
    leaves = recomputed_leaves(
        conn, settings, tenant, lo, hi + timedelta(seconds=max(r.length for r in rows))
    )
    out = []
    for row in rows:
        period = period_of_row(row)
        inside = [w for w, at in leaves if period.contains(w.window_start) and at <= row.built_at]
        root = PeriodTree(tenant, period, inside).root.hex() if inside else None
        out.append(RootAudit(tenant, period, row.root, root))
    return out


def recomputed_leaves(
    conn: Connection, settings: Settings, tenant: str, lo: datetime, hi: datetime
) -> list[tuple[WindowLeaf, datetime]]:
    """The leaves of `tenant`'s windows in [lo, hi) recomputed from their readings, with their close time."""
    meters = conn.execute(select(Meter).where(Meter.tenant == tenant)).all()
    out = []
    for m in meters:
        stored = {
            w.start: w
            for w in conn.execute(
                select(Window.start, Window.prev_chain_hash, Window.closed_at).where(
                    Window.meter_id == m.id, Window.start >= lo, Window.start < hi
                )
            )
        }
        for off in load_off_chain(conn, m.id, lo, hi):
            w = stored[off.start]
            spec = lambda a, t=m.entity_type: settings.attribute_spec(t, a)  # noqa: E731
            cw = seal_window([to_stored(r) for r in off.rows], off.start, off.end, w.prev_chain_hash, spec)
            energy = None if cw.energy_wh is None else decimal_text(cw.energy_wh)
            leaf = WindowLeaf.from_window(
                tenant, m.service_path, m.entity_id, off.start, energy, cw.fingerprint, cw.chain_hash
            )
            out.append((leaf, w.closed_at))
    return out
