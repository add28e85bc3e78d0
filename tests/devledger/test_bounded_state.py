"""Only live state stays in memory; spent history is read back from storage, with the same errors."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from bigchaindb_driver.crypto import CryptoKeypair, generate_keypair

from devledger.errors import InvalidTransaction
from devledger.ledger import CommitFailed, Ledger, _State
from devledger.storage import Storage
from devledger.testing import running_ledger
from devledger.validation import check_stateless

from .conftest import create, error_text, post, spend_input, transfer

TRANSFERS = 3000
PER_MARK = 1000
HANG_GUARD = 60.0  # seconds; validation from memory takes milliseconds


def chain_of(owner: CryptoKeypair, transfers: int) -> list[dict[str, Any]]:
    """A CREATE and `transfers` TRANSFERs of its asset, each spending the one before, all to `owner`."""
    txs = [create(owner)]
    for _ in range(transfers):
        txs.append(transfer([spend_input(txs[-1])], txs[0]["id"], owner.public_key, owner.private_key))
    return txs


def spent_text(tx: dict[str, Any]) -> str:
    return error_text(f"Invalid transaction (DoubleSpend): input `{tx['id']}` was already spent")


def spending(tx_id: str, index: int, asset_id: str, owner: CryptoKeypair) -> dict[str, Any]:
    """A TRANSFER of `asset_id` signed by `owner` that claims output `index` of `tx_id`."""
    spend = {
        "fulfillment": {"type": "ed25519-sha-256", "public_key": owner.public_key},
        "fulfills": {"output_index": index, "transaction_id": tx_id},
        "owners_before": [owner.public_key],
    }
    return transfer([spend], asset_id, owner.public_key, owner.private_key)


@pytest.fixture
def file_ledger(tmp_path) -> Iterator[Ledger]:
    """A started file-backed Ledger (no HTTP), stopped and closed afterwards."""
    storage = Storage(tmp_path)
    ledger = Ledger(storage)
    ledger.start()
    yield ledger
    ledger.stop()
    storage.close()


def test_double_spend_of_old_outputs_before_and_after_restart(tmp_path, alice) -> None:
    """Spending an output of an old, fully spent transaction is a DoubleSpend, also after a restart."""
    txs = chain_of(alice, 3)
    with running_ledger(tmp_path) as first:
        for tx in txs:
            assert post(first, tx).status_code == 202
        again = transfer(
            [spend_input(txs[0])], txs[0]["id"], generate_keypair().public_key, alice.private_key
        )
        assert post(first, again).text == spent_text(txs[0])
    with running_ledger(tmp_path) as second:
        assert post(second, again).text == spent_text(txs[0])
        twice = transfer(
            [spend_input(txs[1])], txs[0]["id"], generate_keypair().public_key, alice.private_key
        )
        assert post(second, twice).text == spent_text(txs[1])
        head = transfer(
            [spend_input(txs[-1])], txs[0]["id"], generate_keypair().public_key, alice.private_key
        )
        assert post(second, head).status_code == 202


def test_unknown_inputs_before_and_after_restart(tmp_path, alice) -> None:
    """An input naming no transaction, or an output past the end of an old one, does not exist."""
    txs = chain_of(alice, 2)
    unknown = spending("0" * 64, 0, txs[0]["id"], alice)
    past_end = spending(txs[0]["id"], 1, txs[0]["id"], alice)
    for _ in range(2):
        with running_ledger(tmp_path) as ledger:
            for tx in txs:
                post(ledger, tx)
            assert post(ledger, unknown).text == error_text(
                f"Invalid transaction (InputDoesNotExist): input `{'0' * 64}` doesn't exist"
            )
            assert post(ledger, past_end).text == error_text(
                f"Invalid transaction (InputDoesNotExist): input `{txs[0]['id']}` doesn't exist"
            )


def test_duplicate_create_after_its_outputs_are_spent_and_after_restart(tmp_path, alice) -> None:
    """A CREATE posted again is a DuplicateTransaction whether its asset moved on or the ledger restarted."""
    txs = chain_of(alice, 2)
    duplicate = error_text(
        f"Invalid transaction (DuplicateTransaction): transaction `{txs[0]['id']}` already exists"
    )
    with running_ledger(tmp_path) as first:
        for tx in txs:
            post(first, tx)
        assert post(first, txs[0]).text == duplicate
    with running_ledger(tmp_path) as second:
        assert post(second, txs[0]).text == duplicate
        assert post(second, create(alice)).status_code == 202


def test_failed_block_is_reverted_after_its_inputs_were_dropped(tmp_path, alice, file_ledger) -> None:
    """A block SQLite refuses undoes its CREATE and its spend, also of a transaction dropped from memory."""
    txs = chain_of(alice, 2)
    for tx in txs[:2]:
        file_ledger.submit(tx, wait_commit=True)
    fresh = create(alice)
    next_of_failed = transfer([spend_input(txs[2])], txs[0]["id"], alice.public_key, alice.private_key)
    with file_ledger.storage.reading() as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON blocks BEGIN SELECT RAISE(ABORT, 'refused'); END")
    for tx in (txs[2], fresh):
        with pytest.raises(CommitFailed):
            file_ledger.submit(tx, wait_commit=True)
    with file_ledger.storage.reading() as db:
        db.execute("DROP TRIGGER refuse")
    with pytest.raises(InvalidTransaction, match="InputDoesNotExist"):
        file_ledger.submit(next_of_failed, wait_commit=True)
    for tx in (txs[2], fresh, next_of_failed):
        file_ledger.submit(tx, wait_commit=True)
    with pytest.raises(InvalidTransaction, match="DoubleSpend"):
        file_ledger.submit(txs[2], wait_commit=True)


def test_new_creates_and_head_transfers_are_validated_without_storage(alice, file_ledger) -> None:
    """A CREATE of a new asset and a TRANSFER of an asset's head are accepted while storage is locked."""
    txs = chain_of(alice, 3)
    for tx in txs[:3]:
        file_ledger.submit(tx, wait_commit=True)
    accepted: list[str] = []
    worker = threading.Thread(
        target=lambda: accepted.extend(
            file_ledger.submit(tx, wait_commit=False).id for tx in (create(alice), txs[3])
        )
    )
    with file_ledger.storage.reading():  # what the writer holds during a block's fsync
        worker.start()
        worker.join(HANG_GUARD)
        assert not worker.is_alive(), "validation waited for storage"
    assert accepted[1] == txs[3]["id"]


def test_an_output_with_a_pending_spender_stays_for_the_revert(tmp_path, alice) -> None:
    """A committed transaction with one output spent by a pending one is kept, so reverting that works."""
    created = create(alice, recipients=[([alice.public_key], 1), ([alice.public_key], 1)])
    first, second = (
        check_stateless(
            transfer([spend_input(created, i)], created["id"], alice.public_key, alice.private_key)
        )
        for i in (0, 1)
    )
    storage = Storage(tmp_path)
    state = _State(storage)
    state.apply(check_stateless(created))
    state.committed([check_stateless(created)])
    state.apply(first)
    state.apply(second)
    state.committed([first])
    state.revert(second)
    assert state.spender(created["id"], 1) is None
    assert state.spender(created["id"], 0) == first.id
    storage.close()


def test_memory_stays_flat_while_an_asset_is_transferred(alice, file_ledger) -> None:
    """Traced memory does not grow between the first and the last thousand TRANSFERs of one asset."""
    txs = chain_of(alice, TRANSFERS)
    marks = []
    gc.collect()
    tracemalloc.start()
    try:
        for i, tx in enumerate(txs):
            # Blocks commit in order: waiting for one waits for all before it (nothing pending at a mark).
            file_ledger.submit(tx, wait_commit=i % PER_MARK in (0, PER_MARK - 1))
            if i in (PER_MARK, TRANSFERS):
                gc.collect()
                marks.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    per_transfer = (marks[1] - marks[0]) / (TRANSFERS - PER_MARK)
    # Keeping every output cost ~280 bytes a transfer (measured); the bounded state keeps ~0.
    assert per_transfer < 100, f"{per_transfer:.0f} bytes per transfer"
