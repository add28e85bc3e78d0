"""Proofs and the tamper check stream a period's windows from the store (issue 18): on SQLite and
PostgreSQL a proof equals the whole-tree `PeriodTree.proof` (errors too), the tamper check reports the
roots the whole recomputed trees give, and neither holds more than about one meter's leaves at once."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from connector.core.trees import Period, PeriodTree
from connector.periods import build_period
from connector.proofs import window_proof
from connector.settings import Settings
from connector.store.db import Store
from connector.store.models import Meter, Window
from connector.store.tree_models import PeriodRoot
from connector.trees_audit import audit_roots, meter_leaves
from connector.trees_store import moment, period_of_row, stored_meter_tree, stored_tree
from tests.api.test_period_tree_stream import (
    DAY0,
    NOW,
    THE_DAY,
    LiveLeaves,
    add_meter,
    full_day,
    random_store,
    window_row,
)


def outcome(make: Callable[[], Any]) -> tuple[Any, ...]:
    """A proof's JSON form, or the exception it raised (type and arguments)."""
    try:
        return ("proof", make().to_dict())
    except (KeyError, ValueError) as exc:
        return (type(exc).__name__, exc.args)


def build(store: Store, *periods: Period) -> None:
    for period in periods:
        with store.begin() as conn:
            assert build_period(conn, "t1", period, NOW) is not None


def window_period(k: int) -> Period:
    return Period("window", int((DAY0 + timedelta(minutes=15 * k)).timestamp()), 900)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_a_streamed_proof_is_the_whole_trees_proof(store, seed) -> None:
    """For every meter of the tenant (and one it does not have), every window start of the period (and
    some it has not), and every prefix (and some that do not enclose the meter or do not exist), the proof
    from `stored_meter_tree` equals `PeriodTree.proof` of the whole rebuilt tree, or raises the same
    error; for a window period and the day, to the tenant root and to each prefix's subtree root."""
    random_store(store, seed)
    build(store, window_period(7), THE_DAY)
    compared = proofs = 0
    with store.reading() as conn:
        meters = [(m.service_path, m.entity_id) for m in conn.execute(select(Meter))]
        for row in conn.execute(select(PeriodRoot)).all():
            whole, period = stored_tree(conn, row), period_of_row(row)
            prefixes = [*whole.prefixes(), ("zz",), ("a", "b", "c", "d"), "/a/b"]
            starts = (
                [period.start + 900 * k for k in range(-1, 97)] if period.kind == "day" else [period.start]
            )
            for path, entity in [*meters, ("/a", "urn:m:none")]:
                streamed = stored_meter_tree(conn, row, path, entity)
                assert streamed.root == whole.root
                for to in prefixes:
                    for start in starts:
                        expected = outcome(partial(whole.proof, path, entity, start, to))
                        assert outcome(partial(streamed.proof, start, to)) == expected
                        compared, proofs = compared + 1, proofs + (expected[0] == "proof")
    assert proofs > 1_000 and compared - proofs > 1_000  # both proofs and errors were compared


def test_a_day_proof_holds_the_proven_meters_leaves_and_one_more_meters(store, settings, monkeypatch) -> None:
    """The proof of one window of a day of 30 meters x 96 windows has at most the proven meter's 96 leaves
    and the 96 of the meter being folded (and the next one read) alive at once, not the day's 2,880."""
    full_day(store, 30)
    build(store, THE_DAY)
    live = LiveLeaves(monkeypatch)
    with store.reading() as conn:
        meter = conn.execute(select(Meter).where(Meter.entity_id == "urn:m:12")).one()
        found = window_proof(conn, meter, DAY0 + timedelta(hours=5), "day", settings.window.length)
    assert found.proof.verify() and live.made == 30 * 96
    assert live.peak <= 2 * 96 + 1, f"{live.peak} leaves alive at once"


def test_the_tamper_check_holds_one_meters_leaves_at_a_time(store, settings, monkeypatch) -> None:
    """The tamper check over a built day of 30 meters x 96 windows recomputes every window but has at
    most one meter's 96 leaves (and the next one made) alive at once."""
    full_day(store, 30)
    build(store, THE_DAY)
    live = LiveLeaves(monkeypatch)
    with store.reading() as conn:
        audits = audit_roots(conn, settings, "t1")
    assert len(audits) == 1 and live.made == 30 * 96
    assert live.peak <= 96 + 1, f"{live.peak} leaves alive at once"


def whole_audit(conn: Any, settings: Settings) -> list[tuple[Period, str, str | None]]:
    """What the tamper check reported before it streamed: each built period's stored root against the
    whole PeriodTree of every window recomputed from its readings, closed by the period's build."""
    rows = conn.execute(
        select(PeriodRoot).where(PeriodRoot.tenant == "t1").order_by(PeriodRoot.start, PeriodRoot.kind)
    ).all()
    lo, hi = DAY0 - timedelta(days=1), DAY0 + timedelta(days=2)
    leaves = [
        pair
        for m in conn.execute(select(Meter).where(Meter.tenant == "t1")).all()
        for pair in meter_leaves(conn, settings, m, lo, hi)
    ]
    out = []
    for row in rows:
        period = period_of_row(row)
        inside = [w for w, at in leaves if period.contains(w.window_start) and at <= row.built_at]
        out.append((period, row.root, PeriodTree("t1", period, inside).root.hex() if inside else None))
    return out


def seal_as_readings_give(store: Store, settings: Settings, keep: set[str]) -> None:
    """Set the stored windows of every meter but those in `keep` to what their readings give."""
    with store.begin() as conn:
        meters = conn.execute(select(Meter).where(Meter.tenant == "t1")).all()
        lo, hi = DAY0 - timedelta(days=1), DAY0 + timedelta(days=2)
        for m in meters:
            if m.entity_id in keep:
                continue
            for leaf, _ in list(meter_leaves(conn, settings, m, lo, hi)):
                values = dict(fingerprint=leaf.fingerprint.hex(), chain_hash=leaf.chain_hash.hex())
                conn.execute(
                    update(Window)
                    .where(Window.meter_id == m.id, Window.start == moment(leaf.window_start))
                    .values(**values, energy_wh=str(leaf.energy_wh))
                )


@pytest.mark.parametrize("seed", [8, 9])
def test_the_tamper_check_reports_what_the_whole_recomputed_trees_give(store, settings, seed) -> None:
    """With most meters' windows as their readings give, a few not, one meter's windows of a period
    deleted and a new meter's window added after the build, every period's recomputed root is the whole
    recomputed tree's (or None when no window is left), matching or not as the whole trees say."""
    random_store(store, seed, meters=20)
    with store.reading() as conn:
        entities = sorted(conn.execute(select(Meter.entity_id).where(Meter.tenant == "t1")).scalars())
    broken = set(random.Random(seed).sample(entities, 2))
    seal_as_readings_give(store, settings, broken)
    periods = [window_period(k) for k in (3, 40, 41)]
    build(store, *periods, THE_DAY)
    with store.reading() as conn:
        before = whole_audit(conn, settings)
    with store.begin() as conn:
        gone = conn.execute(
            select(Window.meter_id).where(Window.start == DAY0 + timedelta(minutes=15 * 40))
        ).first()
        assert gone is not None
        conn.execute(delete(Window).where(Window.meter_id == gone.meter_id, Window.start >= DAY0))
        new = add_meter(conn, "t1", "/a/b", "urn:m:new")
        conn.execute(insert(Window), [window_row(random.Random(1), new, DAY0 + timedelta(minutes=45), NOW)])
    with store.reading() as conn:
        expected = whole_audit(conn, settings)
        got = [(a.period, a.stored, a.recomputed) for a in audit_roots(conn, settings, "t1")]
    assert got == expected
    assert any(stored != root for _, stored, root in expected)
    assert expected != before  # the deletion and the new window changed what the check reports
