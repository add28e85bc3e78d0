"""The behaviours of BigchainDB's own driver tests, against a live dev ledger through bigchaindb-driver."""

from __future__ import annotations

import threading

import pytest
from bigchaindb_driver import BigchainDB
from bigchaindb_driver.exceptions import BadRequest, NotFoundError
from bigchaindb_driver.offchain import fulfill_transaction, prepare_transaction

from .conftest import create, spend_input, transfer


def test_create_then_transfer_round_trip(bdb: BigchainDB, alice, bob) -> None:
    """send_commit answers the sent transaction and retrieve(id) gives it back identical."""
    created = create(alice, {"meter": "urn:ngsi-ld:Meter:1"}, {"window": "2026-01-01T00:00Z"})
    assert bdb.transactions.send_commit(created) == created
    assert bdb.transactions.retrieve(created["id"]) == created
    moved = transfer([spend_input(created)], created["id"], bob.public_key, alice.private_key)
    assert bdb.transactions.send_commit(moved) == moved
    assert bdb.transactions.retrieve(moved["id"]) == moved
    assert [t["id"] for t in bdb.transactions.get(asset_id=created["id"])] == [created["id"], moved["id"]]
    assert [t["id"] for t in bdb.transactions.get(asset_id=created["id"], operation="TRANSFER")] == [
        moved["id"]
    ]


def test_unspent_outputs_move_from_sender_to_recipient(bdb: BigchainDB, alice, bob) -> None:
    """Unspent outputs go 1 -> 0 for the sender and 0 -> 1 for the recipient; spent=true lists it."""
    created = create(alice)
    bdb.transactions.send_commit(created)
    assert len(bdb.outputs.get(alice.public_key, spent=False)) == 1
    assert bdb.outputs.get(bob.public_key, spent=False) == []
    moved = transfer([spend_input(created)], created["id"], bob.public_key, alice.private_key)
    bdb.transactions.send_commit(moved)
    assert bdb.outputs.get(alice.public_key, spent=False) == []
    assert bdb.outputs.get(alice.public_key, spent=True) == [
        {"transaction_id": created["id"], "output_index": 0}
    ]
    assert bdb.outputs.get(bob.public_key, spent=False) == [
        {"transaction_id": moved["id"], "output_index": 0}
    ]
    assert len(bdb.outputs.get(alice.public_key)) == 1


def test_divisible_amounts_and_overspend_message(bdb: BigchainDB, alice, bob) -> None:
    """10 splits into 3 + 7; spending 7 into 8 fails with BigchainDB's exact AmountError."""
    created = create(alice, recipients=[([alice.public_key], 10)])
    bdb.transactions.send_commit(created)
    split = transfer(
        [spend_input(created)],
        created["id"],
        [([bob.public_key], 3), ([alice.public_key], 7)],
        alice.private_key,
    )
    bdb.transactions.send_commit(split)
    assert [o["amount"] for o in bdb.transactions.retrieve(split["id"])["outputs"]] == ["3", "7"]
    over = transfer([spend_input(split, 1)], created["id"], [([bob.public_key], 8)], alice.private_key)
    with pytest.raises(BadRequest) as caught:
        bdb.transactions.send_commit(over)
    assert caught.value.info["message"] == (
        "Invalid transaction (AmountError): The amount used in the inputs `7` needs to be same as the amount "
        "used in the outputs `8`"
    )


def test_same_create_twice_at_once_commits_once(bdb: BigchainDB, alice) -> None:
    """Eight concurrent POSTs of one CREATE: exactly one 202, the rest DuplicateTransaction."""
    created = create(alice)
    outcomes: list[str] = []

    def send() -> None:
        try:
            bdb.transactions.send_commit(created)
            outcomes.append("ok")
        except BadRequest as exc:
            outcomes.append(exc.info["message"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    duplicate = f"Invalid transaction (DuplicateTransaction): transaction `{created['id']}` already exists"
    assert sorted(outcomes)[:-1] == [duplicate] * 7


def test_conflicting_transfers_at_once_commit_once(bdb: BigchainDB, alice, bob) -> None:
    """Eight different TRANSFERs of one output posted concurrently: exactly one wins, the rest DoubleSpend."""
    created = create(alice)
    bdb.transactions.send_commit(created)
    spends = [
        transfer([spend_input(created)], created["id"], bob.public_key, alice.private_key, {"n": n})
        for n in range(8)
    ]
    outcomes: list[str] = []

    def send(tx: dict) -> None:
        try:
            bdb.transactions.send_commit(tx)
            outcomes.append("ok")
        except BadRequest as exc:
            outcomes.append(exc.info["message"])

    threads = [threading.Thread(target=send, args=(tx,)) for tx in spends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    spent = f"Invalid transaction (DoubleSpend): input `{created['id']}` was already spent"
    assert sorted(outcomes)[:-1] == [spent] * 7
    assert len(bdb.outputs.get(bob.public_key)) == 1


def test_two_of_two_threshold_output_spent_with_both_keys(bdb: BigchainDB, alice, bob) -> None:
    """A CREATE to [alice, bob] makes a 2-of-2 threshold output that both keys together can spend."""
    created = create(alice, recipients=[([alice.public_key, bob.public_key], 1)])
    assert created["outputs"][0]["condition"]["details"]["type"] == "threshold-sha-256"
    bdb.transactions.send_commit(created)
    assert len(bdb.outputs.get(bob.public_key, spent=False)) == 1
    carol = prepare_transaction(
        operation="TRANSFER",
        inputs=[spend_input(created)],
        asset={"id": created["id"]},
        recipients=alice.public_key,
    )
    both = fulfill_transaction(carol, private_keys=[alice.private_key, bob.private_key])
    assert bdb.transactions.send_commit(both) == both
    assert bdb.outputs.get(bob.public_key, spent=True) == [
        {"transaction_id": created["id"], "output_index": 0}
    ]


def test_blocks_and_heights(bdb: BigchainDB, alice) -> None:
    """blocks.get gives a committed tx's height (from 1), blocks.retrieve the block; unknown: None."""
    created = create(alice)
    bdb.transactions.send_commit(created)
    height = bdb.blocks.get(txid=created["id"])
    assert height is not None and height >= 1
    assert created in bdb.blocks.retrieve(str(height))["transactions"]
    assert bdb.blocks.get(txid="0" * 64) is None
    with pytest.raises(NotFoundError):
        bdb.blocks.retrieve(str(height + 1))
    with pytest.raises(NotFoundError):
        bdb.transactions.retrieve("f" * 64)


def test_last_tx_and_async_sync_modes(bdb: BigchainDB, alice, bob) -> None:
    """send_async/send_sync answer the tx, which becomes queryable; last_tx gives an asset's newest."""
    created = create(alice)
    assert bdb.transactions.send_async(created) == created
    moved = transfer([spend_input(created)], created["id"], bob.public_key, alice.private_key)
    assert bdb.transactions.send_sync(moved) == moved
    back = transfer([spend_input(moved)], created["id"], alice.public_key, bob.private_key)
    bdb.transactions.send_commit(back)
    assert [t["id"] for t in bdb.transactions.get(asset_id=created["id"], operation="CREATE")] == [
        created["id"]
    ]
    latest = bdb.transport.forward_request(
        "GET", "/api/v1/transactions", params={"asset_id": created["id"], "last_tx": "true"}
    )
    assert [t["id"] for t in latest] == [back["id"]]


def test_info_and_validators(bdb: BigchainDB, ledger) -> None:
    """info() and api_info() describe BigchainDB 2.2.2 and the stream URL; one validator with power 10."""
    info = bdb.info()
    assert info["software"] == "BigchainDB" and info["version"] == "2.2.2"
    assert info["api"]["v1"]["transactions"] == "/api/v1/transactions/"
    assert bdb.api_info()["streams"] == ledger.ws_url
    validators = bdb.transport.forward_request("GET", "/api/v1/validators")
    assert validators[0]["voting_power"] == 10 and validators[0]["public_key"]["type"] == "ed25519-base64"
