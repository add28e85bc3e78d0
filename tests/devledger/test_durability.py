"""Durability: restarts keep everything, SIGKILL after a 202 commit keeps the tx, --check spots tampering."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import requests
from bigchaindb_driver import BigchainDB

from devledger.cli import handler
from devledger.testing import running_ledger

from .conftest import create, post, spend_input, transfer

HUNG = 60  # HTTP timeouts here guard against a hang; they are no speed budget on a loaded machine


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check(data: Path) -> int:
    """Exit status of `devledger --check --data DIR`."""
    import argparse

    return handler(argparse.Namespace(check=True, data=str(data), memory=False), None)


def test_restart_keeps_everything(tmp_path, alice, bob) -> None:
    """Stop and start on the same data dir: txs, outputs, search, blocks and spent state all survive."""
    with running_ledger(tmp_path) as first:
        created = create(alice, {"name": "durable meter"})
        post(first, created)
        moved = transfer([spend_input(created)], created["id"], bob.public_key, alice.private_key)
        post(first, moved)
        validators = requests.get(first.url + "/api/v1/validators", timeout=HUNG).json()
    with running_ledger(tmp_path) as second:
        bdb = BigchainDB(second.url)
        assert bdb.transactions.retrieve(moved["id"]) == moved
        assert bdb.outputs.get(bob.public_key, spent=False) == [
            {"transaction_id": moved["id"], "output_index": 0}
        ]
        assert bdb.assets.get(search="durable")[0]["id"] == created["id"]
        assert requests.get(second.url + "/api/v1/validators", timeout=HUNG).json() == validators
        assert "already spent" in post(second, moved).json()["message"]
        assert bdb.blocks.get(txid=moved["id"]) == 2
    assert check(tmp_path) == 0


def test_sigkill_after_commit_keeps_transaction(tmp_path, alice) -> None:
    """A subprocess ledger killed with SIGKILL right after a 202 in commit mode still has the tx."""
    port, ws_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "connector",
        "devledger",
        "--port",
        str(port),
        "--ws-port",
        str(ws_port),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(
        [*command, "--data", str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert "listening on" in (process.stdout.readline() if process.stdout else "")
            created = create(alice)
            url = f"http://127.0.0.1:{port}/api/v1/transactions?mode=commit"
            assert requests.post(url, json=created, timeout=HUNG).status_code == 202
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=HUNG)
    assert process.returncode == -signal.SIGKILL
    with running_ledger(tmp_path) as again:
        back = requests.get(f"{again.url}/api/v1/transactions/{created['id']}", timeout=HUNG)
        assert back.json() == created


def test_check_detects_tampering(tmp_path, alice, capsys) -> None:
    """--check says OK on an intact chain and names the height of an edited block or transaction."""
    with running_ledger(tmp_path) as handle:
        for _ in range(3):
            post(handle, create(alice, metadata={"v": "honest"}))
    assert check(tmp_path) == 0
    db = sqlite3.connect(tmp_path / "devledger.sqlite3")
    body = db.execute("SELECT body FROM transactions WHERE height = 2").fetchone()[0]
    db.execute("UPDATE transactions SET body = ? WHERE height = 2", (body.replace("honest", "forged"),))
    db.commit()
    assert check(tmp_path) == 1
    assert "height 2" in capsys.readouterr().out
    db.execute("UPDATE transactions SET body = ? WHERE height = 2", (body,))
    db.execute("UPDATE blocks SET tx_ids = '[]' WHERE height = 3")
    db.commit()
    db.close()
    assert check(tmp_path) == 1
    assert "height 3" in capsys.readouterr().out
    assert check(tmp_path / "missing") == 2
