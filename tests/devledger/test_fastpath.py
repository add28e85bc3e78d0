"""The signature fast path gives the driver model's result, for its own shape and for the shapes it leaves."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import base58
import pytest
from bigchaindb_driver.crypto import generate_keypair
from cryptoconditions.types.ed25519 import Ed25519Sha256
from hypothesis import example, given
from hypothesis import strategies as st

from devledger.errors import InvalidTransaction
from devledger.fastpath import condition_uri_of_key, fast_result
from devledger.validation import Checked, check_stateless

from .conftest import create, post, rehash, spend_input, transfer

CAROL = generate_keypair()


def _outcome(tx: dict[str, Any], fast: bool) -> Checked | str:
    try:
        return check_stateless(copy.deepcopy(tx), fast=fast)
    except InvalidTransaction as exc:
        return exc.message


def _fulfillment_bytes(tx: dict[str, Any]) -> bytes:
    uri = tx["inputs"][0]["fulfillment"]
    return base64.urlsafe_b64decode(uri + "=" * (-len(uri) % 4))


def _set_fulfillment(tx: dict[str, Any], der: bytes) -> None:
    tx["inputs"][0]["fulfillment"] = base64.urlsafe_b64encode(der).decode().rstrip("=")


def _flip_signature_bit(tx: dict[str, Any]) -> None:
    der = bytearray(_fulfillment_bytes(tx))
    der[-1] ^= 1
    _set_fulfillment(tx, bytes(der))


def _other_uri(tx: dict[str, Any]) -> None:
    tx["outputs"][0]["condition"]["uri"] = create(CAROL)["outputs"][0]["condition"]["uri"]


EDITS: dict[str, Callable[[dict[str, Any]], object]] = {
    "as signed": lambda tx: None,
    "metadata changed after signing": lambda tx: tx.update(metadata={"changed": True}),
    "signature bit flipped": _flip_signature_bit,
    "trailing bytes after the fulfillment": lambda tx: _set_fulfillment(tx, _fulfillment_bytes(tx) + b"\0"),
    "truncated fulfillment": lambda tx: _set_fulfillment(tx, _fulfillment_bytes(tx)[:-3]),
    "output URI of another key": _other_uri,
    "amount with a leading zero": lambda tx: tx["outputs"][0].update(amount="01"),
    "amount zero": lambda tx: tx["outputs"][0].update(amount="0"),
    "amount above the maximum": lambda tx: tx["outputs"][0].update(amount="9000000000000000001"),
    "owners_before null": lambda tx: tx["inputs"][0].update(owners_before=None),
    "fulfillment given as details": lambda tx: tx["inputs"][0].update(
        fulfillment=tx["outputs"][0]["condition"]["details"]
    ),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=list(EDITS))
@pytest.mark.parametrize("operation", ["CREATE", "TRANSFER"])
def test_same_result_as_the_driver_model(alice, bob, operation, edit) -> None:
    """For each edit (id recomputed), the fast check's result or error text equals the driver model's."""
    tx = create(alice)
    if operation == "TRANSFER":
        tx = transfer([spend_input(tx)], tx["id"], bob.public_key, alice.private_key)
    edit(tx)
    rehash(tx)
    assert _outcome(tx, fast=True) == _outcome(tx, fast=False)


def test_common_shape_takes_the_fast_path(alice, bob) -> None:
    """Driver-built single-key CREATE and TRANSFER are handled without the model, and verify."""
    tx = create(alice, recipients=[([bob.public_key], 2), ([alice.public_key], 3)])
    result = fast_result(tx)
    assert result is not None and result.signatures_valid
    assert [output[0] for output in result.outputs] == [2, 3]


def test_threshold_outputs_go_through_the_model(alice, bob) -> None:
    """A threshold condition is left to the driver's model, with the same result."""
    tx = create(alice, recipients=[([bob.public_key, CAROL.public_key], 1)])
    assert fast_result(tx) is None
    assert _outcome(tx, fast=True) == _outcome(tx, fast=False)


def test_uri_mismatch_is_judged_like_bigchaindb(ledger, alice) -> None:
    """An output URI that is not its details' condition: the driver signs over the details' URI, so 202."""
    tx = create(alice)
    _other_uri(tx)
    answer = post(ledger, rehash(tx))
    assert answer.status_code == 202, answer.text


@given(st.binary(min_size=32, max_size=32))
def test_condition_uri_is_cryptoconditions_uri(key: bytes) -> None:
    """A key's condition URI, computed without pyasn1, is the one cryptoconditions gives."""
    assert condition_uri_of_key(base58.b58encode(key).decode()) == Ed25519Sha256(public_key=key).condition_uri


@pytest.mark.parametrize("size", [0, 31, 33])
def test_condition_uri_of_a_key_of_another_size_is_none(size: int) -> None:
    """A base58 key that is not 32 bytes has no ed25519 condition (cryptoconditions refuses it)."""
    assert condition_uri_of_key(base58.b58encode(b"\x07" * size).decode()) is None


def _reference_condition_uri(text: str) -> str | None:
    try:
        raw = base58.b58decode(text)
        if base58.b58encode(raw).decode() != text:
            return None
        return str(Ed25519Sha256(public_key=raw).condition_uri)
    except (ValueError, TypeError):
        return None


_KEYISH = st.binary(min_size=32, max_size=32).map(lambda key: base58.b58encode(key).decode())
_KEYISH_EDITED = st.tuples(_KEYISH, st.text(alphabet="1z 0OIl\n\u00e9", max_size=2), st.booleans()).map(
    lambda parts: parts[1] + parts[0] if parts[2] else parts[0] + parts[1]
)


_KEY = base58.b58encode(bytes(range(1, 33))).decode()


@given(st.one_of(_KEYISH, _KEYISH_EDITED, st.text(alphabet="123abcz 0O\n", max_size=46)))
@example(_KEY)
@example(_KEY + " ")
@example(_KEY + "\n")
@example("1" + _KEY)
@example(base58.b58encode(bytes(12) + b"\xff" * 20).decode())
@example(base58.b58encode(b"\xff" * 32).decode())
@example("1" + base58.b58encode(b"\xff" * 32).decode())
@example("1" * 32)
@example(base58.b58encode(bytes(32)).decode())
def test_condition_uri_of_key_agrees_with_base58_and_cryptoconditions(text: str) -> None:
    """Canonical base58 of 32 bytes (leading zero bytes too) gets cryptoconditions' URI; anything else
    (padding, whitespace, characters outside the alphabet, other lengths) gets None, as base58's
    decode-and-encode check says."""
    assert condition_uri_of_key(text) == _reference_condition_uri(text)
