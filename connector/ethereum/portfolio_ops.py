"""Portfolio mode's one-off operations: the BRP's plans per portfolio (`plan upload` in portfolio mode) and
a disputed meter's record proven on chain (`settlement prove`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from connector.core.trees import Proof
from connector.ethereum.errors import EthereumError
from connector.ethereum.gateway import Web3Gateway
from connector.ethereum.plans import plan_lines, planned_interval
from connector.ethereum.portfolio import portfolio_contract, portfolio_key, prove_args
from connector.ethereum.sender import Sender
from connector.settings import EthereumSettings

COLUMNS = ("tenant", "interval_start", "planned_wh")
BATCH = 200


@dataclass(frozen=True)
class PortfolioPlan:
    """The planned Wh of a tenant's portfolio in one interval."""

    tenant: str
    interval_start: datetime
    planned_wh: int


def parse_portfolio_csv(text: str) -> list[PortfolioPlan]:
    """Rows of a portfolio plan CSV with header tenant,interval_start,planned_wh (ISO 8601 with offset,
    whole Wh, negative for generation); PlanFileError naming the first bad line."""
    rows = []
    for line, raw in plan_lines(text, COLUMNS, "portfolio plan CSV"):
        start, planned = planned_interval(line, raw)
        rows.append(PortfolioPlan((raw["tenant"] or "").strip(), start, planned))
    return rows


def estimate(w3: Web3, tx: dict[str, Any], sender: str) -> int:
    """The node's gas estimate of `tx` sent by `sender` (a revert raises ContractLogicError)."""
    call: Any = {**tx, "from": sender}
    return int(w3.eth.estimate_gas(call))


def _send(w3: Web3, account: LocalAccount, eth: EthereumSettings, address: str, call: Any) -> Any:
    """Send a contract call from `account` and wait for its receipt; EthereumError when it reverts."""
    tx: dict[str, Any] = {"to": address, "data": call._encode_transaction_data()}
    gas = estimate(w3, tx, account.address) * 6 // 5
    sender = Sender(Web3Gateway(w3, address), account, eth.max_fee_gwei, eth.priority_fee_gwei)
    sent = sender.send(tx, gas)
    receipt = w3.eth.wait_for_transaction_receipt(sent.tx_hash, timeout=60)  # type: ignore[arg-type]
    if receipt["status"] != 1:
        raise EthereumError(f"transaction {sent.tx_hash} reverted")
    return receipt


def upload_portfolio_plans(
    w3: Web3, account: LocalAccount, address: str, eth: EthereumSettings, rows: list[PortfolioPlan]
) -> list[Any]:
    """`submitPlans(portfolioId, starts[], plannedWh[])` per tenant, in batches; the receipts."""
    contract = portfolio_contract(w3, address)
    by_tenant: dict[str, list[PortfolioPlan]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant].append(row)
    receipts = []
    for tenant, plans in by_tenant.items():
        for i in range(0, len(plans), BATCH):
            batch = plans[i : i + BATCH]
            starts = [int(p.interval_start.timestamp()) for p in batch]
            call = contract.functions.submitPlans(
                portfolio_key(tenant), starts, [p.planned_wh for p in batch]
            )
            receipts.append(_send(w3, account, eth, contract.address, call))
    return receipts


def prove_on_chain(w3: Web3, account: LocalAccount, address: str, eth: EthereumSettings, proof: Proof) -> Any:
    """`proveMeter` with a window-period proof; the receipt (EthereumError or a web3 error if refused)."""
    if proof.period.kind != "window":
        raise ValueError("the contract holds window-period roots: prove against the window's tree")
    contract = portfolio_contract(w3, address)
    call = contract.functions.proveMeter(*prove_args(portfolio_key(proof.tenant), proof))
    return _send(w3, account, eth, contract.address, call)
