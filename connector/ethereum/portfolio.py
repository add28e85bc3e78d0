"""Portfolio mode of settlement: the `PortfolioSettlement` contract as Python sees it, and its deployment.

One record per portfolio and interval (energy and the root of the interval's period tree, see
`connector.core.trees`); a meter's record is proven on chain with its audit path only when disputed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from connector.core.trees import Proof, keccak256
from connector.ethereum.deploy import deploy
from connector.settings import EthereumSettings

ARTIFACT = Path(__file__).resolve().parent.parent / "contracts" / "PortfolioSettlement.json"
SOURCE = Path(__file__).resolve().parents[2] / "contracts" / "PortfolioSettlement.sol"


@cache
def artifact() -> dict[str, Any]:
    """The committed compiler output of contracts/PortfolioSettlement.sol."""
    return json.loads(ARTIFACT.read_text())  # type: ignore[no-any-return]


def portfolio_key(tenant: str) -> bytes:
    """A tenant's portfolio id on chain: keccak256 of UTF-8 "portfolio|<tenant>"."""
    return keccak256(f"portfolio|{tenant}".encode())


def portfolio_contract(w3: Web3, address: str) -> Contract:
    """The portfolio settlement contract at `address`, with the committed ABI."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact()["abi"])


def prove_args(portfolio: bytes, proof: Proof) -> list[Any]:
    """The arguments of `proveMeter` for a proof against a tenant's window-period root."""
    siblings, left_bits = proof.onchain()
    leaf = proof.leaf
    return [
        portfolio,
        leaf.window_start,
        leaf.meter_key,
        leaf.energy_wh,
        leaf.fingerprint,
        leaf.chain_hash,
        siblings,
        left_bits,
    ]


def deploy_portfolio(
    w3: Web3,
    account: LocalAccount,
    eth: EthereumSettings,
    brp: str | None = None,
    timeout: float = 60.0,
    interval_length: int = 900,
) -> tuple[str, int]:
    """Deploy PortfolioSettlement with `account` as owner and first reporter (and BRP unless given).

    Same constructor as `Settlement` (reporter, brp, price, tolerance, interval length). Returns
    (address, gas used); on anvil an unfunded account is funded first.
    """
    return deploy(w3, account, eth, brp, timeout, interval_length, compiled=artifact())
