"""The history route cuts each TRANSFER's metadata out of the stored transaction text without parsing it;
the cut is exactly the metadata, whatever strings the metadata holds, or None when the text is not in the
ledger writer's serialized form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from bigchaindb_driver.crypto import generate_keypair

from connector.api.present import transfer_metadata_text
from connector.keystore import KeyPair
from connector.ledger.transactions import serialize, sign_create, sign_transfer

NASTY = [
    {"schema": "x", "meter": 'urn:a","operation":"TRANSFER","outputs":[', "n": 1},
    {"meter": '"metadata":{"a":1}', "q": '\\"metadata\\":', "nested": {"metadata": {"operation": "CREATE"}}},
    {"unicode": "Zähler ⚡ \u0000 \u2028", "list": [1, '],"version":"2.0"}'], "empty": {}},
    None,
]


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    pair = generate_keypair(b"metadata-text-test-key-seed-32b!")
    return KeyPair(pair.public_key, pair.private_key)


@pytest.mark.parametrize("metadata", NASTY)
def test_cut_is_exactly_the_metadata(keys: KeyPair, metadata: Any) -> None:
    """For signed TRANSFERs serialized as the outbox keeps them, the cut parses to the metadata."""
    create = sign_create(keys, {"data": {"metadata": '"metadata":', "operation": "TRANSFER"}}, {"a": 1})
    tx = sign_transfer(keys, create["id"], create["id"], metadata)
    text = transfer_metadata_text(serialize(tx))
    assert text is not None and json.loads(text) == metadata


def test_other_forms_are_left_to_the_parser(keys: KeyPair) -> None:
    """A CREATE, a transaction with spaces or unsorted keys, or no JSON at all gives None."""
    create = sign_create(keys, {"data": {"k": 1}}, {"metadata": 1})
    tx = sign_transfer(keys, create["id"], create["id"], {"a": 1})
    assert transfer_metadata_text(serialize(create)) is None
    assert transfer_metadata_text(json.dumps(tx, sort_keys=True)) is None
    assert transfer_metadata_text(json.dumps(tx, separators=(",", ":"))) is None
    assert transfer_metadata_text("") is None
