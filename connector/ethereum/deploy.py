"""Deploy the settlement contract and remember where it is."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import delete, insert
from web3 import Web3

from connector.ethereum.client import STATE_KEY, fund_on_dev_node
from connector.ethereum.contract import artifact, price_micro_eur
from connector.ethereum.errors import EthereumError
from connector.ethereum.gateway import Web3Gateway
from connector.ethereum.sender import Sender
from connector.settings import EthereumSettings
from connector.store.db import Store
from connector.store.models import State

PARAMS_KEY = "ethereum.params"


def deploy(
    w3: Web3,
    account: LocalAccount,
    eth: EthereumSettings,
    brp: str | None = None,
    timeout: float = 60.0,
    interval_length: int = 900,
    compiled: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """Deploy with `account` as owner and first reporter (and BRP unless `brp` is given).

    Price and tolerance come from the settings; `interval_length` is the connector's window length in
    seconds (settings.window.length): interval starts must be multiples of it, and records of two
    consecutive intervals share a storage word. Returns (address, gas used). On anvil an unfunded
    account is funded first. `compiled` is the artifact to deploy (default `Settlement`; both settlement
    contracts take the same constructor arguments).
    """
    fund_on_dev_node(w3, account.address)
    compiled = compiled or artifact()
    factory = w3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    price = price_micro_eur(eth.price_eur_per_kwh)
    constructor = factory.constructor(
        account.address, brp or account.address, price, eth.tolerance_wh, interval_length
    )
    data = constructor.data_in_transaction
    gas = int(w3.eth.estimate_gas({"from": account.address, "data": data})) * 6 // 5
    sender = Sender(Web3Gateway(w3), account, eth.max_fee_gwei, eth.priority_fee_gwei)
    sent = sender.send({"data": data}, gas)
    receipt = w3.eth.wait_for_transaction_receipt(sent.tx_hash, timeout=timeout)  # type: ignore[arg-type]
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise EthereumError(f"deployment {sent.tx_hash} failed")
    return str(receipt["contractAddress"]), int(receipt["gasUsed"])


def remember(store: Store, address: str, eth: EthereumSettings, now: datetime) -> None:
    """Store the address (connector state "ethereum.contract_address") and the settlement parameters."""
    params = {
        "price_micro_eur_per_kwh": price_micro_eur(eth.price_eur_per_kwh),
        "tolerance_wh": eth.tolerance_wh,
    }
    with store.begin() as conn:
        conn.execute(delete(State).where(State.key.in_((STATE_KEY, PARAMS_KEY))))
        conn.execute(
            insert(State),
            [
                {"key": STATE_KEY, "value": Web3.to_checksum_address(address), "updated_at": now},
                {"key": PARAMS_KEY, "value": json.dumps(params), "updated_at": now},
            ],
        )
