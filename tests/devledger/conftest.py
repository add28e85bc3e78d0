"""Fixtures for the dev ledger tests: a live in-memory ledger, a bigchaindb-driver client, keys, builders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from bigchaindb_driver import BigchainDB
from bigchaindb_driver.common.utils import serialize
from bigchaindb_driver.crypto import CryptoKeypair, generate_keypair
from bigchaindb_driver.offchain import fulfill_transaction, prepare_transaction
from sha3 import sha3_256

from devledger.server import LedgerHandle
from devledger.testing import running_ledger


@pytest.fixture
def ledger() -> Iterator[LedgerHandle]:
    """A dev ledger in memory on free loopback ports."""
    with running_ledger() as handle:
        yield handle


@pytest.fixture
def bdb(ledger: LedgerHandle) -> BigchainDB:
    """A bigchaindb-driver 0.6.2 client of the ledger."""
    return BigchainDB(ledger.url, timeout=10)


@pytest.fixture
def alice() -> CryptoKeypair:
    """A fresh key pair."""
    return generate_keypair()


@pytest.fixture
def bob() -> CryptoKeypair:
    """Another fresh key pair."""
    return generate_keypair()


def create(
    owner: CryptoKeypair,
    data: Any = None,
    metadata: Any = None,
    recipients: Any = None,
) -> dict[str, Any]:
    """A signed CREATE of an asset with `data` (a unique one when None)."""
    asset = {"data": data if data is not None else {"nonce": generate_keypair().public_key}}
    prepared = prepare_transaction(
        operation="CREATE", signers=owner.public_key, recipients=recipients, asset=asset, metadata=metadata
    )
    return fulfill_transaction(prepared, private_keys=owner.private_key)


def spend_input(tx: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The driver's input dict spending output `index` of `tx`."""
    output = tx["outputs"][index]
    return {
        "fulfillment": output["condition"]["details"],
        "fulfills": {"output_index": index, "transaction_id": tx["id"]},
        "owners_before": output["public_keys"],
    }


def transfer(
    inputs: list[dict[str, Any]], asset_id: str, recipients: Any, keys: Any, metadata: Any = None
) -> dict[str, Any]:
    """A signed TRANSFER."""
    prepared = prepare_transaction(
        operation="TRANSFER", inputs=inputs, asset={"id": asset_id}, recipients=recipients, metadata=metadata
    )
    return fulfill_transaction(prepared, private_keys=keys)


def rehash(tx: dict[str, Any]) -> dict[str, Any]:
    """`tx` with its id recomputed after an edit (signatures are left as they are)."""
    tx["id"] = None
    tx["id"] = sha3_256(serialize(tx).encode()).hexdigest()
    return tx


def post(ledger: LedgerHandle, tx: Any, mode: str = "commit") -> requests.Response:
    """POST a transaction (any JSON) and return the raw response."""
    return requests.post(f"{ledger.url}/api/v1/transactions/?mode={mode}", json=tx, timeout=10)


def error_text(message: str, status: int = 400) -> str:
    """The raw body BigchainDB answers an error with: "message" before "status"."""
    import json

    return json.dumps({"message": message, "status": status}, separators=(",", ":")) + "\n"
