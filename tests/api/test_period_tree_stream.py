"""The period-tree builder (connector.periods.build_period) folds each meter's windows as they stream from
the store: on SQLite and PostgreSQL it stores exactly the rows the whole-tree reference gives, and never
holds more than one meter's leaves at once."""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from connector.core.trees import DAY, Period, PeriodTree, WindowLeaf, merkle_root, path_segments, prefix_text
from connector.periods import build_period
from connector.store.db import Store
from connector.store.models import Meter, Reading, Window
from connector.store.tree_models import PeriodMeter, PeriodRoot, PeriodSubtree
from connector.trees_store import load_leaves

DAY0 = datetime(2024, 3, 1, tzinfo=UTC)
THE_DAY = Period("day", int(DAY0.timestamp()), DAY)
NOW = DAY0 + timedelta(days=1, hours=1)
PATHS = ("/", "/a", "/a/", "/a/b", "/a/b/c", "/a-b", "/b", "/é")


def add_meter(conn: Any, tenant: str, path: str, entity_id: str) -> int:
    values = dict(tenant=tenant, service_path=path, entity_id=entity_id, entity_type="SMX", first_seen=DAY0)
    values.update(chain_seed="00" * 32, chain_head="00" * 32, late_since_close=0)
    return int(conn.execute(insert(Meter).values(**values)).inserted_primary_key[0])


def window_row(rng: random.Random, meter_id: int, start: datetime, closed_at: datetime) -> dict[str, Any]:
    energy = rng.choice([None, "0", f"{rng.randint(-(10**6), 10**9)}.{rng.randrange(10**6):06d}", "2.5"])
    return dict(
        meter_id=meter_id,
        start=start,
        end=start + timedelta(minutes=15),
        closed_at=closed_at,
        reading_count=1,
        duplicate_count=0,
        late_count=0,
        summary_json="{}",
        energy_wh=energy,
        fingerprint=rng.randbytes(32).hex(),
        prev_chain_hash="00" * 32,
        chain_hash=rng.randbytes(32).hex(),
    )


def random_store(store: Store, seed: int, meters: int = 40) -> None:
    """Tenant t1's meters over nested service paths with 1-96 windows of THE_DAY each (some closed after
    NOW, some on the days around it), and a few meters of tenant t2."""
    rng = random.Random(seed)
    with store.begin() as conn:
        identities = rng.sample([(p, f"urn:m:{j}") for p in PATHS for j in range(10)], meters)
        ids = {add_meter(conn, "t1", path, entity): "t1" for path, entity in identities}
        ids |= {add_meter(conn, "t2", "/a", f"urn:m:{i}"): "t2" for i in range(3)}
        rows = []
        for meter_id in ids:
            for k in rng.sample(range(-2, 98), rng.randint(1, 96)):
                start = DAY0 + timedelta(minutes=15 * k)
                late = rng.random() < 0.05
                rows.append(window_row(rng, meter_id, start, NOW + timedelta(seconds=1 if late else -600)))
        conn.execute(insert(Window), rows)


def add_readings(store: Store, start: datetime) -> list[int]:
    """On-time E (kWh) and P (W) readings and a late X of two of t1's meters with a window at `start`
    closed by NOW; returns their ids."""
    with store.begin() as conn:
        meter_ids = list(
            conn.execute(
                select(Window.meter_id)
                .join(Meter, Meter.id == Window.meter_id)
                .where(Meter.tenant == "t1", Window.start == start, Window.closed_at <= NOW)
                .order_by(Window.meter_id)
                .limit(2)
            ).scalars()
        )
        rows = [
            dict(meter_id=m, attr=attr, attr_type="Number", observed_at=start + timedelta(seconds=s))
            | dict(received_at=NOW, time_source="observed", value_json="1", number="1", unit=unit)
            | dict(window_start=start, late=attr == "X")
            for m in meter_ids
            for s, (attr, unit) in enumerate((("E", "kWh"), ("P", "W"), ("X", "V")))
        ]
        conn.execute(insert(Reading), rows)
    return meter_ids


def stored_rows(conn: Any, period: Period) -> tuple[Any, ...]:
    """A built period's root row (without ids and times), its subtree rows and its meter rows."""
    root = conn.execute(
        select(PeriodRoot).where(PeriodRoot.tenant == "t1", PeriodRoot.kind == period.kind)
    ).one()
    subtrees = conn.execute(
        select(
            PeriodSubtree.prefix, PeriodSubtree.root, PeriodSubtree.meter_count, PeriodSubtree.window_count
        )
        .where(PeriodSubtree.period_id == root.id)
        .order_by(PeriodSubtree.prefix)
    ).all()
    meters = conn.execute(
        select(
            PeriodMeter.meter_id,
            PeriodMeter.window_count,
            PeriodMeter.meter_root,
            PeriodMeter.attributes_json,
        )
        .where(PeriodMeter.period_id == root.id)
        .order_by(PeriodMeter.meter_id)
    ).all()
    head = (root.root, root.energy_wh, root.meter_count, root.window_count, root.length, root.built_at)
    return head, [tuple(r) for r in subtrees], [tuple(r) for r in meters]


def reference_rows(conn: Any, period: Period, attributes: dict[int, str]) -> tuple[Any, ...]:
    """What the builder stored before it streamed: the whole-tree PeriodTree over every leaf at once,
    subtree counts and meter roots computed from the leaves."""
    leaves = load_leaves(conn, "t1", period, closed_by=NOW)
    tree = PeriodTree("t1", period, (s.leaf for s in leaves))
    head = (tree.root.hex(), tree.energy_wh, tree.meter_count, len(leaves), period.length, NOW)
    subtrees = []
    for prefix in tree.prefixes():
        inside = [s for s in leaves if path_segments(s.leaf.service_path)[: len(prefix)] == prefix]
        meters = len({s.meter_id for s in inside})
        subtrees.append((prefix_text(prefix), tree.subtree_root(prefix).hex(), meters, len(inside)))
    per_meter: dict[int, list[WindowLeaf]] = {}
    for s in leaves:
        per_meter.setdefault(s.meter_id, []).append(s.leaf)
    meter_rows = []
    for meter_id, windows in sorted(per_meter.items()):
        root = merkle_root([w.hash for w in sorted(windows, key=lambda w: w.window_start)])
        meter_rows.append((meter_id, len(windows), root.hex(), attributes.get(meter_id, "[]")))
    return head, sorted(subtrees), meter_rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stored_rows_are_the_whole_trees(store, seed) -> None:
    """A window period and the day built by streaming store the root, energy, counts, subtree roots,
    meter roots and attributes the whole-tree reference gives, on SQLite and PostgreSQL."""
    random_store(store, seed)
    first = DAY0 + timedelta(minutes=15 * 5)
    with_readings = dict.fromkeys(
        add_readings(store, first), '[{"attr":"E","unit":"kWh"},{"attr":"P","unit":"W"}]'
    )
    window = Period("window", int(first.timestamp()), 900)
    for period in (window, THE_DAY):  # the day's attributes are those of its window periods built
        with store.begin() as conn:
            assert build_period(conn, "t1", period, NOW) is not None
    with store.reading() as conn:
        for period in (window, THE_DAY):
            expected = reference_rows(conn, period, with_readings)
            assert stored_rows(conn, period) == expected
            assert expected[0][2] > 1 and len(expected[1]) > 4  # several meters and directories
        assert len(with_readings) == 2


class LiveLeaves:
    """Counts the WindowLeaf objects alive at once, from the moment it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.live = self.peak = self.made = 0
        original = WindowLeaf.__post_init__

        def counted(leaf: WindowLeaf) -> None:
            original(leaf)
            self.made, self.live = self.made + 1, self.live + 1
            self.peak = max(self.peak, self.live)
            weakref.finalize(leaf, self._gone)

        monkeypatch.setattr(WindowLeaf, "__post_init__", counted)

    def _gone(self) -> None:
        self.live -= 1


def full_day(store: Store, meters: int) -> Iterator[int]:
    rng = random.Random(7)
    with store.begin() as conn:
        ids = [add_meter(conn, "t1", PATHS[i % len(PATHS)], f"urn:m:{i}") for i in range(meters)]
        starts = [DAY0 + timedelta(minutes=15 * k) for k in range(96)]
        conn.execute(
            insert(Window), [window_row(rng, m, s, NOW - timedelta(hours=1)) for m in ids for s in starts]
        )
    return iter(ids)


def test_the_day_builder_holds_one_meters_leaves_at_a_time(store, monkeypatch) -> None:
    """Building a day of 30 meters x 96 windows never has more than one meter's 96 leaves (and the next
    one read) alive: memory bounded by the meters, not their windows."""
    full_day(store, 30)
    live = LiveLeaves(monkeypatch)
    with store.begin() as conn:
        built = build_period(conn, "t1", THE_DAY, NOW)
    assert built is not None and built.windows == live.made == 30 * 96
    assert live.peak <= 96 + 1, f"{live.peak} leaves alive at once"
