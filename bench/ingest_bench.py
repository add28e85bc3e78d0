"""Ingest benchmark (issue 2): the connector in one process, the load generator in another.

Runs `smartmeter-connector run` (ledger off: this measures ingest alone) on a fresh store, then
1. single-entity normalized notifications as fast as it takes them,
2. legacy notifications carrying 100 entities each,
3. a fixed 1,000 notifications/s for the acknowledgement latency p50/p99,
and writes docs/benchmarks/ingest.md. Usage: python -m bench.ingest_bench [--store URL] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.connector.test_durability import free_port

ROOT = Path(__file__).resolve().parent.parent


def start(store_url: str, port: int, state: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "CONNECTOR_STORE_URL": store_url,
        "CONNECTOR_LISTEN": f"127.0.0.1:{port}",
        "CONNECTOR_LEDGER_ENABLED": "false",
        "CONNECTOR_STATE_DIR": state,
        "CONNECTOR_LOGGING_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "connector", "run"], env=env, stdout=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("connector did not start")


def load(url: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", url, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="", help="store URL (default: a fresh SQLite file)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "ingest.md"))
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="ingest-bench-")
    store = args.store or f"sqlite:///{state}/store.sqlite3"
    port = free_port()
    proc = start(store, port, state)
    url = f"http://127.0.0.1:{port}/notify"
    secs = str(args.seconds)
    try:
        print("0/3 warm-up: registering 200 meters ...", flush=True)
        warm = ("--seconds", "3", "--connections", "8", "--meters", "200", "--offset", "50000000")
        load(url, "--mode", "max", *warm)
        print("1/3 single-entity normalized, closed loop, 32 connections ...", flush=True)
        single = load(url, "--mode", "max", "--seconds", secs, "--connections", "32", "--meters", "200")
        print(f"    {single}", flush=True)
        print("2/3 legacy, 100 entities per notification ...", flush=True)
        batched = load(
            url,
            "--mode",
            "max",
            "--seconds",
            secs,
            "--connections",
            "8",
            "--batch",
            "100",
            "--offset",
            "10000000",
        )
        print(f"    {batched}", flush=True)
        print("3/3 fixed 1,000 notifications/s ...", flush=True)
        paced = load(
            url,
            "--mode",
            "rate",
            "--rate",
            "1000",
            "--seconds",
            secs,
            "--connections",
            "64",
            "--offset",
            "20000000",
        )
        print(f"    {paced}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(state, ignore_errors=True)
    backend = "PostgreSQL" if store.startswith("postgresql") else "SQLite (WAL, synchronous=FULL)"
    write_report(Path(args.out), backend, single, batched, paced)


def row(label: str, r: dict) -> str:
    """One Markdown table row of a load generator result."""
    cells = [
        r["notifications_per_s"],
        r["readings_per_s"],
        f"{r['p50_ms']} ms",
        f"{r['p99_ms']} ms",
        r["failed"],
    ]
    return "| " + " | ".join([label, *map(str, cells)]) + " |"


def write_report(out: Path, backend: str, single: dict, batched: dict, paced: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = "python -m bench.ingest_bench" + (
        " --store postgresql+psycopg://postgres@127.0.0.1:5432/test" if "Postgre" in backend else ""
    )
    text = f"""# Ingest benchmark

Command: `{cmd}` (connector and load generator in separate processes on the same
{os.cpu_count()}-core machine, Python {platform.python_version()}; store: {backend};
ledger writer off so only ingest is measured; every 200 means the readings were committed).

| scenario | notifications/s | readings/s | ack p50 | ack p99 | failed |
|---|---|---|---|---|---|
{row("single-entity normalized, as fast as taken", single)}
{row("legacy, 100 entities each", batched)}
{row("fixed 1,000 notifications/s", paced)}

Aims (issue 2): >= 3,000 single-entity notifications/s, >= 50,000 readings/s batched, p99 < 20 ms at 1,000/s.
For comparison: seed 004 reports 50,000 tx/s into its RabbitMQ queue tier (no durable commit per message);
FIWARE's QuantumLeap about 100 notifications/s.
"""
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
