"""The valid-transactions websocket stream."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .conftest import create, spend_input, transfer

# Only a guard against a hung stream, not a speed budget: BigchainDB's own suite asks for each frame within
# 5 s, which a loaded 2-core machine cannot promise; the order and content of the frames are the behaviour.
HUNG = 120


def test_ten_async_creates_each_arrive_as_a_frame(ledger, bdb, alice, bob) -> None:
    """Ten send_async CREATEs and a TRANSFER each arrive as a frame: height, asset_id, transaction_id."""
    with connect(ledger.ws_url) as ws:
        sent = [create(alice) for _ in range(10)]
        for tx in sent:
            bdb.transactions.send_async(tx)
        moved = transfer([spend_input(sent[0])], sent[0]["id"], bob.public_key, alice.private_key)
        bdb.transactions.send_async(moved)
        frames = [json.loads(ws.recv(timeout=HUNG)) for _ in range(11)]
    assert [f["transaction_id"] for f in frames] == [tx["id"] for tx in sent] + [moved["id"]]
    assert all(f["asset_id"] == f["transaction_id"] for f in frames[:10])
    assert frames[10]["asset_id"] == sent[0]["id"]
    assert all(bdb.blocks.get(txid=f["transaction_id"]) == f["height"] for f in frames)
    assert list(frames[0]) == ["height", "asset_id", "transaction_id"]


def test_other_paths_are_refused(ledger) -> None:
    """Only /api/v1/streams/valid_transactions is a stream."""
    with pytest.raises(InvalidStatus), connect(ledger.ws_url.replace("valid_transactions", "nope")):
        pass
