"""web3 side of the bridge: the connection, the reporter account, the contract address and object."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from web3 import Web3
from web3.contract import Contract

from connector.ethereum.contract import artifact
from connector.ethereum.errors import EthereumError
from connector.keystore import Keystore
from connector.settings import EthereumSettings, Settings
from connector.store.db import Store
from connector.store.models import State

STATE_KEY = "ethereum.contract_address"
KEYSTORE_NAME = "ethereum.reporter"


class NotDeployed(EthereumError):
    """No contract address: neither ethereum.contract_address nor a `contract deploy` before."""


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A web3 client on `rpc_url` (HTTP)."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def reporter_account(settings: Settings, keystore_factory: Callable[..., Any] | None = None) -> LocalAccount:
    """The oracle key: ethereum.reporter_key when set, else the keystore's secret "ethereum.reporter".

    The keystore creates the 32-byte secret on first use and encrypts it when a passphrase is set.
    """
    if settings.ethereum.reporter_key:
        return Account.from_key(settings.ethereum.reporter_key)
    if keystore_factory is None:
        keystore_factory = Keystore
    keystore = keystore_factory(settings.keystore.path, settings.keystore.passphrase)
    secret = keystore.secret(KEYSTORE_NAME, create=lambda: os.urandom(32))
    return Account.from_key(secret)


def contract_address(eth: EthereumSettings, store: Store) -> str:
    """The contract to talk to: ethereum.contract_address when set, else the address `contract deploy`
    stored."""
    if eth.contract_address:
        return Web3.to_checksum_address(eth.contract_address)
    with store.reading() as conn:
        value = conn.execute(select(State.value).where(State.key == STATE_KEY)).scalar()
    if not value:
        raise NotDeployed(
            "no contract address: run `smartmeter-connector contract deploy` or set ethereum.contract_address"
        )
    return Web3.to_checksum_address(value)


def settlement_contract(w3: Web3, address: str) -> Contract:
    """The settlement contract at `address`, with the committed ABI."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact()["abi"])


def is_dev_node(w3: Web3) -> bool:
    """True on anvil (its dev RPC methods exist), where the bridge may fund its own accounts."""
    return str(w3.client_version).lower().startswith("anvil")


def fund_on_dev_node(w3: Web3, address: str, wei: int = 10**21) -> None:
    """Give `address` ether on anvil if it has none (the demo and tests); no-op on other nodes."""
    if is_dev_node(w3) and w3.eth.get_balance(Web3.to_checksum_address(address)) == 0:
        w3.provider.make_request("anvil_setBalance", [address, hex(wei)])  # type: ignore[arg-type]
