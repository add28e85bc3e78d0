"""Soak: seed 004's scale (2,000 meters every 5 s = 400 notifications/s) against a connector process
writing to an external dev ledger and relaying to anvil (the settlement contract), for N minutes; then let
it drain and check every promise.

Reports: notifications acked, acknowledgement latency p50/p99 (from the scheduled send time, so queueing is
not hidden), the RSS of every connector process over time (the HTTP process, any more HTTP workers and the
ledger process, found from the HTTP process's pid through /proc) with each one's maximum and its slope over
the later half of the load, how long the drain took, readings lost, windows not anchored exactly once,
broken asset chains, and windows not recorded on chain exactly once (final relay, one IntervalRecorded
each, on-chain chain head equal to the stored windows').

`--embedded` runs the dev ledger inside the ledger process, as the default configuration does, instead of
in a process of its own; `--no-drain` stops after the load and reports the work left instead of waiting
for it and checking the chains (for a load the ledger process cannot keep up with, e.g. 100,000 meters).

Usage: python -m bench.soak [--minutes 10] [--meters 2000] [--interval 5] [--window 120] [--store URL | --pg]
       [--workers N] [--no-ethereum] [--embedded] [--no-drain]
Prints one JSON line (exit 1 if any promise is broken).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bench.backlog_bench import ledger_client
from connector.store.db import Store, open_store
from connector.store.models import Meter, Window
from tests.pgschema import PG_URL, fresh_schema
from tests.reliability import checks
from tests.reliability.harness import (
    HEADERS,
    ConnectorProcess,
    EthereumNode,
    LedgerProcess,
    children,
    notification,
    wait_until,
)

RssSample = tuple[float, dict[str, float]]  # seconds since the start, RSS MiB per process role


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of a process in MiB (Linux /proc); `field` RssAnon for its anonymous memory alone
    (the heap: VmRSS also counts the store's memory-mapped database pages it has read)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of `values` in milliseconds (0 when empty)."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else 0.0


class SoakSender:
    """Open-loop sender: notification i is due at start + i/rate, for meter i % meters, stamped when sent."""

    def __init__(self, url: str, meters: int, interval: float, seconds: float) -> None:
        self.url, self.meters, self.seconds = url + "/notify", meters, seconds
        self.rate = meters / interval
        self.acked: list[tuple[str, datetime]] = []
        self.failed = 0
        self.latencies: list[float] = []

    async def _post(self, session: aiohttp.ClientSession, i: int, due: float) -> None:
        entity = f"urn:ngsi-ld:SMX:SOAK{i % self.meters}"
        when = datetime.now(UTC)
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
        try:
            async with session.post(
                self.url, data=notification(entity, when, float(i % 5000)), headers=HEADERS
            ) as r:
                await r.read()
                ok = r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        self.latencies.append(time.perf_counter() - due)
        if ok:
            self.acked.append((entity, when))
        else:
            self.failed += 1

    async def run(self) -> None:
        """Send for `seconds` at `rate`, then wait for the answers still in flight."""
        start = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=timeout
        ) as session:
            tasks = set()
            for i in range(int(self.seconds * self.rate)):
                due = start + i / self.rate
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._post(session, i, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)


def process_roles(primary: int) -> dict[str, int]:
    """The connector's processes by role: `http` (the primary), `http-1`... (more HTTP workers), `ledger`
    (the ledger process) and `devledger` (its embedded dev ledger), the children found through their
    `--primary-pid` (the dev ledger: `--parent-pid`) in /proc."""
    roles = {"http": primary}
    workers = 0
    for pid, argv in sorted(children(primary).items()):
        if b"--role" in argv:
            roles[argv[argv.index(b"--role") + 1].decode()] = pid
        else:
            workers += 1
            roles[f"http-{workers}"] = pid
    for pid in children(roles["ledger"], b"--parent-pid") if "ledger" in roles else ():
        roles["devledger"] = pid
    return roles


def rss_by_role(primary: int) -> dict[str, float]:
    """RSS in MiB of each of the connector's processes, and as `ROLE:anon` its anonymous part (a process
    gone meanwhile is left out)."""
    found = {}
    for role, pid in process_roles(primary).items():
        with contextlib.suppress(OSError):
            found[role] = rss_mb(pid)
            found[f"{role}:anon"] = rss_mb(pid, "RssAnon")
    return found


async def sample_rss(
    pid: int, every: float, samples: list[RssSample], done: asyncio.Event, start: float
) -> None:
    """Append (seconds since `start`, RSS MiB per process role) every `every` seconds until `done`."""
    while not done.is_set():
        samples.append((round(time.monotonic() - start, 1), rss_by_role(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every)


def rss_summary(samples: list[RssSample]) -> dict[str, dict[str, float]]:
    """Per process role: first, last and maximum RSS (MiB), and the least-squares slope (MiB per minute)
    over the samples of the later half of the run, when the meters are registered and windows close."""
    summary = {}
    for role in sorted({r for _t, by_role in samples for r in by_role}):
        points = [(t, by_role[role]) for t, by_role in samples if role in by_role]
        later = [p for p in points if p[0] >= points[-1][0] / 2]
        summary[role] = {
            "first_mb": points[0][1],
            "last_mb": points[-1][1],
            "max_mb": max(v for _t, v in points),
            "slope_mb_per_min_later_half": round(60 * slope(later), 2),
        }
    return summary


def slope(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (x, y) points (0 for fewer than two distinct x)."""
    n = len(points)
    mean_x = sum(x for x, _y in points) / n if n else 0.0
    mean_y = sum(y for _x, y in points) / n if n else 0.0
    var = sum((x - mean_x) ** 2 for x, _y in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


async def drive(connector: ConnectorProcess, args: argparse.Namespace) -> tuple[SoakSender, list[RssSample]]:
    """Run the sender and the RSS sampler side by side."""
    sender = SoakSender(connector.url, args.meters, args.interval, args.minutes * 60)
    samples: list[RssSample] = []
    done = asyncio.Event()
    assert connector.proc is not None
    start = time.monotonic()
    sampler = asyncio.create_task(sample_rss(connector.proc.pid, args.rss_every, samples, done, start))
    await sender.run()  # until the last answer: later than `minutes` when the connector falls behind
    samples.append((round(time.monotonic() - start, 1), rss_by_role(connector.proc.pid)))
    done.set()
    await sampler
    return sender, samples


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The whole run: ledger, connector, load, drain, checks. Returns the figures."""
    store_url = args.store or f"sqlite:///{workdir}/soak.sqlite3"
    ledger = None if args.embedded else LedgerProcess(workdir / "devledger").start()
    node = None if args.no_ethereum else EthereumNode(workdir, interval_length=args.window).start()
    extra = {"CONNECTOR_SERVER_WORKERS": str(args.workers), **(node.env() if node else {})}
    extra.update(embedded_ledger_env(workdir) if args.embedded else {})
    connector = ConnectorProcess(
        store_url,
        workdir,
        ledger.url if ledger else "",
        window_length=args.window,
        window_grace=args.grace,
        extra_env=extra,
    ).start()
    store = open_store(store_url)
    try:
        sender, samples = asyncio.run(drive(connector, args))
        result = {
            "meters": args.meters,
            "interval_s": args.interval,
            "window_s": args.window,
            "minutes": args.minutes,
            "ledger": "embedded in the ledger process" if args.embedded else "external dev ledger process",
            "target_rate": round(sender.rate, 1),
            "sent": len(sender.latencies),
            "acked": len(sender.acked),
            "failed": sender.failed,
            "ack_p50_ms": percentile(sender.latencies, 0.50),
            "ack_p99_ms": percentile(sender.latencies, 0.99),
            "ack_max_ms": percentile(sender.latencies, 1.0),
            "workers": args.workers,
            "rss": rss_summary(samples),
            "rss_mb": samples,
        }
        if args.no_drain:
            return {**result, "left_after_load": {**checks.backlog(store), **windows_and_meters(store)}}
        assert connector.proc is not None
        client = ledger.client() if ledger else ledger_client(connector.proc.pid)
        return {**result, **drain_and_check(args, store, connector, client, node, sender)}
    finally:
        connector.stop()
        if ledger is not None:
            ledger.stop()
        if node is not None:
            node.stop()
        store.dispose()


def embedded_ledger_env(workdir: Path) -> dict[str, str]:
    """Settings that put the dev ledger inside the connector's ledger process (the default layout)."""
    return {
        "CONNECTOR_LEDGER_EMBEDDED": "true",
        "CONNECTOR_LEDGER_URLS": "[]",
        "CONNECTOR_LEDGER_EMBEDDED_PORT": "0",
        "CONNECTOR_LEDGER_EMBEDDED_WS_PORT": "0",
        "CONNECTOR_LEDGER_EMBEDDED_DATA": str(workdir / "devledger"),
    }


def windows_and_meters(store: Store) -> dict[str, int]:
    """How many windows are closed and how many meters registered."""
    with store.reading() as conn:
        windows = conn.scalar(select(func.count()).select_from(Window)) or 0
        meters = conn.scalar(select(func.count()).select_from(Meter)) or 0
    return {"windows": int(windows), "meters": int(meters)}


def drain_and_check(
    args: argparse.Namespace,
    store: Store,
    connector: ConnectorProcess,
    client: Any,
    node: EthereumNode | None,
    sender: SoakSender,
) -> dict[str, Any]:
    """Wait until every window is closed, anchored (and relayed), then check every promise."""
    drain_started = time.monotonic()
    done = lambda: checks.drained(store) and (node is None or checks.relayed(store))  # noqa: E731
    wait_until(done, args.drain_timeout, "the soak to drain (ledger and relay)", every=2)
    drain_s = time.monotonic() - drain_started
    rss_after_drain = rss_by_role(connector.proc.pid) if connector.proc else {}
    problems = checks.outbox_problems(store)
    if not args.skip_chain_check:
        problems += checks.chain_problems(client, store)
    if node is not None:
        problems += checks.relay_problems(store, node.contract())
    return {
        "missing": len(checks.missing_readings(store, sender.acked)),
        "windows": windows_and_meters(store)["windows"],
        "relayed": checks.final_relays(store) if node else None,
        "drain_s": round(drain_s, 1),
        "rss_after_drain_mb": rss_after_drain,
        "problems": problems[:20],
        "problem_count": len(problems),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its JSON line; exit 1 when any promise is broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--meters", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between two readings of a meter")
    parser.add_argument("--window", type=int, default=120, help="window length in seconds")
    parser.add_argument("--grace", type=int, default=5)
    parser.add_argument("--store", default="", help="store URL (default: SQLite in a temporary folder)")
    parser.add_argument(
        "--pg", action="store_true", help="a fresh schema in the test PostgreSQL, dropped after"
    )
    parser.add_argument("--rss-every", type=float, default=10.0)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--skip-chain-check", action="store_true")
    parser.add_argument("--no-ethereum", action="store_true", help="no anvil: anchor on the ledger only")
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes (server.workers)")
    parser.add_argument("--embedded", action="store_true", help="the dev ledger in the ledger process")
    parser.add_argument("--no-drain", action="store_true", help="report the work left instead of draining")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.pg:
            args.store = stack.enter_context(fresh_schema(PG_URL))
        result = soak(args, Path(tmp))
    print(json.dumps(result))
    return 1 if result.get("problem_count") or result.get("missing") or result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
