"""Anchoring benchmark (issue 18): ingest while meters appear and their CREATEs and TRANSFERs flow.

The connector runs as `smartmeter-connector run` in the default configuration (embedded dev ledger in the
ledger process, SQLite, ledger mode sync), except the window length (`--window`, default 60 s instead
of 900 s, so a window closes during the run; anchoring does not depend on the length) and 5 s of grace.

1. closed loop with wrk, 32 connections, `--meters` meters appearing (each one's first reading registers
   it and queues its CREATE): notifications/s while the CREATEs are written;
2. paced, about 1,000 notifications/s (wrk, 72 connections pausing 64 ms) from then until the window that
   holds the readings has closed and its TRANSFERs are confirmed: latency p50 / p99 while they flow;
3. the seconds from that window's close (its end + grace) until every meter's CREATE and every closed
   window's TRANSFER is confirmed (read from the store's outbox; the writer confirms from the ledger).

    PYTHONPATH=$PWD .venv/bin/python -m bench.anchoring_bench --meters 10000 --seconds 15
    PYTHONPATH=$PWD .venv/bin/python -m bench.anchoring_bench --meters 10000 --seconds 15 --no-paced

`--bulk` measures one window of many meters without the HTTP load. Prepared once (`--prepare-only`, kept
in `--data`): `--meters` meters registered through the ingest writer's own `write_batch` in-process and
their CREATEs written and confirmed by the connector itself. Each run copies that folder, stores
`--per-meter` readings per meter for a window that begins after the load and the connector's start
(`write_batch` again, no HTTP), starts the connector and times from the window's close (end + grace)
until every TRANSFER is confirmed. `--set` changes a setting for the run, bulk or not (the default
configuration otherwise); `--py-spy FILE` samples each process but the HTTP one meanwhile (into FILE.ROLE).

    PYTHONPATH=$PWD .venv/bin/python -m bench.anchoring_bench --bulk --meters 100000 --lead 120

`--closer-only` runs the window closer alone in this process on a bulk-loaded store: windows/s and how
long each batch held the write transaction.

    PYTHONPATH=$PWD .venv/bin/python -m bench.anchoring_bench --closer-only --meters 10000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import structlog
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, select

from bench.ingest_bench import connector_pids, cpu_seconds, load_wrk, measured
from bench.ingest_bench import start as start_connector
from connector.closer import BATCH, close_due_windows
from connector.ingest import Incoming, IngestConfig, write_batch
from connector.settings import Settings, load_settings
from connector.store.db import Store, migrate, open_store
from connector.store.models import LedgerOutbox, PendingWindow, Reading, Window
from ngsi.headers import resolve_headers
from ngsi.parse import parse_notification
from tests.connector.test_durability import free_port
from tests.pgschema import fresh_schema


def start(
    store_url: str, port: int, state: str, window: int, sets: dict[str, str] | None = None
) -> subprocess.Popen:
    """The connector with default settings but the window length, its own ports and folder, and `sets`
    ({dotted setting: value}, e.g. from `--set`; none by default)."""
    settings = {"window.length": str(window), "window.grace": "5", **(sets or {})}
    return start_connector(store_url, port, state, ledger=True, settings=settings)


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


# -- bulk loading and the in-process closer measurement ---------------------------------------------------

BULK_GROUP = 500  # entities per notification (and per ingest transaction) when bulk loading


def bulk_ingest(store: Store, settings: Settings, meters: int, start: datetime, per_meter: int) -> float:
    """`meters` meters, each with `per_meter` power readings in the window at `start`, stored through the
    ingest writer's own `write_batch` in-process (no HTTP): the meters register with their CREATEs queued
    and the windows are marked pending, as /notify would leave them. Returns the seconds it took."""
    config = IngestConfig.of(settings)
    headers = resolve_headers({"Fiware-Service": "bench", "Fiware-ServicePath": "/"})
    step = settings.window.length / (per_meter + 1)
    began = time.perf_counter()
    for first in range(0, meters, BULK_GROUP):
        ids = range(first, min(first + BULK_GROUP, meters))
        items = []
        for k in range(per_meter):
            at = (start + timedelta(seconds=step * (k + 1))).isoformat().replace("+00:00", "Z")
            body = {"subscriptionId": "bench", "data": [_entity(i, at, k) for i in ids]}
            received = datetime.now(UTC)
            items.append(Incoming(parse_notification(body, headers, received), headers, received))
        with store.begin() as conn:
            write_batch(conn, items, config)
    return time.perf_counter() - began


def _entity(i: int, at: str, k: int) -> dict:
    """One SMX meter's power reading at `at`, as bench/wrk_notify.lua sends it."""
    meta = {"TimeInstant": {"type": "DateTime", "value": at}}
    power = {"type": "Number", "value": (i * 7 + k) % 5000 + 0.5, "metadata": meta}
    return {"id": f"urn:ngsi-ld:SMX:B{i}", "type": "SMX", "P": power}


def closer_only(meters: int, per_meter: int, batch: int, postgresql: bool) -> dict:
    """The window closer alone, in this process, on a bulk-loaded store (SQLite, or a fresh schema of
    the test PostgreSQL): windows/s and how long each batch held the store's write transaction (SQLite:
    the lock /notify waits for)."""
    with tempfile.TemporaryDirectory(prefix="closer-bench-") as tmp, ExitStack() as stack:
        url = stack.enter_context(fresh_schema()) if postgresql else f"sqlite:///{tmp}/store.sqlite3"
        settings = load_settings(overrides={"store.url": url, "ledger.enabled": False})
        store = open_store(url)
        try:
            migrate(store)
            start = window_start_of(datetime.now(UTC) - timedelta(hours=1), settings.window.length)
            loaded = bulk_ingest(store, settings, meters, start, per_meter)
            began, cpu = time.perf_counter(), time.process_time()
            with structlog.testing.capture_logs() as logs:
                closed = close_due_windows(store, settings, datetime.now(UTC), batch=batch)
            took, cpu = time.perf_counter() - began, time.process_time() - cpu
        finally:
            store.dispose()
    held = sorted(e["write_ms"] for e in logs if e["event"] == "windows.closed")
    return {
        "meters": meters,
        "readings_per_window": per_meter,
        "batch": batch,
        "store": "postgresql" if postgresql else "sqlite",
        "bulk_load_s": round(loaded, 1),
        "windows_closed": len(closed),
        "seconds": round(took, 2),
        "windows_per_s": round(len(closed) / took, 1),
        "cpu_ms_per_window": round(1000 * cpu / max(1, len(closed)), 3),
        "batches": len(held),
        "write_ms_p50": held[len(held) // 2],
        "write_ms_p99": held[min(len(held) - 1, int(len(held) * 0.99))],
        "write_ms_max": held[-1],
    }


def window_start_of(at: datetime, length: int) -> datetime:
    """The start of the window holding `at`."""
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % length, UTC)


# -- bulk mode: meters registered and CREATEd beforehand, one window's readings loaded straight in -------

PREPARED = "prepared.json"


def bench_settings(store_url: str, window: int) -> Settings:
    """Settings for loading a store the connector will run on with `window`-second windows."""
    return load_settings(overrides={"store.url": store_url, "window.length": window, "ledger.enabled": False})


def prepare(data: Path, meters: int, window: int) -> None:
    """A state folder (store, keystore, dev ledger) in `data` with `meters` meters registered and their
    CREATEs confirmed by the connector itself; built once, reused while meters and window match."""
    marker = data / PREPARED
    wanted = {"meters": meters, "window": window}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    url = f"sqlite:///{data}/store.sqlite3"
    store = open_store(url)
    try:
        migrate(store)
        long_ago = window_start_of(datetime.now(UTC) - timedelta(days=1), window)
        bulk_ingest(store, bench_settings(url, window), meters, long_ago, 1)
        with store.begin() as conn:  # only the registrations (and their queued CREATEs) are wanted here
            conn.execute(delete(PendingWindow))
            conn.execute(delete(Reading))
    finally:
        store.dispose()
    began = time.time()
    # Preparing is no measurement: the CREATEs go in the writer's fastest mode (ledger_writer.md)
    proc = start(url, free_port(), str(data), window, {"ledger.mode": "sync", "ledger.concurrency": "16"})
    try:
        while anchored(url, datetime.now(UTC))[1]["open_rows"] != 0:
            time.sleep(2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps({"prepared": str(data), "creates_s": round(time.time() - began, 1)}), flush=True)
    marker.write_text(json.dumps(wanted))


def default_data(meters: int) -> str:
    """Where --bulk keeps its prepared state folder unless told (--data)."""
    return f"{tempfile.gettempdir()}/anchoring-bench-data-{meters}"


def bulk_run(args: argparse.Namespace) -> dict:
    """One window of `args.meters` prepared meters: readings loaded, then the seconds from the window's
    close until every TRANSFER is confirmed, with the connector's CPU over that time."""
    data = Path(args.data or default_data(args.meters))
    prepare(data, args.meters, args.window)
    state = tempfile.mkdtemp(prefix="anchoring-bench-")
    shutil.copytree(data, state, dirs_exist_ok=True)
    url = f"sqlite:///{state}/store.sqlite3"
    length = args.window
    # The first window starting `lead` seconds from now: loading its readings and starting the connector
    # happen before it even begins, so the measurement is the closer's and the writer's alone.
    ws = window_start_of(datetime.now(UTC) + timedelta(seconds=args.lead), length) + timedelta(seconds=length)
    store = open_store(url)
    try:
        loaded = bulk_ingest(store, bench_settings(url, length), args.meters, ws, args.per_meter)
    finally:
        store.dispose()
    proc = start(url, free_port(), state, length, args.sets)
    try:
        close_at = ws + timedelta(seconds=length + 5)
        ready_s = (close_at - datetime.now(UTC)).total_seconds()
        time.sleep(max(0.0, ready_s))
        roles = process_roles(proc.pid)
        pids = list(roles.values())
        cpu0 = [cpu_seconds(p) for p in pids]
        sampled = {role: pid for role, pid in roles.items() if role != "http" and args.py_spy}
        spies = [_py_spy(f"{args.py_spy}.{role}", pid, args.py_spy_gil) for role, pid in sampled.items()]
        load0 = os.getloadavg()[0]
        while True:
            ok, state_counts = anchored(url, close_at)
            if ok and state_counts["windows"] >= args.meters:
                break
            time.sleep(0.5)
        took = time.time() - close_at.timestamp()
        cpu = {r: round(cpu_seconds(p) - c, 1) for (r, p), c in zip(roles.items(), cpu0, strict=True)}
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)
        blocks = ledger_blocks(Path(state) / "devledger" / "devledger.sqlite3", close_at)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if args.keep_log:
            shutil.copy(Path(state) / "connector.log", args.keep_log)
        shutil.rmtree(state, ignore_errors=True)
    return {
        "mode": "bulk",
        "meters": args.meters,
        "readings_per_window": args.per_meter,
        "window_s": length,
        "bulk_load_s": round(loaded, 1),
        "connector_ready_s_before_close": round(ready_s, 1),
        "confirmed_s_after_close": round(took, 1),
        "transfers_per_s": round(args.meters / took, 1),
        "settings": args.sets or "default",
        "outbox": state_counts,
        "ledger_blocks_after_close": blocks,
        "cpu_s_per_process": cpu,  # by role: http, ledger, closer, and the dev ledger's own process
        "load_avg_at_close": round(load0, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
    }


def ledger_blocks(path: Path, since: datetime) -> dict:
    """How many blocks the dev ledger committed since `since`, and their transactions per block."""
    try:
        with closing(sqlite3.connect(path)) as db:
            rows = db.execute("SELECT tx_ids FROM blocks WHERE time >= ?", (since.isoformat(),)).fetchall()
    except sqlite3.Error as exc:
        return {"error": str(exc)}
    sizes = [len(json.loads(r[0])) for r in rows]
    return {"blocks": len(sizes), "txs_per_block": round(sum(sizes) / max(1, len(sizes)), 1)}


def process_roles(primary: int) -> dict[str, int]:
    """{role: pid} of the connector's processes: the primary ("http"), the ones it started with `--role`,
    and the embedded dev ledger's own process (a child of the ledger process, "devledger")."""
    roles = {"http": primary}
    for pid in connector_pids(primary)[1:]:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        role = argv[argv.index(b"--role") + 1].decode() if b"--role" in argv else str(pid)
        roles[role] = pid
        for child in connector_pids(pid)[1:]:
            if b"devledger" in Path(f"/proc/{child}/cmdline").read_bytes():
                roles["devledger"] = child
    return roles


def _py_spy(out: str, pid: int, gil: bool) -> subprocess.Popen:
    """py-spy sampling `pid` into `out` (raw collapsed stacks) until SIGINT; with `gil`, only the thread
    holding the GIL (where the process's Python CPU goes, not where its threads wait)."""
    spy = Path(sys.executable).parent / "py-spy"
    cmd = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--output", out, "--rate", "50"]
    cmd += ["--gil"] if gil else []
    return subprocess.Popen(cmd + ["--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=15, help="length of the closed-loop phase")
    ap.add_argument("--window", type=int, default=60, help="window.length in seconds")
    ap.add_argument("--no-paced", action="store_true", help="send nothing after phase 1 (anchoring alone)")
    ap.add_argument("--closer-only", action="store_true", help="the window closer alone, in-process")
    ap.add_argument("--batch", type=int, default=BATCH, help="closer batch (--closer-only)")
    ap.add_argument("--per-meter", type=int, default=3, help="readings per meter and window (bulk loads)")
    ap.add_argument(
        "--postgresql", action="store_true", help="the store on PostgreSQL (a fresh schema), not SQLite"
    )
    ap.add_argument("--bulk", action="store_true", help="prepared meters, one window's readings loaded in")
    ap.add_argument("--data", default=None, help="--bulk: the prepared state folder (built if absent)")
    ap.add_argument("--lead", type=float, default=60, help="--bulk: seconds to load and start before")
    ap.add_argument(
        "--py-spy",
        default=None,
        help="--bulk: sample the ledger, closer and dev ledger processes into FILE.ROLE",
    )
    ap.add_argument("--py-spy-gil", action="store_true", help="--py-spy: only the thread holding the GIL")
    ap.add_argument("--keep-log", default=None, help="--bulk: copy the connector's log here at the end")
    ap.add_argument("--prepare-only", action="store_true", help="--bulk's preparation alone")
    ap.add_argument(
        "--set", action="append", default=[], help="--bulk: a setting for the run, e.g. ledger.mode=sync"
    )
    args = ap.parse_args()
    args.sets = dict(item.split("=", 1) for item in args.set)
    if args.prepare_only:
        prepare(Path(args.data or default_data(args.meters)), args.meters, args.window)
        return
    if args.bulk:
        print(json.dumps(bulk_run(args), indent=2), flush=True)
        return
    if args.closer_only:
        result = closer_only(args.meters, args.per_meter, args.batch, args.postgresql)
        print(json.dumps(result, indent=2), flush=True)
        return
    with ExitStack() as stack:
        state = tempfile.mkdtemp(prefix="anchoring-bench-")
        stack.callback(shutil.rmtree, state, ignore_errors=True)
        store_url = (
            stack.enter_context(fresh_schema()) if args.postgresql else f"sqlite:///{state}/store.sqlite3"
        )
        result = live_run(args, state, store_url)
        result["store"] = "postgresql" if args.postgresql else "sqlite"
        print(json.dumps(result, indent=2), flush=True)


def write_holds(port: int) -> dict[str, dict[str, float]]:
    """{role: {bucket bound or "sum": value}} of `connector_store_write_hold_seconds` from /metrics."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "connector_store_write_hold_seconds":
            continue
        for sample in family.samples:
            role = sample.labels.get("role", "")
            if sample.name.endswith("_bucket"):
                found.setdefault(role, {})[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_sum"):
                found.setdefault(role, {})["sum"] = sample.value
    return found


def holds_between(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict:
    """Per role, the write turns taken between two `write_holds` readings: how many, how many held the
    lock over 10, 20 and 50 ms, and the seconds held in all."""
    out = {}
    for role, now in after.items():
        was = before.get(role, {})
        diff = {k: v - was.get(k, 0.0) for k, v in now.items()}
        total = diff.get("+Inf", 0.0)
        out[role] = {
            "turns": int(total),
            "over_10ms": int(total - diff.get("0.01", 0.0)),
            "over_20ms": int(total - diff.get("0.02", 0.0)),
            "over_50ms": int(total - diff.get("0.05", 0.0)),
            "held_s": round(diff.get("sum", 0.0), 2),
        }
    return out


def live_run(args: argparse.Namespace, state: str, store_url: str) -> dict:
    """Phases 1-3 of the module docstring against a connector on `store_url`, its files in `state`."""
    port = free_port()
    # Start just after a window boundary, so the closed-loop phase fits in one window.
    length = args.window
    while (time.time() % length) > 2:
        time.sleep(0.2)
    proc = start(store_url, port, state, length, args.sets)
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
            before = write_holds(port)
            paced = measured(proc, pace)
            paced["write_holds"] = holds_between(before, write_holds(port))
            print(json.dumps({"paced": paced}), flush=True)
        watcher.join(timeout=900)
        result: dict = {
            "meters": args.meters,
            "window_s": length,
            "settings": args.sets or "default",
            "first_window_end": first.isoformat(),
            "closed_window_end_plus_grace": close_at.isoformat(),
            "confirmed_s_after_close": round(done["at"] - close_at.timestamp(), 1) if "at" in done else None,
            "outbox": {k: v for k, v in done.items() if k != "at"},
            "closed_loop": closed,
            "paced": paced,
        }
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
