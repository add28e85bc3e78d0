"""The block interval: txs wait for the next block, are committed together, commit mode answers then."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from devledger.cli import duration
from devledger.ledger import Ledger
from devledger.storage import DB_FILE, Storage
from devledger.testing import running_ledger

from .conftest import create, error_text, post, spend_input, transfer
from .test_durability import free_port

HUNG = 120  # a guard against a hang, not a speed budget
NEVER = 3600.0  # an interval no test waits for: only stopping the ledger cuts that block


def heights(url: str, tx_id: str) -> list[int]:
    """The heights of the blocks holding `tx_id` (BigchainDB's GET /blocks?transaction_id=)."""
    answer = requests.get(f"{url}/api/v1/blocks", params={"transaction_id": tx_id}, timeout=HUNG)
    return list(answer.json())


def test_transactions_wait_for_the_next_block_and_share_it(tmp_path, alice, bob) -> None:
    """Accepted txs are not committed before the block; then all of them are in one block, in order."""
    with running_ledger(tmp_path, block_interval=NEVER) as ledger:
        first = create(alice)
        assert post(ledger, first).status_code == 202  # an idle chain cuts the first block at once
        pending = [create(alice) for _ in range(3)]
        moved = transfer([spend_input(first)], first["id"], bob.public_key, alice.private_key)
        for tx in [*pending, moved]:
            assert post(ledger, tx, mode="async").status_code == 202
        for tx in [*pending, moved]:
            assert (
                requests.get(f"{ledger.url}/api/v1/transactions/{tx['id']}", timeout=HUNG).status_code == 404
            )
            assert heights(ledger.url, tx["id"]) == []
        assert heights(ledger.url, first["id"]) == [1]
    # Stopping commits the pending block; a restart on the same data shows it.
    with running_ledger(tmp_path) as ledger:
        assert [heights(ledger.url, tx["id"]) for tx in [*pending, moved]] == [[2]] * 4
        block = requests.get(f"{ledger.url}/api/v1/blocks/2", timeout=HUNG).json()
        assert [tx["id"] for tx in block["transactions"]] == [tx["id"] for tx in [*pending, moved]]


def test_second_spend_in_the_same_block_is_refused(alice, bob) -> None:
    """Two TRANSFERs of one output while the first is pending: the second gets BigchainDB's DoubleSpend."""
    with running_ledger(block_interval=NEVER) as ledger:
        first = create(alice)
        assert post(ledger, first).status_code == 202
        to_bob = transfer([spend_input(first)], first["id"], bob.public_key, alice.private_key)
        to_alice = transfer([spend_input(first)], first["id"], alice.public_key, alice.private_key)
        assert post(ledger, to_bob, mode="sync").status_code == 202
        assert heights(ledger.url, to_bob["id"]) == []  # still in the pending block
        refused = post(ledger, to_alice, mode="async")
        assert refused.status_code == 400
        assert refused.text == error_text(
            f"Invalid transaction (DoubleSpend): input `{first['id']}` was already spent"
        )
        again = post(ledger, create(alice), mode="async")
        assert again.status_code == 202  # other transactions still get into the block


def test_commit_mode_answers_when_the_block_commits(alice) -> None:
    """mode=commit answers once its block commits, an interval after the last; the stream tells it then."""
    interval = 1.0
    with running_ledger(block_interval=interval) as ledger, connect(ledger.ws_url) as ws:
        first, second = create(alice), create(alice)
        started = time.monotonic()
        assert post(ledger, first).status_code == 202
        assert post(ledger, second).status_code == 202
        # Block 1 committed after `started`; block 2 no sooner than one interval after block 1.
        assert time.monotonic() - started >= interval
        assert requests.get(f"{ledger.url}/api/v1/transactions/{second['id']}", timeout=HUNG).json() == second
        frames = [json.loads(ws.recv(timeout=HUNG)) for _ in range(2)]
    assert [(f["height"], f["transaction_id"]) for f in frames] == [(1, first["id"]), (2, second["id"])]


def test_blocks_are_at_least_an_interval_apart(tmp_path, alice) -> None:
    """Under a steady stream of async posts, block commit times are never closer than the interval."""
    interval = 0.3
    with running_ledger(tmp_path, block_interval=interval) as ledger:
        assert post(ledger, create(alice)).status_code == 202  # block 1
        sent = [create(alice) for _ in range(12)]
        for tx in sent:
            assert post(ledger, tx, mode="async").status_code == 202
        assert post(ledger, create(alice)).status_code == 202  # commit mode: everything before it is in
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        times = [
            datetime.fromisoformat(row[0]) for row in db.execute("SELECT time FROM blocks ORDER BY height")
        ]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert len(times) >= 2
    # The stamp is taken just before a block's write and the interval counts from the previous write's end.
    assert all(gap >= interval for gap in gaps), gaps


def test_negative_interval_is_refused() -> None:
    """The default interval is 0 (each batch committed at once); a negative one is an error."""
    assert Ledger(Storage(None)).block_interval == 0.0
    with pytest.raises(ValueError):
        Ledger(Storage(None), block_interval=-1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("0.25", 0.25), ("2", 2.0), ("0", 0.0), (" 1.5S ", 1.5)],
)
def test_block_interval_option_reads_durations(text: str, seconds: float) -> None:
    """--block-interval takes 1s, 500ms or plain seconds."""
    assert duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-1s", "nan", "inf", "1h"])
def test_block_interval_option_refuses_nonsense(text: str) -> None:
    """--block-interval refuses what is not a non-negative duration, naming it."""
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration(text)


def test_command_line_block_interval(alice) -> None:
    """`devledger --block-interval 1s` says so and answers a commit-mode POST after the next block."""
    port, ws_port = free_port(), free_port()
    command = [sys.executable, "-m", "connector", "devledger", "--memory", "--port", str(port)]
    command += ["--ws-port", str(ws_port), "--block-interval", "1s"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            line = process.stdout.readline() if process.stdout else ""
            assert "listening on" in line and "blocks every 1 s" in line
            url = f"http://127.0.0.1:{port}/api/v1/transactions?mode=commit"
            started = time.monotonic()
            for tx in (create(alice), create(alice)):
                assert requests.post(url, json=tx, timeout=HUNG).status_code == 202
            assert time.monotonic() - started >= 1.0  # the second waited for block 2, 1 s after block 1
        finally:
            process.terminate()
            process.wait(timeout=HUNG)
