"""Portfolio mode end to end on a real anvil and a live dev ledger: `contract deploy` with ethereum.mode
portfolio, the relay recording each interval's portfolio energy and root once its root is anchored,
`plan upload` per portfolio, settlement per portfolio, `settlement prove`, and `verify --proof` against
the contract."""

from __future__ import annotations

import dataclasses
import io
import json
from argparse import Namespace
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from connector.commands.verify import handler as verify_handler
from connector.ethereum.client import reporter_account
from connector.ethereum.contract import meter_key
from connector.ethereum.portfolio import portfolio_contract, portfolio_key
from connector.ethereum.portfolio_relay import PortfolioRelayService
from connector.keystore import Keystore
from connector.proofs import window_proof
from connector.settings import Settings
from connector.store.models import Meter
from connector.store.tree_models import PeriodRoot, PortfolioRelay
from devledger.server import LedgerHandle, start_ledger
from tests.api import history as h
from tests.api import portfolio as pf
from tests.ethereum.test_commands import KEY, main_with
from tests.ethereum.test_relay import mine

P1 = portfolio_key("t1")


@pytest.fixture
def dev_ledger() -> Iterator[LedgerHandle]:
    """A dev ledger in memory on a free loopback port."""
    handle = start_ledger(port=0, ws_port=0, data_dir=None)
    yield handle
    handle.stop()


@pytest.fixture
def portfolio_settings(settings: Settings, anvil, dev_ledger) -> Settings:
    """Portfolio mode on the test's anvil; the dev ledger as the connector's ledger."""
    eth = dataclasses.replace(
        settings.ethereum,
        enabled=True,
        rpc_url=anvil.url,
        reporter_key=KEY,
        mode="portfolio",
        confirmations=2,
    )
    ledger = dataclasses.replace(settings.ledger, urls=[dev_ledger.url], timeout=5.0, concurrency=1)
    return settings.replace(ethereum=eth, ledger=ledger)


def _relay_until_final(relay: PortfolioRelayService, w3, store) -> None:  # type: ignore[no-untyped-def]
    for _ in range(20):
        relay.enqueue()
        relay.dispatch_once()
        mine(w3, 2)
        relay.confirm_once()
        with store.reading() as conn:
            statuses = conn.execute(select(PortfolioRelay.status, PortfolioRelay.last_error)).all()
        if statuses and all(s == "final" for s, _ in statuses):
            return
    raise AssertionError(f"not final: {statuses}")


def test_portfolio_mode_records_plans_settles_and_proves(
    store, portfolio_settings, w3, dev_ledger, tmp_path, capsys
) -> None:
    """One record per interval with the anchored root and energy; the portfolio's plan settles its
    imbalance; `settlement prove` keeps a meter's record; `verify --proof` checks the root on chain."""
    settings = portfolio_settings
    assert main_with(settings, ["contract", "deploy"]) == 0
    address = capsys.readouterr().out.strip()
    contract = portfolio_contract(w3, address)
    assert contract.functions.intervalRoot(P1, 0).call() == bytes(32)  # it is a PortfolioSettlement

    keystore = Keystore(tmp_path / "keys")
    p = pf.add_portfolio(store, settings, n=4)
    h.anchor(store, settings, keystore, [dev_ledger.url])
    pf.build(store, settings)
    pf.anchor_roots(store, settings, keystore, [dev_ledger.url])
    now = datetime.now(UTC)
    relay = PortfolioRelayService(settings, store, lambda: now, w3, address, reporter_account(settings))
    _relay_until_final(relay, w3, store)
    with store.reading() as conn:
        roots = conn.execute(select(PeriodRoot).where(PeriodRoot.kind == "window")).all()
        gas = conn.execute(select(PortfolioRelay.gas_used)).scalars().all()
    assert len(roots) == 4 and all(g and g < 100_000 for g in gas)
    for r in roots:
        recorded, energy, root = contract.functions.intervalOf(P1, int(r.start.timestamp())).call()[:3]
        assert (recorded, energy, root.hex()) == (True, r.energy_wh, r.root)

    plan = tmp_path / "plan.csv"
    first = roots[0]
    plan.write_text(
        f"tenant,interval_start,planned_wh\nt1,{first.start.isoformat()},{first.energy_wh - 10}\n"
    )
    assert main_with(settings, ["plan", "upload", str(plan)]) == 0
    relay.settle_once()
    mine(w3, 2)
    assert relay.settle_once() == 1
    assert contract.functions.imbalanceOf(P1, int(first.start.timestamp())).call()[:2] == [True, 10]
    assert contract.functions.runningBalance(P1).call() == 2000  # 10 Wh at 0.2 EUR/kWh in micro-EUR

    start = p.starts[1]
    argv = ["settlement", "prove", "--meter", "urn:m:001", "--window", start.isoformat(), "--tenant", "t1"]
    assert main_with(settings, argv) == 0
    assert "proven: urn:m:001" in capsys.readouterr().out
    key = meter_key("t1", "/north/g1", "urn:m:001")
    assert contract.functions.chainHead(key).call() != bytes(32)
    with store.reading() as conn:
        meter = conn.execute(select(Meter).where(Meter.entity_id == "urn:m:001")).one()
        found = window_proof(conn, meter, start, "window", settings.window.length)
    assert contract.functions.recordOf(key, int(start.timestamp())).call()[1] == found.proof.leaf.energy_wh

    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(found.to_dict()))
    out = io.StringIO()
    args = Namespace(
        proof=str(proof_file), ledger_url=None, rpc_url=w3.provider.endpoint_uri, contract=address
    )
    assert verify_handler(args, settings, out) == 0, out.getvalue()
    assert "ethereum  ok" in out.getvalue()
    with store.reading() as conn:
        day = window_proof(conn, meter, start, "day", settings.window.length)
    proof_file.write_text(json.dumps(day.to_dict()))  # valid path, but the contract holds interval roots
    bad = io.StringIO()
    assert verify_handler(args, settings, bad) == 1 and "ethereum  FAILED" in bad.getvalue()
