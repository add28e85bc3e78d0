"""Nothing acknowledged is lost: SIGKILL the running connector while a sender streams, restart, check.

With two worker processes the SIGKILL hits the primary; its worker must go away with it (PR_SET_PDEATHSIG),
so the restarted connector can take the port and nothing is left running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from connector.store.db import open_store
from connector.store.models import Meter, Reading
from tests.connector import payloads as p
from tests.reliability.harness import children, role_pids

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_connector(store_url: str, port: int, tmp_path, workers: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "CONNECTOR_STORE_URL": store_url,
        "CONNECTOR_LISTEN": f"127.0.0.1:{port}",
        "CONNECTOR_LEDGER_ENABLED": "false",
        "CONNECTOR_STATE_DIR": str(tmp_path / "var"),
        "CONNECTOR_LOGGING_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "connector", "run", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:  # not listening yet, or listening but not yet answering
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError("connector did not become healthy")


def stream(url: str, start: int, stop: threading.Event, acked: list[tuple[str, str]]) -> None:
    """Send one notification after another until `stop`, recording each one answered 200."""
    session = requests.Session()
    i = start
    while not stop.is_set():
        entity = f"urn:ngsi-ld:SMX:K{i % 7}"
        when = (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        try:
            resp = session.post(url, data=p.normalized(entity, when, i), headers=p.ORION_HEADERS, timeout=5)
        except requests.RequestException:
            # Never acknowledged: the connector died under us, or (on a loaded machine) a process that is
            # still starting took longer than the timeout. Try the next one until told to stop.
            i += 1
            continue
        if resp.status_code == 200:
            acked.append((entity, when))
        i += 1


def worker_pids(primary_pid: int, ledger: bool = False, role: str = "ledger") -> list[int]:
    """The HTTP worker processes a primary started (found by the --primary-pid on their command line), or
    with `ledger` its process of `role` (`--role ledger`, `--role closer`)."""
    if not ledger:
        return [pid for pid, args in children(primary_pid).items() if b"--role" not in args]
    return role_pids(primary_pid, role)


def wait_for_ledger_process(primary_pid: int, seconds: float = 120) -> list[int]:
    """The primary's ledger process (waiting for it to appear: it is started after the HTTP socket)."""
    deadline = time.monotonic() + seconds
    while not (found := worker_pids(primary_pid, ledger=True)):
        assert time.monotonic() < deadline, "no ledger process started"
        time.sleep(0.1)
    return found


def wait_gone(pids: list[int], seconds: float = 20) -> list[int]:
    """The pids still alive after waiting up to `seconds` for them to exit."""
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_while_streaming_loses_no_acknowledged_reading(store_url, tmp_path, workers):
    """Every reading answered 200 before a SIGKILL is in the store after a restart (1 and 2 processes)."""
    acked: list[tuple[str, str]] = []
    port = free_port()
    for round_no in range(2):
        proc = start_connector(store_url, port, tmp_path, workers)
        children = worker_pids(proc.pid)
        assert len(children) == workers - 1
        children += wait_for_ledger_process(proc.pid)
        stop = threading.Event()
        sender = threading.Thread(
            target=stream, args=(f"http://127.0.0.1:{port}/notify", round_no * 100_000, stop, acked)
        )
        sender.start()
        try:
            # Kill mid-stream once this round has had readings acknowledged (a condition, not a time
            # budget: on a loaded machine 1.5 s gave fewer than the 50 acks the test needs).
            wanted, deadline = len(acked) + 30, time.monotonic() + 120
            while len(acked) < wanted:
                assert time.monotonic() < deadline, f"only {len(acked)} readings acknowledged"
                time.sleep(0.05)
        finally:  # the kill under test; on a failure, no connector is left running
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            sender.join()
        assert wait_gone(children) == []  # the workers die with the primary
    assert len(acked) > 50
    store = open_store(store_url)
    with store.reading() as conn:
        stored = {
            (e, t.isoformat().replace("+00:00", "Z").replace(".000000", ""))
            for e, t in conn.execute(select(Meter.entity_id, Reading.observed_at).join(Meter))
        }
    store.dispose()
    missing = [a for a in acked if a not in stored]
    assert missing == []
