"""Portfolio mode on a real anvil: one record per interval, plans and settlement per portfolio, and
disputes proven with the period tree's audit paths (proveMeter) that keep the meter's chain head."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from connector.core.trees import Period, PeriodTree, WindowLeaf
from connector.ethereum.contract import chain_head, charge_for, meter_key
from connector.ethereum.portfolio import deploy_portfolio, portfolio_contract, portfolio_key, prove_args
from tests.ethereum.conftest import ETH, funded, transact

T0 = 1_552_924_800  # 2019-03-18 16:00 UTC
LENGTH = 900
P1 = portfolio_key("t1")
LTX = b"\xaa" * 32
SERVICE_PATHS = ("/north/g1", "/north/g1", "/north/g2", "/south", "/", "/south/g3/u1", "/north/g2")


def leaf(i: int, t: int, energy: int) -> WindowLeaf:
    """Meter i's window at t (service paths spread over regions and groups)."""
    fp = hashlib.sha256(f"fp|{i}|{t}|{energy}".encode()).digest()
    chain = hashlib.sha256(f"chain|{i}|{t}".encode()).digest()
    return WindowLeaf("t1", SERVICE_PATHS[i % len(SERVICE_PATHS)], f"m{i}", t, energy, fp, chain)


def tree(t: int, energies: list[int]) -> PeriodTree:
    """Tenant t1's tree of the window period at t."""
    return PeriodTree("t1", Period("window", t, LENGTH), [leaf(i, t, e) for i, e in enumerate(energies)])


def selector(c: Any, name: str) -> str:
    abi = next(e for e in c.abi if e.get("type") == "error" and e["name"] == name)
    return "0x" + Web3.keccak(text=f"{name}({','.join(i['type'] for i in abi['inputs'])})")[:4].hex()


@pytest.fixture
def portfolio(w3: Web3, owner: LocalAccount) -> Any:
    """PortfolioSettlement deployed by `owner` (reporter and BRP; 0.2 EUR/kWh, tolerance 0, 900 s)."""
    return portfolio_contract(w3, deploy_portfolio(w3, owner, ETH, interval_length=LENGTH)[0])


def record(w3: Web3, account: LocalAccount, c: Any, t: int, energy: int, root: bytes) -> Any:
    return transact(w3, account, c.functions.recordPortfolio(P1, t, energy, root, 7, LTX))


def prove(w3: Web3, account: LocalAccount, c: Any, t: PeriodTree, i: int, start: int) -> Any:
    proof = t.proof(SERVICE_PATHS[i % len(SERVICE_PATHS)], f"m{i}", start)
    return transact(w3, account, c.functions.proveMeter(*prove_args(P1, proof)))


def test_record_plan_settle(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """One record per interval holds energy and root; the portfolio's imbalance is settled once."""
    energies = [100, -40, 250, 0, 75, 30, 12]
    t = tree(T0, energies)
    transact(w3, owner, portfolio.functions.submitPlans(P1, [T0], [400]))
    record(w3, owner, portfolio, T0, sum(energies), t.root)
    assert portfolio.functions.intervalOf(P1, T0).call() == [True, 427, t.root, True, 400, False]
    receipt = transact(w3, owner, portfolio.functions.settle(P1, [T0, T0 + LENGTH]))
    (event,) = portfolio.events.Settled().process_receipt(receipt, errors=DISCARD)
    assert (event.args.imbalanceWh, event.args.chargeMicroEur) == (27, charge_for(27, 200_000, 0))
    assert portfolio.functions.runningBalance(P1).call() == 5400
    transact(w3, owner, portfolio.functions.settle(P1, [T0]))
    assert portfolio.functions.runningBalance(P1).call() == 5400
    with pytest.raises(ContractCustomError) as err:
        transact(w3, owner, portfolio.functions.submitPlans(P1, [T0], [1]))
    assert str(err.value.data).startswith(selector(portfolio, "AlreadySettled"))


def test_resend_and_conflict(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """An identical resend is a no-op; a different root emits PortfolioConflict and keeps the first."""
    first, other = tree(T0, [1, 2, 3]), tree(T0, [1, 2, 4])
    record(w3, owner, portfolio, T0, 6, first.root)
    again = record(w3, owner, portfolio, T0, 6, first.root)
    assert not portfolio.events.PortfolioConflict().process_receipt(again, errors=DISCARD)
    conflict = record(w3, owner, portfolio, T0, 7, other.root)
    assert portfolio.events.PortfolioConflict().process_receipt(conflict, errors=DISCARD)
    assert portfolio.functions.intervalRoot(P1, T0).call() == first.root


def test_roles_and_alignment(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """Only reporters record, only the BRP plans, interval starts are multiples of the length."""
    stranger, root = funded(w3), tree(T0, [5]).root
    cases = [
        (stranger, portfolio.functions.recordPortfolio(P1, T0, 5, root, 1, LTX), "NotReporter"),
        (stranger, portfolio.functions.submitPlans(P1, [T0], [5]), "NotBrp"),
        (owner, portfolio.functions.recordPortfolio(P1, T0 + 1, 5, root, 1, LTX), "MisalignedInterval"),
        (owner, portfolio.functions.recordPortfolio(P1, T0, 5, b"\x00" * 32, 1, LTX), "ZeroRoot"),
        (owner, portfolio.functions.recordPortfolio(P1, T0, 2**63, root, 1, LTX), "EnergyOutOfRange"),
    ]
    for account, call, error in cases:
        with pytest.raises(ContractCustomError) as err:
            transact(w3, account, call)
        assert str(err.value.data).startswith(selector(portfolio, error)), error


def test_prove_meter_keeps_record_and_head(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """Anyone proves a meter's window against the root; the record and the chain head are then kept."""
    prover = funded(w3)
    trees = [tree(T0 + k * LENGTH, [100 + k, 200 + k, 300 + k, 5, 6, 7, 8]) for k in range(2)]
    for k, t in enumerate(trees):
        record(w3, owner, portfolio, T0 + k * LENGTH, 0, t.root)
    links = []
    for k, t in enumerate(trees):
        receipt = prove(w3, prover, portfolio, t, 2, T0 + k * LENGTH)
        assert portfolio.events.MeterProven().process_receipt(receipt, errors=DISCARD)
        proven = leaf(2, T0 + k * LENGTH, 300 + k)
        links.append((proven.window_start, proven.energy_wh, proven.fingerprint))
    m2 = meter_key("t1", "/north/g2", "m2")
    assert portfolio.functions.chainHead(m2).call() == chain_head(links)
    assert portfolio.functions.recordOf(m2, T0).call() == [True, 300, links[0][2][:8]]
    again = prove(w3, prover, portfolio, trees[0], 2, T0)
    assert not portfolio.events.MeterProven().process_receipt(again, errors=DISCARD)
    assert portfolio.functions.chainHead(m2).call() == chain_head(links)


def test_every_meter_of_a_tree_proves(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """Each meter of a 7-meter tree (depths 0 to 3 of service path) proves against the root."""
    t = tree(T0, [10, 20, 30, 40, 50, 60, 70])
    record(w3, owner, portfolio, T0, 280, t.root)
    for i in range(7):
        prove(w3, owner, portfolio, t, i, T0)
        key = meter_key("t1", SERVICE_PATHS[i], f"m{i}")
        assert portfolio.functions.recordOf(key, T0).call()[:2] == [True, 10 * (i + 1)]


def test_altered_or_misplaced_proof_reverts(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """A changed energy, a flipped side, another interval or an unrecorded one revert; nothing is kept."""
    t = tree(T0, [10, 20, 30, 40])
    record(w3, owner, portfolio, T0, 100, t.root)
    args = prove_args(P1, t.proof("/north/g1", "m1", T0))
    altered = [args[:3] + [21] + args[4:], args[:7] + [args[7] ^ 1], [P1, T0 + LENGTH, *args[2:]]]
    errors = ["InvalidProof", "InvalidProof", "NotRecorded"]
    for bad, error in zip(altered, errors, strict=True):
        with pytest.raises(ContractCustomError) as err:
            transact(w3, owner, portfolio.functions.proveMeter(*bad))
        assert str(err.value.data).startswith(selector(portfolio, error)), error
    assert portfolio.functions.recordOf(args[2], T0).call()[0] is False


def test_node_cannot_pass_as_leaf(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """An internal node's children, offered as a leaf's fields with the rest of the path, revert."""
    t = tree(T0, [10, 20])  # /north/g1: m0, m1; their meter node is node(leaf0, leaf1)
    record(w3, owner, portfolio, T0, 30, t.root)
    proof = t.proof("/north/g1", "m0", T0)
    siblings, bits = proof.onchain()
    node_children = [proof.leaf.hash, siblings[0]]
    # The 0x01 node preimage is 65 bytes, a leaf's 161: no field split can match, whatever is chosen.
    call = portfolio.functions.proveMeter(
        P1, T0, node_children[0], 0, node_children[1], b"\x00" * 32, siblings[1:], bits >> 1
    )
    with pytest.raises(ContractCustomError) as err:
        transact(w3, owner, call)
    assert str(err.value.data).startswith(selector(portfolio, "InvalidProof"))


def test_proofs_in_a_2000_meter_tree(w3: Web3, portfolio: Any, owner: LocalAccount) -> None:
    """In seed 004's 2,000 meters (4 regions x 5 groups), first, last (promoted odd nodes: a shorter path)
    and middle meters prove on chain."""
    leaves = [
        WindowLeaf("t1", f"/r{m % 4}/g{m // 4 % 5}", f"m{m:04d}", T0, m, b"\x01" * 32, b"\x02" * 32)
        for m in range(2000)
    ]
    t = PeriodTree("t1", Period("window", T0, LENGTH), leaves)
    record(w3, owner, portfolio, T0, sum(range(2000)), t.root)
    ordered, depths = t.leaves(), set()
    for chosen in (ordered[0], ordered[-1], ordered[999], ordered[1500]):
        proof = t.proof(chosen.service_path, chosen.entity_id, T0)
        depths.add(len(proof.steps))
        receipt = transact(w3, owner, portfolio.functions.proveMeter(*prove_args(P1, proof)))
        assert receipt["status"] == 1
        assert portfolio.functions.recordOf(chosen.meter_key, T0).call()[:2] == [True, chosen.energy_wh]
    assert min(depths) < max(depths) == 12
