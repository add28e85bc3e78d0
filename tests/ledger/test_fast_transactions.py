"""The fast builder gives bigchaindb-driver 0.6.2's transactions byte for byte; a ledger takes them."""

from __future__ import annotations

import json
from typing import Any

import base58
import pytest
from bigchaindb_driver import BigchainDB
from bigchaindb_driver.common.utils import serialize as driver_serialize
from bigchaindb_driver.offchain import (
    fulfill_transaction,
    prepare_create_transaction,
    prepare_transfer_transaction,
)
from cryptoconditions.types.ed25519 import Ed25519Sha256
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_sign_seed_keypair

from connector.keystore import KeyPair
from connector.ledger import fast_tx
from connector.ledger.transactions import serialize, sign_create, sign_transfer, signatures_valid
from devledger.testing import running_ledger

KEYS = st.binary(min_size=32, max_size=32).map(
    lambda seed: KeyPair(
        base58.b58encode(crypto_sign_seed_keypair(seed)[0]).decode(), base58.b58encode(seed).decode()
    )
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
OBJECTS = st.dictionaries(st.text(max_size=12), JSON, max_size=6)
TX_IDS = st.binary(min_size=32, max_size=32).map(bytes.hex)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def driver_create(keys: KeyPair, asset: Any, metadata: Any) -> dict[str, Any]:
    prepared = prepare_create_transaction(signers=keys.public_key, asset=asset, metadata=metadata)
    return fulfill_transaction(prepared, private_keys=keys.private_key)  # type: ignore[no-any-return]


def driver_transfer(keys: KeyPair, asset_id: str, spent: str, index: int, metadata: Any) -> dict[str, Any]:
    inputs = {
        "fulfillment": {"type": "ed25519-sha-256", "public_key": keys.public_key},
        "fulfills": {"transaction_id": spent, "output_index": index},
        "owners_before": [keys.public_key],
    }
    prepared = prepare_transfer_transaction(
        inputs=inputs, recipients=keys.public_key, asset={"id": asset_id}, metadata=metadata
    )
    return fulfill_transaction(prepared, private_keys=keys.private_key)  # type: ignore[no-any-return]


def assert_identical(fast: dict[str, Any], driver: dict[str, Any]) -> None:
    assert driver_serialize(fast) == driver_serialize(driver)
    assert json.dumps(fast) == json.dumps(driver)  # same key order as well, not only the same content
    assert serialize(fast) == serialize(driver)


@FAST
@given(keys=KEYS, data=st.none() | OBJECTS, metadata=st.none() | OBJECTS)
def test_create_is_byte_identical_to_the_driver(keys: KeyPair, data: Any, metadata: Any) -> None:
    """A CREATE of any asset data and metadata (unicode, nested, numbers, empty, null) is the driver's."""
    driver = driver_create(keys, {"data": data}, metadata)
    assert_identical(sign_create(keys, {"data": data}, metadata), driver)
    checked = keys.with_secret()  # as the keystore hands it: nothing decoded or derived when signing
    assert len(checked.secret) == 64
    assert_identical(sign_create(checked, {"data": data}, metadata), driver)


@FAST
@given(keys=KEYS, asset_id=TX_IDS, spent=TX_IDS, index=st.integers(0, 5), metadata=st.none() | OBJECTS)
def test_transfer_is_byte_identical_to_the_driver(
    keys: KeyPair, asset_id: str, spent: str, index: int, metadata: Any
) -> None:
    """A TRANSFER spending any output with any metadata is the driver's, id and fulfillment included."""
    fast = fast_tx.transfer_transaction(keys.public_key, keys.private_key, asset_id, spent, metadata, index)
    assert_identical(fast, driver_transfer(keys, asset_id, spent, index, metadata))
    if index == 0:
        assert_identical(sign_transfer(keys, asset_id, spent, metadata), fast)
        assert_identical(sign_transfer(keys.with_secret(), asset_id, spent, metadata), fast)


@given(keys=KEYS)
@settings(max_examples=50, deadline=None)
def test_condition_uri_is_cryptoconditions(keys: KeyPair) -> None:
    """The cached condition URI of a key is the one cryptoconditions computes."""
    raw = base58.b58decode(keys.public_key)
    assert fast_tx.condition_uri(keys.public_key) == Ed25519Sha256(public_key=raw).condition_uri


def test_empty_or_missing_asset_is_the_drivers() -> None:
    """An empty asset dict and None become {"data": null}, as in the driver."""
    keys = KeyPair(*_pair(b"\x01" * 32))
    for asset in (None, {}, {"data": None}, {"data": {}}):
        assert_identical(sign_create(keys, asset, {"k": 1}), driver_create(keys, asset, {"k": 1}))  # type: ignore[arg-type]


def test_wrong_inputs_fail_like_the_driver() -> None:
    """Metadata that is not an object is a TypeError; a private key of another public key is refused."""
    keys, other = KeyPair(*_pair(b"\x02" * 32)), KeyPair(*_pair(b"\x03" * 32))
    with pytest.raises(TypeError):
        driver_create(keys, {"data": {}}, ["not", "a", "dict"])
    with pytest.raises(TypeError):
        sign_create(keys, {"data": {}}, ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(fast_tx.KeyMismatch):
        sign_create(KeyPair(keys.public_key, other.private_key), {"data": {}}, None)  # type: ignore[arg-type]
    mismatched = KeyPair(keys.public_key, other.private_key).with_secret()
    assert mismatched.secret == b""  # never a signing key for another public key
    with pytest.raises(fast_tx.KeyMismatch):
        sign_transfer(mismatched, "a" * 64, "b" * 64, {"k": 1})


def test_dev_ledger_commits_a_chain_built_fast() -> None:
    """The dev ledger commits a fast CREATE and two chained TRANSFERs; the driver's model finds them valid."""
    keys = KeyPair(*_pair(b"\x04" * 32))
    create = sign_create(keys, {"data": {"meter": "urn:ngsi-ld:SMX:ü"}}, {"note": "é"})
    first = sign_transfer(keys, create["id"], create["id"], {"window": 1, "e": 1.5})
    second = sign_transfer(keys, create["id"], first["id"], {"window": 2, "list": [None, True]})
    assert signatures_valid(create) and signatures_valid(first, create) and signatures_valid(second, first)
    with running_ledger() as ledger:
        client = BigchainDB(ledger.url)
        for tx in (create, first, second):
            assert client.transactions.send_commit(tx) == tx
        assert client.transactions.retrieve(second["id"]) == second
        assert client.outputs.get(keys.public_key, spent=False) == [
            {"transaction_id": second["id"], "output_index": 0}
        ]


def _pair(seed: bytes) -> tuple[str, str]:
    return base58.b58encode(crypto_sign_seed_keypair(seed)[0]).decode(), base58.b58encode(seed).decode()
