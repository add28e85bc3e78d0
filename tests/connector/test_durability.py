"""Nothing acknowledged is lost: SIGKILL the running connector while a sender streams, restart, check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select

from connector.store.db import open_store
from connector.store.models import Meter, Reading
from tests.connector import payloads as p

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_connector(store_url: str, port: int, tmp_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CONNECTOR_STORE_URL": store_url,
        "CONNECTOR_LISTEN": f"127.0.0.1:{port}",
        "CONNECTOR_LEDGER_ENABLED": "false",
        "CONNECTOR_STATE_DIR": str(tmp_path / "var"),
        "CONNECTOR_LOGGING_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("connector did not become healthy")


def stream(url: str, start: int, stop: threading.Event, acked: list[tuple[str, str]]) -> None:
    """Send one notification after another, recording each one answered 200."""
    session = requests.Session()
    i = start
    while not stop.is_set():
        entity = f"urn:ngsi-ld:SMX:K{i % 7}"
        when = (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        try:
            resp = session.post(url, data=p.normalized(entity, when, i), headers=p.ORION_HEADERS, timeout=5)
        except requests.RequestException:
            return  # the connector died under us: that notification was never acknowledged
        if resp.status_code == 200:
            acked.append((entity, when))
        i += 1


def test_sigkill_while_streaming_loses_no_acknowledged_reading(store_url, tmp_path):
    """Every reading answered 200 before a SIGKILL is in the store after a restart."""
    acked: list[tuple[str, str]] = []
    port = free_port()
    for round_no in range(2):
        proc = start_connector(store_url, port, tmp_path)
        stop = threading.Event()
        sender = threading.Thread(
            target=stream, args=(f"http://127.0.0.1:{port}/notify", round_no * 100_000, stop, acked)
        )
        sender.start()
        time.sleep(1.5 + round_no)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        sender.join()
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
