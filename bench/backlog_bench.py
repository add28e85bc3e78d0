"""Backlog benchmark (issue 18): a day of readings for windows that have already closed, arriving at once.

The connector runs as `smartmeter-connector run` in the default configuration (embedded dev ledger in the
ledger process, SQLite, 15-minute windows), started by bench/anchoring_bench.py's `start` with 900 s of
grace instead of 120 s: every backlog window is due at once either way, and the live window cannot close
while the checks run (a run whose checks crossed the window's end found 13 meters whose just-closed live
window was stored but its TRANSFER not yet confirmed). The sender is wrk with one
thread and 32 connections (bench/wrk_notify.lua), one single-entity notification per reading, meter
i % METERS, so the readings of one meter arrive in time order:

1. registration: one reading per meter in a window 98 windows back (each meter's CREATE and first
   TRANSFER), then wait until that is anchored, so both measured phases start with an idle ledger process;
2. live: `--live` readings at the current time (1 ms apart, the current window): the rate to compare with;
3. backlog: METERS x 96 readings, one per meter per 15-minute window (900,000 / METERS ms apart, 900 ms
   for 1,000 meters, so reading i falls in window i // METERS) for the 96 windows that ended one window
   before the current one;
4. drain: until every backlog window is closed and every ledger outbox row confirmed (windows closed/s
   and TRANSFERs confirmed/s sampled on the way);
5. checks: every meter has its 96 backlog windows, in time order, each one's prev_chain_hash the chain
   hash before it; on the dev ledger each asset is CREATE then one TRANSFER per stored window, in window
   order, each spending the one before (tests/reliability/checks.chain_problems).

A phase's rate is its readings over the time from starting wrk until the store holds all of them (the
store is polled every 0.2 s; then wrk gets SIGINT). The connector must have the current window to itself
for the whole ingest: if less than `--margin` seconds remain in it (default: 60 s plus the ingest at 1,000
live and 500 backlog readings/s), the bench first waits for the next.

    flock /tmp/bench.lock PYTHONPATH=$PWD .venv/bin/python -m bench.backlog_bench
    PYTHONPATH=$PWD .venv/bin/python -m bench.backlog_bench --meters 100 --no-checks   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.anchoring_bench import anchored, start
from bench.ingest_bench import ROOT, measured
from connector.store.db import Store, open_store
from connector.store.models import LedgerOutbox, Reading, Window
from tests.connector.test_durability import free_port
from tests.reliability import checks
from tests.reliability.harness import child_pids

LENGTH = 900  # the default window length, seconds
DAY = 96  # 15-minute windows in a day
CONNECTIONS = 32


@dataclass(frozen=True)
class Plan:
    """Where each phase's readings fall: window starts as Unix seconds."""

    meters: int
    current: int  # start of the current window (the live readings)

    @property
    def registration(self) -> int:
        return self.current - (DAY + 2) * LENGTH

    @property
    def backlog(self) -> int:
        """The first backlog window; the last one ends one window before the current one starts."""
        return self.current - (DAY + 1) * LENGTH


def stamp(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def readings_since(store: Store, lo: int, hi: int) -> int:
    """Readings stored in windows starting in [lo, hi)."""
    with store.reading() as conn:
        query = select(func.count()).where(
            Reading.window_start >= stamp(lo), Reading.window_start < stamp(hi)
        )
        return int(conn.scalar(query) or 0)


def send(
    url: str, store: Store, plan: Plan, t0_ms: int, step_ms: int, count: int, span: tuple[int, int]
) -> dict:
    """Readings 0..count-1 (meter i % meters, observed at t0 + i * step) from wrk, until the store holds
    `count` readings more in windows [span): the rate, wrk's latency and the store's count."""
    script = str(ROOT / "bench" / "wrk_notify.lua")
    # T0 is whole seconds in the script: the milliseconds go into the offset's first reading instead.
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", "-d3600s", "-s", script, url, "--"]
    cmd += [str(plan.meters), "-1", "0", str(t0_ms // 1000), "0", str(step_ms), str(count - 1)]
    before = readings_since(store, *span)
    began = time.monotonic()
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stored, last_change, seen = before, began, before
    while stored - before < count and time.monotonic() - last_change < 15 and wrk.poll() is None:
        time.sleep(0.2)
        stored = readings_since(store, *span)
        if stored != seen:
            seen, last_change = stored, time.monotonic()
    took = (last_change if stored - before < count else time.monotonic()) - began
    wrk.send_signal(signal.SIGINT)
    out, _err = wrk.communicate(timeout=30)
    r = json.loads(out.strip().splitlines()[-1])
    new = stored - before
    return {
        "ok": new,
        "sent": count,
        "stored": new,
        "failed": r["non2xx"] + r["errors"],
        "seconds": round(took, 2),
        "notifications_per_s": round(new / took, 1),
        "readings_per_s": round(new / took, 1),
        "p50_ms": round(r["p50_us"] / 1000, 2),
        "p99_ms": round(r["p99_us"] / 1000, 2),
    }


def progress(store: Store) -> tuple[int, int]:
    """Closed windows and confirmed TRANSFERs so far."""
    with store.reading() as conn:
        windows = int(conn.scalar(select(func.count()).select_from(Window)) or 0)
        query = select(func.count()).where(
            LedgerOutbox.operation == "TRANSFER", LedgerOutbox.status == "confirmed"
        )
        return windows, int(conn.scalar(query) or 0)


def drain(store: Store, store_url: str, plan: Plan, timeout: float) -> dict[str, Any]:
    """Wait until every window before the current one is closed and every outbox row confirmed; the
    closer's and the writer's pace on the way (per 10 s sample) and the seconds it took."""
    began = time.monotonic()
    samples: list[tuple[float, int, int]] = []
    state: dict[str, int] = {}
    while time.monotonic() - began < timeout:
        done, state = anchored(store_url, stamp(plan.current))
        samples.append((round(time.monotonic() - began, 1), *progress(store)))
        if done:
            break
        time.sleep(10 - (time.monotonic() - began) % 10)
    pace = [
        {"t": b[0], "windows_closed_per_s": round((b[1] - a[1]) / (b[0] - a[0]), 1),
         "transfers_confirmed_per_s": round((b[2] - a[2]) / (b[0] - a[0]), 1)}
        for a, b in zip(samples, samples[1:], strict=False)
    ]  # fmt: skip
    return {"seconds": round(time.monotonic() - began, 1), "done": done, "state": state, "pace": pace}


def store_chain_problems(store: Store, plan: Plan) -> list[str]:
    """Every meter: its 96 backlog windows present once each, all its windows in time order, the first
    linked to the meter's chain seed, each next one to the chain hash before it, the head the last one."""
    problems: list[str] = []
    lo, hi = stamp(plan.backlog), stamp(plan.backlog + DAY * LENGTH)
    for meter in checks.meter_rows(store):
        windows = checks.windows_of(store, meter.id)
        backlog = [w for w in windows if lo <= _aware(w.start) < hi]
        if len({w.start for w in backlog}) != DAY or len(backlog) != DAY:
            problems.append(f"{meter.entity_id}: {len(backlog)} backlog windows, not {DAY}")
        prev = meter.chain_seed
        for a, b in zip(windows, windows[1:], strict=False):
            if not a.start < b.start:
                problems.append(f"{meter.entity_id}: window {b.start} after {a.start}")
        for w in windows:
            if w.prev_chain_hash != prev:
                problems.append(f"{meter.entity_id}: chain broken at {w.start}")
            prev = w.chain_hash
        if meter.chain_head != prev:
            problems.append(f"{meter.entity_id}: chain head is not the last window's hash")
    return problems


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def ledger_client(primary: int) -> Any:
    """A bigchaindb-driver client on the embedded dev ledger, whose port the ledger process was given."""
    from bigchaindb_driver import BigchainDB

    pid = child_pids(primary, b"--role")[0]  # the primary gave the port to its ledger and closer processes
    env = dict(v.split(b"=", 1) for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in v)
    return BigchainDB(f"http://127.0.0.1:{int(env[b'CONNECTOR_LEDGER_EMBEDDED_PORT'])}", timeout=30)


def wait_for_room(margin: float) -> int:
    """The current window's start, once at least `margin` seconds of it remain (else the next one's)."""
    now = time.time()
    current = int(now) - int(now) % LENGTH
    if current + LENGTH - now < margin:
        time.sleep(current + LENGTH - now + 1)
        current += LENGTH
    return current


def run(args: argparse.Namespace, state: str) -> dict[str, Any]:
    store_url = f"sqlite:///{state}/store.sqlite3"
    port = free_port()
    # Room for the whole ingest in the current window: about 500 backlog readings/s at the least.
    margin = args.margin or 60 + args.live / 1000 + args.meters * DAY / 500
    plan = Plan(args.meters, wait_for_room(margin))
    # A window's grace of one window: every backlog window is due at once (the last one ended a window
    # before the current one), and the live window closes only 15 minutes after the current one ends, so
    # it cannot close (and anchor some meters but not yet others) while the checks read the chains.
    proc = start(store_url, port, state, LENGTH, {"window.grace": str(LENGTH)})
    url = f"http://127.0.0.1:{port}/notify"
    store = open_store(store_url, 1)
    try:
        first = plan.registration
        send(url, store, plan, first * 1000, 0, plan.meters, (first, first + LENGTH))
        registered = drain(store, store_url, Plan(plan.meters, first + LENGTH), 300)
        span = (plan.current, plan.current + 2 * LENGTH)
        live = measured(proc, lambda: send(url, store, plan, int(time.time()) * 1000, 1, args.live, span))
        print(json.dumps({"live": live}), flush=True)
        count = plan.meters * DAY
        span = (plan.backlog, plan.backlog + DAY * LENGTH)
        step = LENGTH * 1000 // plan.meters  # one reading per meter per window
        backlog = measured(proc, lambda: send(url, store, plan, plan.backlog * 1000, step, count, span))
        print(json.dumps({"backlog": backlog}), flush=True)
        drained = drain(store, store_url, plan, args.drain_timeout)
        print(json.dumps({"drain": drained}), flush=True)
        problems = [] if args.no_checks else check(store, plan, proc.pid)
        return {
            "meters": plan.meters,
            "current_window": stamp(plan.current).isoformat(),
            "registration_anchored_s": registered["seconds"],
            "live": live,
            "backlog": backlog,
            "backlog_vs_live": round(backlog["readings_per_s"] / live["readings_per_s"], 2),
            "drain": drained,
            "problem_count": len(problems),
            "problems": problems[:20],
        }
    finally:
        store.dispose()
        proc.terminate()
        proc.wait(timeout=60)


def check(store: Store, plan: Plan, primary: int) -> list[str]:
    """The store's chains, then the outbox (each window once, confirmed) and the ledger's histories."""
    problems = store_chain_problems(store, plan)
    problems += checks.outbox_problems(store)
    return problems + checks.chain_problems(ledger_client(primary), store)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meters", type=int, default=1000, help="a divisor of 900,000")
    ap.add_argument("--live", type=int, default=30_000, help="readings in the live phase")
    ap.add_argument("--margin", type=float, default=0, help="seconds the current window must still have")
    ap.add_argument("--drain-timeout", type=float, default=1800)
    ap.add_argument("--no-checks", action="store_true", help="skip the chain checks (a quick look)")
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="backlog-bench-")
    print(f"uptime before: {os.getloadavg()}", flush=True)
    try:
        result = run(args, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
