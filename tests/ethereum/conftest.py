"""Fixtures of the Ethereum tests: a real anvil on a free port, funded keys, a deployed contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from connector.ethereum.anvil import AnvilProcess
from connector.ethereum.client import connect, fund_on_dev_node, settlement_contract
from connector.ethereum.deploy import deploy
from connector.settings import EthereumSettings

# Price 0.2 EUR/kWh = 200,000 micro-EUR/kWh, as in seed 004.
ETH = EthereumSettings(enabled=True, price_eur_per_kwh="0.2", tolerance_wh=0, confirmations=2)


@pytest.fixture
def anvil() -> Iterator[AnvilProcess]:
    """An anvil dev node (prague) on a free loopback port, stopped after the test."""
    node = AnvilProcess().start()
    yield node
    node.stop()


@pytest.fixture
def w3(anvil: AnvilProcess) -> Web3:
    """A web3 client on the test's anvil."""
    return connect(anvil.url)


def funded(w3: Web3) -> LocalAccount:
    """A fresh key with ether on anvil."""
    account = Account.create()
    fund_on_dev_node(w3, account.address)
    return account


@pytest.fixture
def owner(w3: Web3) -> LocalAccount:
    """The deployer: owner, first reporter and BRP of the `settlement` contract."""
    return funded(w3)


@pytest.fixture
def settlement(w3: Web3, owner: LocalAccount) -> Any:
    """The settlement contract deployed on anvil by `owner` (price 0.2 EUR/kWh, tolerance 0)."""
    address, _gas = deploy(w3, owner, ETH)
    return settlement_contract(w3, address)


def transact(w3: Web3, account: LocalAccount, call: Any) -> Any:
    """Sign and send a contract call from `account`; return the receipt (raises on estimate revert)."""
    tx = call.build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)}
    )
    signed = account.sign_transaction(tx)
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
