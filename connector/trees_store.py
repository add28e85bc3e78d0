"""Period trees over the store: the leaves of a tenant's period from its closed windows, the tree they make,
and the rows that keep its roots (connector/store/tree_models.py).

The builder folds a period's leaves into each meter's root as they stream from the store (`build_roots`),
so it holds the meters' roots, not their windows (a day of 100,000 meters is 9.6 million windows); a proof
holds those roots and the proven meter's windows (`stored_meter_tree`). `stored_tree`, the whole tree of a
period with every leaf, is the reference they are tested against.

A period's tree holds the windows of the tenant's meters that start in the period and were closed at or
before the tree was built (`closed_at <= built_at`, one clock: the primary's). So rebuilding it later from
the store gives the same root unless the store was altered, which is what proofs and the tamper check use.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import Connection, func, insert, select

from connector.core.directories import DirectoryTree, MeterId, MeterRoot, Prefix
from connector.core.trees import (
    Period,
    PeriodTree,
    Proof,
    WindowLeaf,
    meter_proof,
    meter_roots,
    prefix_text,
)
from connector.store.models import Meter, Reading, Window
from connector.store.tree_models import PeriodMeter, PeriodRoot, PeriodSubtree

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Rows fetched at a time when a period's leaves or attributes stream from the store (a server-side cursor
# on PostgreSQL), and per-meter rows written per INSERT: what the builder holds beside the meters' roots.
FETCH_ROWS = 5_000
INSERT_ROWS = 5_000


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
    return list(stream_leaves(conn, tenant, period, closed_by))


def stream_leaves(
    conn: Connection, tenant: str, period: Period, closed_by: datetime | None = None
) -> Iterator[StoredLeaf]:
    """`load_leaves` one at a time, fetched FETCH_ROWS rows at a time, each meter's windows one after
    another (by meter id, then start)."""
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
    query = query.order_by(Meter.id, Window.start).execution_options(yield_per=FETCH_ROWS)
    with conn.execute(query) as rows:
        for r in rows:
            leaf = WindowLeaf.from_window(
                tenant, r.service_path, r.entity_id, r.start, r.energy_wh, r.fingerprint, r.chain_hash
            )
            yield StoredLeaf(r.id, r.window_id, leaf)


@dataclass(frozen=True)
class BuiltRoots:
    """A period's tree as the builder keeps it: the levels above its meters' roots, and each meter's id."""

    tenant: str
    period: Period
    tree: DirectoryTree
    meter_ids: dict[MeterId, int]


def build_roots(conn: Connection, tenant: str, period: Period, closed_by: datetime) -> BuiltRoots | None:
    """The tree of `tenant`'s windows in `period` closed by `closed_by`, each meter's windows folded into
    its root as they stream from the store: memory bounded by the meters, not their windows. The same
    roots, energy and counts as `tree_of(load_leaves(...))`; None when there is no such window."""
    ids: dict[MeterId, int] = {}

    def note(s: StoredLeaf) -> None:
        ids[s.leaf.entity_id, s.leaf.service_path] = s.meter_id

    tree = _folded(conn, tenant, period, closed_by, note)
    return BuiltRoots(tenant, period, tree, ids) if tree else None


@dataclass(frozen=True)
class MeterTree:
    """A period's tree as a proof of one meter's windows needs it: the levels above the meters' roots and
    that meter's windows (by start), not the other meters' windows."""

    tenant: str
    period: Period
    tree: DirectoryTree
    meter: MeterId
    windows: list[WindowLeaf]

    @property
    def root(self) -> bytes:
        """The tenant root."""
        return self.tree.root

    def proof(self, window_start: int, to: Prefix | str = ()) -> Proof:
        """`PeriodTree.proof` of the meter's window starting at `window_start`, with its KeyErrors."""
        return meter_proof(self.tenant, self.period, self.tree, self.meter, self.windows, window_start, to)


def meter_tree(
    conn: Connection,
    tenant: str,
    period: Period,
    closed_by: datetime | None,
    service_path: str,
    entity_id: str,
) -> MeterTree | None:
    """The tree of `tenant`'s windows in `period` (closed by `closed_by` if given) holding the meters'
    roots and the windows of meter (`service_path`, `entity_id`): memory bounded by the meters and one
    meter's windows. None when there is no such window."""
    meter, kept = (entity_id, service_path), []

    def keep(s: StoredLeaf) -> None:
        if (s.leaf.entity_id, s.leaf.service_path) == meter:
            kept.append(s.leaf)

    tree = _folded(conn, tenant, period, closed_by, keep)
    windows = sorted(kept, key=lambda w: w.window_start)
    return MeterTree(tenant, period, tree, meter, windows) if tree else None


def _folded(
    conn: Connection,
    tenant: str,
    period: Period,
    closed_by: datetime | None,
    each: Callable[[StoredLeaf], None],
) -> DirectoryTree | None:
    """The directory levels over the meters' roots of the period's leaves as they stream, `each` called
    with every leaf on its way; None when there is no leaf."""

    def leaves() -> Iterator[WindowLeaf]:
        for s in stream_leaves(conn, tenant, period, closed_by):
            each(s)
            yield s.leaf

    meters = list(meter_roots(tenant, period, leaves()))
    return DirectoryTree(meters) if meters else None


def tree_of(leaves: Iterable[StoredLeaf], tenant: str, period: Period) -> PeriodTree:
    """The PeriodTree of stored leaves (ValueError when there are none)."""
    return PeriodTree(tenant, period, (s.leaf for s in leaves))


def last_window_id(conn: Connection) -> int:
    """The highest window id this transaction sees (0 without windows)."""
    return int(conn.execute(select(func.max(Window.id))).scalar() or 0)


def windows_closed_since(conn: Connection, after_id: int, period: Period, closed_by: datetime) -> bool:
    """True if a window with an id above `after_id` starts in `period` and was closed by `closed_by`: one
    the tree of `period` built from a transaction that saw only ids up to `after_id` would have missed. Any
    tenant's (a false alarm only costs a rebuild); reads the windows added since, by primary key."""
    query = select(Window.id).where(
        Window.id > after_id,
        Window.start >= moment(period.start),
        Window.start < moment(period.start + period.length),
        Window.closed_at <= closed_by,
    )
    return conn.execute(query.limit(1)).first() is not None


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
    """The whole tree of a built period rebuilt from the store as it is now (same windows as at build
    time), every leaf held: the reference `stored_meter_tree` must agree with."""
    period = period_of_row(root_row)
    return tree_of(load_leaves(conn, root_row.tenant, period, root_row.built_at), root_row.tenant, period)


def stored_meter_tree(conn: Connection, root_row: Any, service_path: str, entity_id: str) -> MeterTree | None:
    """`stored_tree` as a proof of one meter's windows needs it (`meter_tree`): the same root and proofs
    without holding the other meters' windows. None when no window of the build is left."""
    period = period_of_row(root_row)
    return meter_tree(conn, root_row.tenant, period, root_row.built_at, service_path, entity_id)


def period_of_row(row: Any) -> Period:
    """The Period of a period_roots row."""
    return Period(row.kind, seconds(row.start), row.length)


def save_tree(
    conn: Connection, built: BuiltRoots, attributes: dict[int, list[dict[str, Any]]], built_at: datetime
) -> int:
    """Insert a built tree's root, subtree roots and per-meter rows; return the period_roots id."""
    tree = built.tree
    period_id = int(
        conn.execute(
            insert(PeriodRoot)
            .values(
                tenant=built.tenant,
                kind=built.period.kind,
                start=moment(built.period.start),
                length=built.period.length,
                root=tree.root.hex(),
                energy_wh=tree.energy_wh,
                meter_count=tree.meter_count,
                window_count=tree.window_count,
                built_at=built_at,
            )
            .returning(PeriodRoot.id)
        ).scalar_one()
    )
    conn.execute(insert(PeriodSubtree), _subtree_rows(period_id, tree))
    rows = _meter_rows(period_id, built, attributes)
    while chunk := list(islice(rows, INSERT_ROWS)):
        conn.execute(insert(PeriodMeter), chunk)
    return period_id


def _subtree_rows(period_id: int, tree: DirectoryTree) -> list[dict[str, Any]]:
    rows = []
    for prefix in tree.prefixes():
        meters, windows = tree.counts(prefix)
        rows.append(
            {
                "period_id": period_id,
                "prefix": prefix_text(prefix),
                "root": tree.subtree_root(prefix).hex(),
                "meter_count": meters,
                "window_count": windows,
            }
        )
    return rows


def _meter_rows(
    period_id: int, built: BuiltRoots, attributes: dict[int, list[dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    def meter_id(m: MeterRoot) -> int:
        return built.meter_ids[m.key]

    for meter in sorted(built.tree.meters(), key=meter_id):
        yield {
            "period_id": period_id,
            "meter_id": meter_id(meter),
            "window_count": meter.window_count,
            "meter_root": meter.root.hex(),
            "attributes_json": json.dumps(
                attributes.get(meter_id(meter), []), sort_keys=True, separators=(",", ":")
            ),
        }


def window_attributes(conn: Connection, tenant: str, start: datetime) -> dict[int, list[dict[str, Any]]]:
    """{meter id: [{"attr", "unit"}, ...]} of the on-time readings of the windows starting at `start`."""
    query = (
        select(Reading.meter_id, Reading.attr, Reading.unit)
        .join(Meter, Meter.id == Reading.meter_id)
        .where(Meter.tenant == tenant, Reading.window_start == start, Reading.late.is_(False))
        .distinct()
    )
    with conn.execute(query.execution_options(yield_per=FETCH_ROWS)) as rows:
        return _grouped((r.meter_id, r.attr, r.unit) for r in rows)


def day_attributes(conn: Connection, tenant: str, day: Period) -> dict[int, list[dict[str, Any]]]:
    """The union of the attributes of the day's window periods (built before the day), per meter."""
    query = (
        select(PeriodMeter.meter_id, PeriodMeter.attributes_json)
        .join(PeriodRoot, PeriodRoot.id == PeriodMeter.period_id)
        .where(
            PeriodRoot.tenant == tenant,
            PeriodRoot.kind == "window",
            PeriodRoot.start >= moment(day.start),
            PeriodRoot.start < moment(day.start + day.length),
        )
    )
    parse = functools.lru_cache(maxsize=1024)(json.loads)  # most meters' windows carry the same few lists
    with conn.execute(query.execution_options(yield_per=FETCH_ROWS)) as rows:
        return _grouped((r.meter_id, a["attr"], a["unit"]) for r in rows for a in parse(r.attributes_json))


def _grouped(triples: Iterable[tuple[int, str, str | None]]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, set[tuple[str, str]]] = {}
    for meter_id, attr, unit in triples:
        found.setdefault(meter_id, set()).add((attr, unit or ""))
    return {m: [{"attr": a, "unit": u} for a, u in sorted(pairs)] for m, pairs in found.items()}
