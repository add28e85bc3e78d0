"""Anchoring benchmark (issue 18): ingest while meters appear and their CREATEs and TRANSFERs flow.

The connector runs as `smartmeter-connector run` in the default configuration (embedded dev ledger in the
ledger process, SQLite, ledger mode commit), except the window length (`--window`, default 60 s instead
of 900 s, so a window closes during the run; anchoring does not depend on the length) and 5 s of grace.

1. closed loop with wrk, 32 connections, `--meters` meters appearing (each one's first reading registers
   it and queues its CREATE): notifications/s while the CREATEs are written;
2. paced, about 1,000 notifications/s (wrk, 72 connections pausing 64 ms) from then until the window that
   holds the readings has closed and its TRANSFERs are confirmed: latency p50 / p99 while they flow;
3. the seconds from that window's close (its end + grace) until every meter's CREATE and every closed
   window's TRANSFER is confirmed (read from the store's outbox; the writer confirms from the ledger).

    PYTHONPATH=$PWD .venv/bin/python -m bench.anchoring_bench --meters 10000 --seconds 15
    PYTHONPATH=$PWD .venv/bin/python -m bench.anchoring_bench --meters 10000 --seconds 15 --no-paced
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import func, select

from bench.ingest_bench import load_wrk, measured
from connector.store.db import open_store
from connector.store.models import LedgerOutbox, PendingWindow, Window
from tests.connector.test_durability import free_port


def start(store_url: str, port: int, state: str, window: int) -> subprocess.Popen:
    """The connector with default settings but the window length, its own ports and folder."""
    env = {
        **os.environ,
        "CONNECTOR_STORE_URL": store_url,
        "CONNECTOR_LISTEN": f"127.0.0.1:{port}",
        "CONNECTOR_STATE_DIR": state,
        "CONNECTOR_KEYSTORE_PATH": f"{state}/keystore",
        "CONNECTOR_LEDGER_EMBEDDED_PORT": "0",
        "CONNECTOR_LEDGER_EMBEDDED_WS_PORT": "0",
        "CONNECTOR_LEDGER_EMBEDDED_DATA": f"{state}/devledger",
        "CONNECTOR_WINDOW_LENGTH": str(window),
        "CONNECTOR_WINDOW_GRACE": "5",
        "CONNECTOR_LOGGING_LEVEL": "WARNING",
    }
    log = open(f"{state}/connector.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run"], env=env, stdout=log, stderr=log)
    for _ in range(600):
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("connector did not start")


def window_end(now: datetime, length: int) -> datetime:
    """The end of the window holding `now`."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % length + length, UTC)


def anchored(store_url: str, close_at: datetime) -> tuple[bool, dict[str, int]]:
    """True when no window ending by `close_at` is still pending and no outbox row is open."""
    store = open_store(store_url, 1)
    try:
        with store.reading() as conn:
            pending = conn.scalar(
                select(func.count()).where(PendingWindow.window_start < close_at - timedelta(seconds=1))
            )
            open_rows = conn.scalar(select(func.count()).where(LedgerOutbox.status.in_(("pending", "sent"))))
            confirmed = conn.scalar(select(func.count()).where(LedgerOutbox.status == "confirmed"))
            windows = conn.scalar(select(func.count()).select_from(Window))
    finally:
        store.dispose()
    state = {"pending_windows": pending, "open_rows": open_rows, "confirmed": confirmed, "windows": windows}
    return pending == 0 and open_rows == 0 and windows > 0, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=15, help="length of the closed-loop phase")
    ap.add_argument("--window", type=int, default=60, help="window.length in seconds")
    ap.add_argument("--no-paced", action="store_true", help="send nothing after phase 1 (anchoring alone)")
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="anchoring-bench-")
    store_url = f"sqlite:///{state}/store.sqlite3"
    port = free_port()
    # Start just after a window boundary, so the closed-loop phase fits in one window.
    length = args.window
    while (time.time() % length) > 2:
        time.sleep(0.2)
    proc = start(store_url, port, state, length)
    url = f"http://127.0.0.1:{port}/notify"
    try:
        first = window_end(datetime.now(UTC), length)
        closed = measured(proc, lambda: load_wrk(url, args.seconds, 32, args.meters, 0, 0))
        print(json.dumps({"closed_loop": closed}), flush=True)
        close_at = window_end(datetime.now(UTC), length) + timedelta(seconds=5)
        done: dict[str, float] = {}

        def watch() -> None:
            while True:
                ok, st = anchored(store_url, close_at)
                if ok and datetime.now(UTC) > close_at:
                    done["at"] = time.time()
                    done.update(st)
                    return
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        paced_for = max(10.0, (close_at - datetime.now(UTC)).total_seconds() + 15)
        paced: dict = {}
        if not args.no_paced:
            pace = lambda: load_wrk(url, paced_for, 72, args.meters, 30_000_000, 0, delay_ms=64)  # noqa: E731
            paced = measured(proc, pace)
            print(json.dumps({"paced": paced}), flush=True)
        watcher.join(timeout=900)
        result = {
            "meters": args.meters,
            "window_s": length,
            "first_window_end": first.isoformat(),
            "closed_window_end_plus_grace": close_at.isoformat(),
            "confirmed_s_after_close": round(done["at"] - close_at.timestamp(), 1) if "at" in done else None,
            "outbox": {k: v for k, v in done.items() if k != "at"},
            "closed_loop": closed,
            "paced": paced,
        }
        print(json.dumps(result, indent=2), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
