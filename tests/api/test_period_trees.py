"""Period trees from the store (connector/periods.py): when periods are built, what is stored, idempotence,
and the tenant roots anchored on a live dev ledger by the root writer."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import delete, inspect, select

from connector.core.trees import Period, WindowLeaf, build_trees
from connector.keystore import Keystore
from connector.ledger.client import DriverClient
from connector.ledger.roots import ROOT_SCHEMA
from connector.periods import build_due_periods
from connector.store.models import LedgerOutbox, PendingWindow
from connector.store.tree_models import (
    PeriodMeter,
    PeriodRoot,
    PeriodSubtree,
    PortfolioRelay,
    RootOutbox,
    TenantAsset,
)
from connector.trees_store import load_leaves, period_of_row, stored_tree
from tests.api import history as h
from tests.api import portfolio as pf

TABLES = (PeriodRoot, PeriodSubtree, PeriodMeter, TenantAsset, RootOutbox, PortfolioRelay)


def test_migration_matches_models(store) -> None:
    """alembic upgrade head creates the tree tables with the models' columns, nullability and indexes."""
    inspector = inspect(store.write)
    for model in TABLES:
        table = model.__table__
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        assert {i.name for i in table.indexes} <= {i["name"] for i in inspector.get_indexes(table.name)}


def test_every_window_period_and_day_is_built_once_with_the_pure_cores_roots(store, api_settings) -> None:
    """8 windows across midnight: 8 window trees and 2 day trees, roots equal to connector.core.trees' own."""
    p = pf.add_portfolio(store, api_settings)
    built = pf.build(store, api_settings)
    assert sorted((b.period.kind, b.windows) for b in built) == [("day", 16)] * 2 + [("window", 4)] * 8
    assert pf.build(store, api_settings) == []  # idempotent
    with store.reading() as conn:
        rows = conn.execute(select(PeriodRoot)).all()
        leaves = [s.leaf for s in load_leaves(conn, p.tenant, Period("all", 0, 2 * 10**9))]
        outbox = conn.execute(select(RootOutbox.operation, RootOutbox.period_id)).all()
        subtrees = conn.execute(
            select(PeriodSubtree.prefix).where(PeriodSubtree.period_id == rows[0].id)
        ).all()
    expected = build_trees(leaves, api_settings.window.length)
    assert {(r.tenant, period_of_row(r)): r.root for r in rows} == {
        k: t.root.hex() for k, t in expected.items()
    }
    assert sorted(op for op, _ in outbox) == ["CREATE"] + ["TRANSFER"] * 10  # one CREATE per tenant
    assert {pid for _, pid in outbox if pid} == {r.id for r in rows}
    assert {s for (s,) in subtrees} == {"/", "/north", "/north/g1", "/south"}


def test_a_period_waits_for_the_closer_and_a_day_for_its_last_window(store, api_settings) -> None:
    """At 00:02:59 (grace 2 min, delay 1 min) 23:45 is not built, nor day 1; an open window at 00:15 holds
    back its period and the later ones until it is closed."""
    p = pf.add_portfolio(store, api_settings)
    early = build_due_periods(store, api_settings, pf.START + timedelta(hours=1, minutes=2, seconds=59))
    assert [(b.period.kind, b.period.start) for b in early] == [
        ("window", int(s.timestamp())) for s in p.starts[:3]
    ]
    with store.begin() as conn:
        pending = {"meter_id": p.meters["urn:m:hq"], "window_start": p.starts[5]}
        conn.execute(PendingWindow.__table__.insert().values(**pending))
    built = pf.build(store, api_settings)
    assert sorted((b.period.kind, b.period.start) for b in built) == [
        ("day", int(pf.START.timestamp()) - 23 * 3600)
    ] + [("window", int(s.timestamp())) for s in p.starts[3:5]]
    with store.begin() as conn:
        conn.execute(delete(PendingWindow))
    rest = pf.build(store, api_settings)
    assert sorted(b.period.kind for b in rest) == ["day", "window", "window", "window"]


def test_tenant_roots_are_anchored_once_beside_the_meters_transfers(
    store, api_settings, ledger, tmp_path
) -> None:
    """One CREATE per tenant, one TRANSFER-to-self per period root carrying it; meters' TRANSFERs remain."""
    keystore = Keystore(tmp_path / "keys")
    pf.add_portfolio(store, api_settings, n=4)
    h.anchor(store, api_settings, keystore, [ledger.url])
    pf.build(store, api_settings)
    pf.anchor_roots(store, api_settings, keystore, [ledger.url])
    client = DriverClient([ledger.url], api_settings.ledger)
    with store.reading() as conn:
        roots = conn.execute(select(PeriodRoot.id, PeriodRoot.root)).all()
        rows = {r.period_id: r.tx_id for r in conn.execute(select(RootOutbox)).all()}
        asset = conn.execute(select(TenantAsset)).one()
        meter_txs = conn.execute(select(LedgerOutbox.status)).scalars().all()
    assert set(meter_txs) == {"confirmed"} and len(meter_txs) == 4 * 5
    history = client.asset_history(asset.asset_id)
    assert [tx["operation"] for tx in history] == ["CREATE"] + ["TRANSFER"] * len(roots)
    for period_id, root in roots:
        tx = client.retrieve(rows[period_id])
        assert tx["metadata"]["schema"] == ROOT_SCHEMA and tx["metadata"]["root"] == root
        assert tx["outputs"][0]["public_keys"] == [asset.public_key]
    assert asset.head_tx == history[-1]["id"]
    assert "private" not in json.dumps(history)


def test_a_rebuilt_tree_gives_the_stored_root(store, api_settings) -> None:
    """stored_tree rebuilds each period from the store with the windows of its build: the same root."""
    pf.add_portfolio(store, api_settings)
    pf.build(store, api_settings)
    with store.reading() as conn:
        for row in conn.execute(select(PeriodRoot)).all():
            assert stored_tree(conn, row).root.hex() == row.root


@pytest.mark.parametrize("kind", ["window"])
def test_leaf_fields_are_those_of_the_stored_window(store, api_settings, kind) -> None:
    """A leaf is (meter key, window start, whole Wh, fingerprint, chain hash) of the stored window."""
    p = pf.add_portfolio(store, api_settings, n=1)
    pf.build(store, api_settings)
    with store.reading() as conn:
        row = conn.execute(select(PeriodRoot).where(PeriodRoot.kind == kind)).one()
        (leaf,) = [
            s.leaf for s in load_leaves(conn, p.tenant, period_of_row(row)) if s.leaf.entity_id == "urn:m:hq"
        ]
    assert isinstance(leaf, WindowLeaf) and leaf.window_start == int(pf.START.timestamp())
    assert leaf.meter_key.hex() and len(leaf.fingerprint) == 32


def test_a_crash_inside_a_build_leaves_neither_root_nor_ledger_work(store, api_settings) -> None:
    """Root, subtrees, meter rows and outbox rows commit together: a failure after build_period rolls
    all of it back, and the next run builds the period."""
    from connector.core.trees import Period
    from connector.periods import build_period

    p = pf.add_portfolio(store, api_settings, n=1)
    period = Period("window", int(p.starts[0].timestamp()), api_settings.window.length)
    with pytest.raises(RuntimeError), store.begin() as conn:
        assert build_period(conn, "t1", period, pf.LATER) is not None
        raise RuntimeError("crash before commit")
    with store.reading() as conn:
        for model in (PeriodRoot, PeriodSubtree, PeriodMeter, RootOutbox):
            assert conn.execute(select(model)).first() is None, model
    assert {b.period.kind for b in pf.build(store, api_settings)} == {"window", "day"}
    with store.reading() as conn:
        assert len(conn.execute(select(RootOutbox)).all()) == 3  # the tenant's CREATE and two roots


def test_roots_wait_while_the_ledger_is_away_and_go_once_it_is_back(
    store, api_settings, ledger, tmp_path
) -> None:
    """With no ledger listening the root rows are retried (open, with the reason), never dead; the same
    signed transactions are confirmed once a ledger answers."""
    import socket
    from datetime import UTC, datetime

    from connector.ledger.root_writer import RootWriter

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        away = f"http://127.0.0.1:{s.getsockname()[1]}"
    keystore = Keystore(tmp_path / "keys")
    pf.add_portfolio(store, api_settings, n=1)
    pf.build(store, api_settings)
    now = datetime.now(UTC)
    registry = CollectorRegistry()
    counts = RootWriter(api_settings, store, keystore, [away], lambda: now, registry=registry).dispatch_once()
    assert counts.get("retried") == 1 and "confirmed" not in counts
    assert registry.get_sample_value("connector_roots_total", {"outcome": "retried"}) == 1
    with store.reading() as conn:
        rows = conn.execute(select(RootOutbox).order_by(RootOutbox.seq)).all()
    assert [r.status for r in rows] == ["pending"] * 3 and rows[0].last_error and rows[0].tx_id
    later = now + timedelta(hours=1)
    back = CollectorRegistry()
    RootWriter(api_settings, store, keystore, [ledger.url], lambda: later, registry=back).dispatch_once()
    assert back.get_sample_value("connector_roots_total", {"outcome": "confirmed"}) == 3
    with store.reading() as conn:
        after = conn.execute(select(RootOutbox).order_by(RootOutbox.seq)).all()
    assert [r.status for r in after] == ["confirmed"] * 3 and after[0].tx_id == rows[0].tx_id
