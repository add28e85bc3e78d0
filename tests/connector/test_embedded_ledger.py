"""`run`'s embedded dev ledger runs in a process of its own, the ledger process's child, and follows it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import requests
from sqlalchemy import func, select

from connector.store.db import open_store
from connector.store.models import LedgerOutbox
from tests.connector import payloads as p
from tests.connector.test_durability import free_port, wait_gone, worker_pids
from tests.connector.test_workers import HUNG, wait_for
from tests.reliability.harness import children


def dev_ledgers(parent: int) -> list[int]:
    """The `python -m devledger` processes started by `parent`."""
    return list(children(parent, b"--parent-pid"))


def confirmed(store_url: str) -> int:
    store = open_store(store_url, 1)
    try:
        with store.reading() as conn:
            return int(conn.scalar(select(func.count()).where(LedgerOutbox.status == "confirmed")) or 0)
    finally:
        store.dispose()


def test_the_dev_ledger_is_the_ledger_process_child_and_restarts_with_it(tmp_path) -> None:
    """A meter's CREATE is confirmed through the dev ledger child; SIGKILL of the ledger process takes its
    dev ledger with it, and the new ledger process's new dev ledger (same folder, same ports) goes on."""
    port, store_url = free_port(), f"sqlite:///{tmp_path}/store.sqlite3"
    env = {
        **os.environ,
        "CONNECTOR_STORE_URL": store_url,
        "CONNECTOR_LISTEN": f"127.0.0.1:{port}",
        "CONNECTOR_STATE_DIR": str(tmp_path / "var"),
        "CONNECTOR_KEYSTORE_PATH": str(tmp_path / "keystore"),
        "CONNECTOR_LEDGER_EMBEDDED_PORT": "0",
        "CONNECTOR_LEDGER_EMBEDDED_WS_PORT": "0",
        "CONNECTOR_LEDGER_EMBEDDED_DATA": str(tmp_path / "devledger"),
        "CONNECTOR_LEDGER_DISPATCH_INTERVAL": "0.5",
        "CONNECTOR_LOGGING_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "connector", "run"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/notify"
    try:
        (ledger,) = wait_for(lambda: worker_pids(proc.pid, ledger=True), "the ledger process")
        (dev,) = wait_for(lambda: dev_ledgers(ledger), "the dev ledger child")
        for n, entity in enumerate(("urn:ngsi-ld:SMX:CHILD1", "urn:ngsi-ld:SMX:CHILD2")):
            when = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            body = p.normalized(entity, when, 1.0)
            wait_for(lambda b=body: _posted(url, b), "/notify answering 200")
            wait_for(lambda n=n: confirmed(store_url) >= n + 1, f"CREATE {n + 1} confirmed")
            if n == 0:
                os.kill(ledger, signal.SIGKILL)
                assert wait_gone([ledger, dev], seconds=HUNG) == []  # the dev ledger went with it
                (ledger,) = wait_for(lambda: worker_pids(proc.pid, ledger=True), "a new ledger process")
                (dev,) = wait_for(lambda pid=ledger: dev_ledgers(pid), "its dev ledger")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=HUNG)
    assert wait_gone([ledger, dev], seconds=HUNG) == []


def _posted(url: str, body: str) -> bool:
    try:
        return requests.post(url, data=body, headers=p.ORION_HEADERS, timeout=10).status_code == 200
    except requests.RequestException:
        return False
