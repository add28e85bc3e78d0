"""Period trees over the store: the leaves of a tenant's period from its closed windows, the tree they make,
and the rows that keep its roots (connector/store/tree_models.py).

A period's tree holds the windows of the tenant's meters that start in the period and were closed at or
before the tree was built (`closed_at <= built_at`, one clock: the primary's). So rebuilding it later from
the store gives the same root unless the store was altered, which is what proofs and the tamper check use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from connector.core.trees import Period, PeriodTree, WindowLeaf, prefix_text
from connector.store.models import Meter, Reading, Window
from connector.store.tree_models import PeriodMeter, PeriodRoot, PeriodSubtree

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def moment(seconds: int) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return EPOCH + timedelta(seconds=seconds)


def seconds(at: datetime) -> int:
    """An aware datetime as whole Unix seconds."""
    return int(at.timestamp())


@dataclass(frozen=True)
class StoredLeaf:
    """A leaf and the store ids behind it."""

    meter_id: int
    window_id: int
    leaf: WindowLeaf


def load_leaves(
    conn: Connection, tenant: str, period: Period, closed_by: datetime | None = None
) -> list[StoredLeaf]:
    """The leaves of `tenant`'s windows starting in `period` (closed at or before `closed_by` if given)."""
    start = moment(period.start)
    query = (
        select(
            Meter.id,
            Meter.service_path,
            Meter.entity_id,
            Window.id.label("window_id"),
            Window.start,
            Window.energy_wh,
            Window.fingerprint,
            Window.chain_hash,
        )
        .join(Window, Window.meter_id == Meter.id)
        .where(
            Meter.tenant == tenant, Window.start >= start, Window.start < moment(period.start + period.length)
        )
    )
    if closed_by is not None:
        query = query.where(Window.closed_at <= closed_by)
    return [
        StoredLeaf(
            r.id,
            r.window_id,
            WindowLeaf.from_window(
                tenant, r.service_path, r.entity_id, r.start, r.energy_wh, r.fingerprint, r.chain_hash
            ),
        )
        for r in conn.execute(query)
    ]


def tree_of(leaves: Iterable[StoredLeaf], tenant: str, period: Period) -> PeriodTree:
    """The PeriodTree of stored leaves (ValueError when there are none)."""
    return PeriodTree(tenant, period, (s.leaf for s in leaves))


def find_root(conn: Connection, tenant: str, period: Period) -> Any:
    """The stored root row of a tenant's period, or None when it has not been built."""
    return conn.execute(
        select(PeriodRoot).where(
            PeriodRoot.tenant == tenant,
            PeriodRoot.kind == period.kind,
            PeriodRoot.start == moment(period.start),
        )
    ).first()


def stored_tree(conn: Connection, root_row: Any) -> PeriodTree:
    """The tree of a built period rebuilt from the store as it is now (same windows as at build time)."""
    period = Period(root_row.kind, seconds(root_row.start), root_row.length)
    return tree_of(load_leaves(conn, root_row.tenant, period, root_row.built_at), root_row.tenant, period)


def period_of_row(row: Any) -> Period:
    """The Period of a period_roots row."""
    return Period(row.kind, seconds(row.start), row.length)


def save_tree(
    conn: Connection,
    tree: PeriodTree,
    leaves: list[StoredLeaf],
    attributes: dict[int, list[dict[str, Any]]],
    built_at: datetime,
) -> int:
    """Insert a built tree's root, subtree roots and per-meter rows; return the period_roots id."""
    period_id = int(
        conn.execute(
            insert(PeriodRoot)
            .values(
                tenant=tree.tenant,
                kind=tree.period.kind,
                start=moment(tree.period.start),
                length=tree.period.length,
                root=tree.root.hex(),
                energy_wh=tree.energy_wh,
                meter_count=tree.meter_count,
                window_count=len(leaves),
                built_at=built_at,
            )
            .returning(PeriodRoot.id)
        ).scalar_one()
    )
    conn.execute(insert(PeriodSubtree), _subtree_rows(period_id, tree, leaves))
    conn.execute(insert(PeriodMeter), _meter_rows(period_id, tree, leaves, attributes))
    return period_id


def _subtree_rows(period_id: int, tree: PeriodTree, leaves: list[StoredLeaf]) -> list[dict[str, Any]]:
    rows = []
    for prefix in tree.prefixes():
        inside = [s for s in leaves if _segments(s.leaf.service_path)[: len(prefix)] == prefix]
        rows.append(
            {
                "period_id": period_id,
                "prefix": prefix_text(prefix),
                "root": tree.subtree_root(prefix).hex(),
                "meter_count": len({s.meter_id for s in inside}),
                "window_count": len(inside),
            }
        )
    return rows


def _segments(service_path: str) -> tuple[str, ...]:
    return tuple(s for s in service_path.split("/") if s)


def _meter_rows(
    period_id: int, tree: PeriodTree, leaves: list[StoredLeaf], attributes: dict[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    per_meter: dict[int, list[StoredLeaf]] = {}
    for s in leaves:
        per_meter.setdefault(s.meter_id, []).append(s)
    return [
        {
            "period_id": period_id,
            "meter_id": meter_id,
            "window_count": len(group),
            "meter_root": tree.meter_root(group[0].leaf.service_path, group[0].leaf.entity_id).hex(),
            "attributes_json": json.dumps(
                attributes.get(meter_id, []), sort_keys=True, separators=(",", ":")
            ),
        }
        for meter_id, group in sorted(per_meter.items())
    ]


def window_attributes(conn: Connection, tenant: str, start: datetime) -> dict[int, list[dict[str, Any]]]:
    """{meter id: [{"attr", "unit"}, ...]} of the on-time readings of the windows starting at `start`."""
    rows = conn.execute(
        select(Reading.meter_id, Reading.attr, Reading.unit)
        .join(Meter, Meter.id == Reading.meter_id)
        .where(Meter.tenant == tenant, Reading.window_start == start, Reading.late.is_(False))
        .distinct()
    ).all()
    return _grouped((r.meter_id, r.attr, r.unit) for r in rows)


def day_attributes(conn: Connection, tenant: str, day: Period) -> dict[int, list[dict[str, Any]]]:
    """The union of the attributes of the day's window periods (built before the day), per meter."""
    rows = conn.execute(
        select(PeriodMeter.meter_id, PeriodMeter.attributes_json)
        .join(PeriodRoot, PeriodRoot.id == PeriodMeter.period_id)
        .where(
            PeriodRoot.tenant == tenant,
            PeriodRoot.kind == "window",
            PeriodRoot.start >= moment(day.start),
            PeriodRoot.start < moment(day.start + day.length),
        )
    ).all()
    return _grouped((r.meter_id, a["attr"], a["unit"]) for r in rows for a in json.loads(r.attributes_json))


def _grouped(triples: Iterable[tuple[int, str, str | None]]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, set[tuple[str, str]]] = {}
    for meter_id, attr, unit in triples:
        found.setdefault(meter_id, set()).add((attr, unit or ""))
    return {m: [{"attr": a, "unit": u} for a, u in sorted(pairs)] for m, pairs in found.items()}
