"""The storage layer writes a block's rows in an order that keeps chained transactions consistent."""

from __future__ import annotations

from devledger.chain import verify_chain
from devledger.storage import Storage
from devledger.validation import check_stateless

from .conftest import create, spend_input, transfer


def test_spend_of_an_output_from_the_same_block(tmp_path, alice, bob) -> None:
    """A TRANSFER committed in the same block as the CREATE it spends marks that output spent."""
    created = create(alice)
    moved = transfer([spend_input(created)], created["id"], bob.public_key, alice.private_key)
    storage = Storage(tmp_path)
    assert storage.append_block([check_stateless(created), check_stateless(moved)]) == 1
    spent = {tx["id"]: storage.output(tx["id"], 0).spent_by for tx in (created, moved)}
    assert spent == {created["id"]: moved["id"], moved["id"]: None}
    storage.close()


def test_heights_and_links_continue_after_reopening(tmp_path, alice) -> None:
    """Blocks written by two Storage instances one after the other form one verifiable chain."""
    for first in (1, 3, 5):
        storage = Storage(tmp_path)
        assert storage.append_block([check_stateless(create(alice))]) == first
        pair = [check_stateless(create(alice)), check_stateless(create(alice))]
        assert storage.append_block(pair) == first + 1
        storage.close()
    assert verify_chain(tmp_path) == 6
