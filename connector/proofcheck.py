"""Checking an inclusion proof with no store (`smartmeter-connector verify --proof FILE`).

The proof file is the JSON of GET /v1/meters/{id}/proof (docs/trees.md section 6). Checks, each reported:
- the proof itself: the leaf's meter key is its identity's, it lies in the proof's tenant and period, and
  its audit path leads to the root;
- the ledger (when BigchainDB URLs are given): the root's transaction, fetched by its id, is a TRANSFER of
  the tenant's asset (whose CREATE names the tenant) with valid signatures, and its metadata carries this
  very root for this tenant and period;
- Ethereum (when an RPC URL and a PortfolioSettlement address are given): the contract's interval root
  of the tenant's portfolio for the proof's window period is this root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.core.trees import Proof
from connector.ledger.client import LedgerClient
from connector.ledger.roots import ROOT_SCHEMA, TENANT_SCHEMA
from connector.ledger.transactions import signatures_valid, spent_tx_id


@dataclass(frozen=True)
class Check:
    """One check's name, outcome and what it found."""

    name: str
    ok: bool
    detail: str


def check_path(data: dict[str, Any]) -> tuple[Proof | None, Check]:
    """Parse the proof and check its leaf and audit path against its root."""
    try:
        proof = Proof.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        return None, Check("proof", False, f"not a proof: {exc}")
    ok = proof.verify()
    detail = "the leaf's audit path leads to the root" if ok else "the audit path does not lead to the root"
    return proof, Check("proof", ok, detail)


def check_ledger(proof: Proof, tx_id: str | None, client: LedgerClient) -> Check:
    """The root's TRANSFER on BigchainDB carries this root for this tenant and period."""
    if not tx_id:
        return Check("ledger", False, "the proof names no ledger transaction (root not anchored yet)")
    tx = client.retrieve(tx_id)
    if tx is None:
        return Check("ledger", False, f"transaction {tx_id} is not on the ledger")
    meta = tx.get("metadata") or {}
    period = meta.get("period") or {}
    wanted = {
        "schema": (meta.get("schema"), ROOT_SCHEMA),
        "root": (meta.get("root"), proof.root.hex()),
        "tenant": (meta.get("fiware_service"), proof.tenant),
        "period kind": (period.get("kind"), proof.period.kind),
        "period start": (period.get("start_s"), proof.period.start),
        "period length": (period.get("length"), proof.period.length),
    }
    wrong = [f"{name}: ledger {got!r}, proof {want!r}" for name, (got, want) in wanted.items() if got != want]
    if wrong:
        return Check("ledger", False, f"transaction {tx_id}: " + "; ".join(wrong))
    return _check_asset(proof, tx, client)


def _check_asset(proof: Proof, tx: dict[str, Any], client: LedgerClient) -> Check:
    asset_id = (tx.get("asset") or {}).get("id")
    create = client.retrieve(asset_id) if tx.get("operation") == "TRANSFER" and asset_id else None
    data = ((create or {}).get("asset") or {}).get("data") or {}
    owner = data.get("tenant_roots") or {}
    if owner.get("schema") != TENANT_SCHEMA or owner.get("fiware_service") != proof.tenant:
        return Check("ledger", False, f"transaction {tx['id']} is not a TRANSFER of the tenant's root asset")
    spent_id = spent_tx_id(tx)
    spent = client.retrieve(spent_id) if spent_id else None
    if spent is None or not signatures_valid(tx, spent):
        return Check("ledger", False, f"transaction {tx['id']}: its signature does not verify")
    return Check("ledger", True, f"transaction {tx['id']} of asset {asset_id} anchors this root")


def check_ethereum(proof: Proof, contract: Any) -> Check:
    """The portfolio contract's interval root for the proof's tenant and window period is this root."""
    from connector.ethereum.portfolio import portfolio_key

    if proof.period.kind != "window":
        return Check("ethereum", False, "the contract records window-period roots; this proof is of a day")
    onchain = bytes(contract.functions.intervalRoot(portfolio_key(proof.tenant), proof.period.start).call())
    if onchain == bytes(32):
        return Check("ethereum", False, "the contract has no root for this portfolio and interval")
    if onchain != proof.root:
        return Check("ethereum", False, f"the contract's root is {onchain.hex()}, not the proof's")
    return Check("ethereum", True, f"the contract records this root for interval {proof.period.start}")
