"""Soak: seed 004's scale (2,000 meters every 5 s = 400 notifications/s) against a connector process
writing to an external dev ledger and relaying to anvil (the settlement contract), for N minutes; then let
it drain and check every promise.

Reports: notifications acked, acknowledgement latency p50/p99 (from the scheduled send time, so queueing is
not hidden), the connector's RSS over time, how long the drain took, readings lost, windows not anchored
exactly once, broken asset chains, and windows not recorded on chain exactly once (final relay, one
IntervalRecorded each, on-chain chain head equal to the stored windows').

Usage: python -m bench.soak [--minutes 10] [--meters 2000] [--interval 5] [--window 120] [--store URL | --pg]
       [--workers N] [--no-ethereum]
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

from connector.store.db import open_store
from tests.pgschema import PG_URL, fresh_schema
from tests.reliability import checks
from tests.reliability.harness import (
    HEADERS,
    ConnectorProcess,
    EthereumNode,
    LedgerProcess,
    notification,
    wait_until,
)


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
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


async def sample_rss(pid: int, every: float, samples: list[tuple[float, float]], done: asyncio.Event) -> None:
    """Append (seconds since start, RSS MiB) every `every` seconds until `done`."""
    start = time.monotonic()
    while not done.is_set():
        samples.append((round(time.monotonic() - start, 1), rss_mb(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every)


async def drive(connector: ConnectorProcess, args: argparse.Namespace) -> tuple[SoakSender, list]:
    """Run the sender and the RSS sampler side by side."""
    sender = SoakSender(connector.url, args.meters, args.interval, args.minutes * 60)
    samples: list[tuple[float, float]] = []
    done = asyncio.Event()
    assert connector.proc is not None
    sampler = asyncio.create_task(sample_rss(connector.proc.pid, args.rss_every, samples, done))
    await sender.run()
    samples.append((round(args.minutes * 60, 1), rss_mb(connector.proc.pid)))
    done.set()
    await sampler
    return sender, samples


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The whole run: ledger, connector, load, drain, checks. Returns the figures."""
    store_url = args.store or f"sqlite:///{workdir}/soak.sqlite3"
    ledger = LedgerProcess(workdir / "devledger").start()
    node = None if args.no_ethereum else EthereumNode(workdir, interval_length=args.window).start()
    extra = {"CONNECTOR_SERVER_WORKERS": str(args.workers), **(node.env() if node else {})}
    connector = ConnectorProcess(
        store_url, workdir, ledger.url, window_length=args.window, window_grace=args.grace, extra_env=extra
    ).start()
    store = open_store(store_url)
    try:
        sender, samples = asyncio.run(drive(connector, args))
        drain_started = time.monotonic()
        done = lambda: checks.drained(store) and (node is None or checks.relayed(store))  # noqa: E731
        wait_until(done, args.drain_timeout, "the soak to drain (ledger and relay)", every=2)
        drain_s = time.monotonic() - drain_started
        rss_after_drain = rss_mb(connector.proc.pid) if connector.proc else 0.0
        problems = checks.outbox_problems(store)
        if not args.skip_chain_check:
            problems += checks.chain_problems(ledger.client(), store)
        if node is not None:
            problems += checks.relay_problems(store, node.contract())
        windows = sum(len(checks.windows_of(store, m.id)) for m in checks.meter_rows(store))
        return {
            "meters": args.meters,
            "interval_s": args.interval,
            "minutes": args.minutes,
            "target_rate": round(sender.rate, 1),
            "sent": len(sender.latencies),
            "acked": len(sender.acked),
            "failed": sender.failed,
            "ack_p50_ms": percentile(sender.latencies, 0.50),
            "ack_p99_ms": percentile(sender.latencies, 0.99),
            "ack_max_ms": percentile(sender.latencies, 1.0),
            "missing": len(checks.missing_readings(store, sender.acked)),
            "windows": windows,
            "relayed": checks.final_relays(store) if node else None,
            "workers": args.workers,
            "drain_s": round(drain_s, 1),
            "rss_mb": samples,
            "rss_after_drain_mb": rss_after_drain,
            "problems": problems[:20],
            "problem_count": len(problems),
        }
    finally:
        connector.stop()
        ledger.stop()
        if node is not None:
            node.stop()
        store.dispose()


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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.pg:
            args.store = stack.enter_context(fresh_schema(PG_URL))
        result = soak(args, Path(tmp))
    print(json.dumps(result))
    return 1 if result["problem_count"] or result["missing"] or result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
