"""A period tree folded meter by meter (`period_roots`, what the builder uses) against the whole-tree
reference `PeriodTree`: the same roots, subtree roots, meter roots, energy and counts, one meter's leaves
alive at a time, and the same refusals."""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from hypothesis import given, settings

from connector.core.trees import (
    DirectoryTree,
    Period,
    PeriodTree,
    Proof,
    WindowLeaf,
    group_by_period,
    merkle_root,
    meter_proof,
    path_segments,
    period_roots,
)
from tests.core.test_trees import LEAVES, T0

DAY = Period("day", T0 - 16 * 3600, 86_400)
PATHS = ("/", "/a", "/a/", "/a/b", "/a/b/c", "/a-b", "/b", "/é", "/b/a/z")


def by_meter(leaves: list[WindowLeaf], rng: random.Random) -> list[WindowLeaf]:
    """The leaves with each meter's windows together: meters and windows in random order (as a store
    ordered by meter id gives them, whatever the ids are)."""
    meters: dict[tuple[str, str], list[WindowLeaf]] = {}
    for w in leaves:
        meters.setdefault((w.entity_id, w.service_path), []).append(w)
    groups = list(meters.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    return [w for group in groups for w in group]


def random_day(rng: random.Random, meters: int) -> list[WindowLeaf]:
    """`meters` meters of tenant t1 over PATHS, each with 1 to 96 of the day's windows."""
    out = []
    for _ in range(meters):
        path, entity = rng.choice(PATHS), f"urn:m:{rng.randrange(meters // 2 + 1)}"
        for k in sorted(rng.sample(range(96), rng.randint(1, 96))):
            energy = rng.randint(-(2**40), 2**40)
            out.append(
                WindowLeaf(
                    "t1", path, entity, DAY.start + 900 * k, energy, rng.randbytes(32), rng.randbytes(32)
                )
            )
    unique = {(w.entity_id, w.service_path, w.window_start): w for w in out}
    return list(unique.values())


def assert_same_tree(streamed: DirectoryTree, reference: PeriodTree, leaves: list[WindowLeaf]) -> None:
    assert streamed.root == reference.root
    assert streamed.prefixes() == reference.prefixes()
    for prefix in reference.prefixes():
        assert streamed.subtree_root(prefix) == reference.subtree_root(prefix)
        under = [w for w in leaves if path_segments(w.service_path)[: len(prefix)] == prefix]
        assert streamed.counts(prefix) == (len({(w.entity_id, w.service_path) for w in under}), len(under))
    for m in streamed.meters():
        windows = sorted(
            (w for w in leaves if (w.entity_id, w.service_path) == m.key), key=lambda w: w.window_start
        )
        assert (
            m.root
            == reference.meter_root(m.service_path, m.entity_id)
            == merkle_root([w.hash for w in windows])
        )
        assert (m.energy_wh, m.window_count) == (sum(w.energy_wh for w in windows), len(windows))
    assert (streamed.energy_wh, streamed.meter_count) == (reference.energy_wh, reference.meter_count)
    assert streamed.window_count == len(leaves)


@pytest.mark.parametrize("seed", range(8))
def test_folded_day_equals_the_reference_tree(seed: int) -> None:
    """Seeded random days of 1-60 meters over nested service paths: every root and count as PeriodTree."""
    rng = random.Random(seed)
    leaves = random_day(rng, rng.randint(1, 60))
    streamed = period_roots("t1", DAY, by_meter(leaves, rng))
    assert_same_tree(streamed, PeriodTree("t1", DAY, leaves), leaves)


@settings(max_examples=60, deadline=None)
@given(LEAVES)
def test_folded_trees_equal_the_reference_for_every_period(leaves: list[WindowLeaf]) -> None:
    """Every tenant's window periods and days of arbitrary leaves fold to PeriodTree's roots and counts."""
    rng = random.Random(len(leaves))
    for (tenant, period), group in group_by_period(leaves, 900).items():
        streamed = period_roots(tenant, period, by_meter(group, rng))
        assert_same_tree(streamed, PeriodTree(tenant, period, group), group)


class LiveLeaves:
    """Leaves made on demand, counting how many are alive at once."""

    def __init__(self) -> None:
        self.live = self.peak = self.made = 0

    def day(self, meters: int, windows: int) -> Iterator[WindowLeaf]:
        for m in range(meters):
            for k in range(windows):
                leaf = WindowLeaf(
                    "t1", f"/r{m % 3}", f"urn:m:{m}", DAY.start + 900 * k, k, b"\1" * 32, b"\2" * 32
                )
                self.made, self.live = self.made + 1, self.live + 1
                self.peak = max(self.peak, self.live)
                weakref.finalize(leaf, self._gone)
                yield leaf

    def _gone(self) -> None:
        self.live -= 1


def test_folding_holds_one_meters_leaves_at_a_time() -> None:
    """200 meters x 96 windows: at most one meter's 96 leaves (and the next one read) are ever alive;
    the whole-tree reference holds all 19,200."""
    folded, whole = LiveLeaves(), LiveLeaves()
    streamed = period_roots("t1", DAY, folded.day(200, 96))
    reference = PeriodTree("t1", DAY, whole.day(200, 96))
    assert streamed.root == reference.root and folded.made == whole.made == 19_200
    assert folded.peak <= 96 + 1
    assert whole.peak == 19_200


def test_refusals_are_the_references() -> None:
    """Foreign tenants, windows outside the period, two windows of one start and no leaf are refused as
    PeriodTree refuses them; so is a meter whose windows do not come together."""
    a = WindowLeaf("t1", "/a", "m", T0, 1, b"\1" * 32, b"\2" * 32)
    b = WindowLeaf("t1", "/a", "n", T0, 1, b"\1" * 32, b"\2" * 32)
    a2 = WindowLeaf("t1", "/a", "m", T0 + 900, 1, b"\1" * 32, b"\2" * 32)
    foreign = WindowLeaf("t2", "/a", "m", T0, 1, b"\1" * 32, b"\2" * 32)
    for leaves in (
        [a, a],
        [foreign],
        [],
        [WindowLeaf("t1", "/a", "m", DAY.start - 900, 1, b"\1" * 32, b"\2" * 32)],
    ):
        for build in (PeriodTree, period_roots):
            with pytest.raises(ValueError):
                build("t1", DAY, leaves)
    with pytest.raises(ValueError, match="given twice"):
        period_roots("t1", DAY, [a, b, a2])
    assert PeriodTree("t1", DAY, [a, b, a2]).root == period_roots("t1", DAY, [a, a2, b]).root


def test_one_entity_in_two_service_paths_is_two_meters() -> None:
    """One entity id in "/a", "/a/" and "/" is three meters, also when their windows come one after
    another."""
    leaves = [WindowLeaf("t1", p, "m", T0, 1, b"\1" * 32, b"\2" * 32) for p in ("/a", "/a/", "/")]
    streamed, reference = period_roots("t1", DAY, leaves), PeriodTree("t1", DAY, leaves)
    assert streamed.meter_count == reference.meter_count == 3 and streamed.root == reference.root


def proof_or_error(make: Callable[[], Proof]) -> tuple[object, ...]:
    try:
        return ("proof", make())
    except KeyError as exc:
        return ("KeyError", exc.args)


@pytest.mark.parametrize("seed", range(6))
def test_meter_proof_from_the_meters_roots_is_the_whole_trees_proof(seed) -> None:
    """`meter_proof` over the folded tree and one meter's windows gives `PeriodTree.proof`, to the tenant
    root and to every prefix, and the same KeyError for a window, meter or prefix the proof cannot have."""
    rng = random.Random(seed)
    leaves = random_day(rng, 25)
    reference, folded = PeriodTree("t1", DAY, leaves), period_roots("t1", DAY, by_meter(leaves, rng))
    meters = {(w.entity_id, w.service_path) for w in leaves} | {("urn:m:none", "/a")}
    for entity, path in sorted(meters):
        windows = sorted((w for w in leaves if (w.entity_id, w.service_path) == (entity, path)), key=start_of)
        for to in [*reference.prefixes(), ("zz",), "/a/b/c/d"]:
            for start in rng.sample(range(DAY.start - 900, DAY.start + DAY.length, 900), 20):
                expected = proof_or_error(partial(reference.proof, path, entity, start, to))
                got = proof_or_error(
                    partial(meter_proof, "t1", DAY, folded, (entity, path), windows, start, to)
                )
                assert got == expected


def start_of(w: WindowLeaf) -> int:
    return w.window_start
