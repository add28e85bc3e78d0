"""Every BigchainDB validation error and HTTP error, compared with the raw response text."""

from __future__ import annotations

import copy

import pytest
import requests

from .conftest import create, error_text, post, rehash, spend_input, transfer


def invalid(kind: str, text: str) -> str:
    """The raw 400 body of a BigchainDB ValidationError."""
    return error_text(f"Invalid transaction ({kind}): {text}")


def test_missing_id(ledger, alice) -> None:
    """No id: InvalidHash 'No transaction id found!'."""
    tx = create(alice)
    del tx["id"]
    answer = post(ledger, tx)
    assert (answer.status_code, answer.text) == (400, invalid("InvalidHash", "No transaction id found!"))


def test_wrong_id(ledger, alice) -> None:
    """An id that is not the body's hash: InvalidHash naming it."""
    tx = create(alice)
    tx["id"] = "a" * 64
    expected = invalid(
        "InvalidHash",
        f"The transaction's id '{'a' * 64}' isn't equal to the hash of its body, i.e. it's not valid.",
    )
    assert post(ledger, tx).text == expected


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda tx: tx.update(foo=1), "Additional properties are not allowed ('foo' was unexpected)"),
        (lambda tx: tx.update(operation="BURN"), "'BURN' is not one of ['CREATE', 'TRANSFER']"),
        (lambda tx: tx.update(metadata={}), "{} does not have enough properties"),
        (lambda tx: tx["outputs"][0].update(amount=7), "7 is not of type 'string'"),
        (
            lambda tx: tx["inputs"][0].update(fulfills={"transaction_id": "a" * 64, "output_index": 0}),
            "{'transaction_id': '" + "a" * 64 + "', 'output_index': 0} is not of type 'null'",
        ),
    ],
)
def test_schema_errors(ledger, alice, edit, message) -> None:
    """Schema violations answer 'Invalid transaction schema: <jsonschema message>'."""
    tx = create(alice)
    edit(tx)
    answer = post(ledger, rehash(tx))
    assert (answer.status_code, answer.text) == (400, error_text(f"Invalid transaction schema: {message}"))


@pytest.mark.parametrize(("where", "key"), [("asset", "a.b"), ("metadata", "$where"), ("asset", "nul\x00l")])
def test_bad_key_names(ledger, alice, where, key) -> None:
    """Keys with '.', a leading '$' or NUL, at any depth, are rejected with the key-name message."""
    nested = {"outer": [{key: 1}]}
    tx = create(alice, nested if where == "asset" else None, nested if where == "metadata" else None)
    expected = invalid(
        "ValidationError",
        f'Invalid key name "{key}" in {where} object. The key name cannot contain characters ".", "$" '
        "or null characters",
    )
    assert post(ledger, tx).text == expected


def test_language_values(ledger, alice) -> None:
    """A `language` key must hold a MongoDB text-search language; 'en' is fine."""
    assert post(ledger, create(alice, {"language": "en", "x": "y"})).status_code == 202
    answer = post(ledger, create(alice, {"deep": {"language": "klingon"}}))
    assert answer.text == invalid(
        "ValidationError",
        'MongoDB does not support text search for the language "klingon". If you do not understand this '
        'error message then please rename key/field "language" to something else like "lang".',
    )


def test_zero_amount(ledger, alice) -> None:
    """Amount "0" passes the schema and fails with AmountError."""
    tx = create(alice)
    tx["outputs"][0]["amount"] = "0"
    assert post(ledger, rehash(tx)).text == invalid("AmountError", "`amount` must be greater than 0")


def test_duplicate_and_bad_signature(ledger, alice) -> None:
    """A committed CREATE posted again: DuplicateTransaction; an edited signed body: InvalidSignature."""
    tx = create(alice, metadata={"v": 1})
    assert post(ledger, tx).status_code == 202
    assert post(ledger, tx).text == invalid(
        "DuplicateTransaction", f"transaction `{tx['id']}` already exists"
    )
    forged = copy.deepcopy(tx)
    forged["metadata"] = {"v": 2}
    assert post(ledger, rehash(forged)).text == invalid(
        "InvalidSignature", "Transaction signature is invalid."
    )


def test_transfer_errors_in_order(ledger, alice, bob) -> None:
    """Missing input, double spend, twice in one tx, asset mismatch, foreign key: BigchainDB's texts."""
    first, second = create(alice), create(alice)
    post(ledger, first)
    post(ledger, second)
    ghost = {**spend_input(first), "fulfills": {"output_index": 0, "transaction_id": "b" * 64}}
    missing = transfer([ghost], first["id"], bob.public_key, alice.private_key)
    assert post(ledger, missing).text == invalid("InputDoesNotExist", f"input `{'b' * 64}` doesn't exist")
    twice = transfer(
        [spend_input(first), spend_input(first)], first["id"], [([bob.public_key], 2)], alice.private_key
    )
    assert post(ledger, twice).text == invalid("DoubleSpend", f'tx "{twice["id"]}" spends inputs twice')
    mismatch = transfer([spend_input(first)], second["id"], bob.public_key, alice.private_key)
    assert post(ledger, mismatch).text == invalid(
        "AssetIdMismatch", "The asset id of the input does not match the asset id of the transaction"
    )
    stolen = transfer(
        [{**spend_input(first), "owners_before": [bob.public_key]}],
        first["id"],
        bob.public_key,
        bob.private_key,
    )
    stolen["inputs"][0]["owners_before"] = [alice.public_key]
    assert post(ledger, rehash(stolen)).text == invalid(
        "InvalidSignature", "Transaction signature is invalid."
    )
    good = transfer([spend_input(first)], first["id"], bob.public_key, alice.private_key)
    assert post(ledger, good).status_code == 202
    again = transfer([spend_input(first)], first["id"], alice.public_key, alice.private_key)
    assert post(ledger, again).text == invalid("DoubleSpend", f"input `{first['id']}` was already spent")
    assert post(ledger, good).text == invalid("DoubleSpend", f"input `{first['id']}` was already spent")


def test_bad_bodies_and_mode(ledger) -> None:
    """Unparsable JSON and an unknown mode get flask-restful's 400 bodies, a non-object a clear 400."""
    url = f"{ledger.url}/api/v1/transactions"
    answer = requests.post(url, data="{not json", timeout=5)
    assert answer.status_code == 400
    assert answer.json() == {
        "message": "The browser (or proxy) sent a request that this server could not understand."
    }
    answer = requests.post(f"{url}?mode=fast", json={}, timeout=5)
    assert answer.json() == {"message": {"mode": 'Mode must be "async", "sync" or "commit"'}}
    answer = requests.post(url, json=[1], timeout=5)
    assert answer.text == error_text("Invalid transaction schema: [1] is not of type 'object'")
