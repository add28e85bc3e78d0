"""Dev ledger benchmark: commit throughput and GET latency, against a devledger subprocess.

    .venv/bin/python -m bench.devledger_bench [--quick] [--out docs/benchmarks/devledger.md]

Writes its report (Markdown) to --out. The ledger runs as `smartmeter-connector devledger --data TMP` in its
own process (file-backed, SQLite synchronous=FULL). Every transaction is prepared and signed before the
timed sections. Sequential runs use bigchaindb-driver's send_commit; concurrent runs post pre-serialized
bodies over keep-alive connections from a separate asyncio process (cheap, so the figure is the ledger's on
the shared cores) and end when the last transactions read back committed; the ledger process's CPU time
per transaction is reported beside them. The 100,000 transactions for the GET latencies are real signed
CREATEs written directly through the storage layer (`Storage.append_block`, in blocks of 1,000) to save the
HTTP round trips; they are then served by the restarted ledger like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bigchaindb_driver import BigchainDB
from bigchaindb_driver.crypto import CryptoKeypair, generate_keypair
from bigchaindb_driver.offchain import fulfill_transaction, prepare_transaction

from bench.devledger_reads import (
    SITES,
    chain_latencies,
    get_latencies,
    log,
    preload,
    preload_chain,
    signed_create,
)
from bench.devledger_report import report

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def ledger_process(data: Path, block_interval: float = 0.0) -> Iterator[tuple[str, int]]:
    """A devledger subprocess on `data` (with `--block-interval` when > 0); yields its URL and process id."""
    port, ws_port = free_port(), free_port()
    command = [sys.executable, "-m", "connector", "devledger", "--port", str(port), "--ws-port", str(ws_port)]
    if block_interval:
        command += ["--block-interval", f"{block_interval}s"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with subprocess.Popen(
        [*command, "--data", str(data)], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            assert "listening on" in line, line
            log(f"ledger up in {time.perf_counter() - started:.2f} s ({line.strip()})")
            yield f"http://127.0.0.1:{port}", proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def make_transfers(creates: Sequence[dict[str, Any]], key: Any, to: str) -> list[dict[str, Any]]:
    """One signed TRANSFER of each CREATE's output to `to`."""
    out = []
    for tx in creates:
        spend = {
            "fulfillment": tx["outputs"][0]["condition"]["details"],
            "fulfills": {"output_index": 0, "transaction_id": tx["id"]},
            "owners_before": tx["outputs"][0]["public_keys"],
        }
        prepared = prepare_transaction(
            operation="TRANSFER", inputs=[spend], asset={"id": tx["id"]}, recipients=to
        )
        out.append(fulfill_transaction(prepared, private_keys=key.private_key))
    return out


def sequential_commit(url: str, txs: Sequence[dict[str, Any]]) -> float:
    """tx/s of bigchaindb-driver send_commit one after the other."""
    bdb = BigchainDB(url)
    started = time.perf_counter()
    for tx in txs:
        bdb.transactions.send_commit(tx)
    return len(txs) / (time.perf_counter() - started)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def concurrent_post(
    url: str, pid: int, txs: Sequence[dict[str, Any]], mode: str, connections: int
) -> dict[str, float]:
    """tx/s of POSTs over `connections` keep-alive connections until every one is committed, and the
    ledger's CPU ms per transaction. The client is a separate asyncio process sending pre-serialized
    bodies, so it takes little of the CPU the ledger shares with it."""
    bodies = [json.dumps(tx).encode() for tx in txs]
    last_ids = [tx["id"] for tx in txs[-connections:]]
    cpu = server_cpu(pid)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        elapsed = pool.submit(post_in_process, url, bodies, mode, connections, last_ids).result()
    cpu = server_cpu(pid) - cpu
    return {"tx_s": len(txs) / elapsed, "cpu_ms": cpu * 1000 / len(txs)}


def post_in_process(url: str, bodies: list[bytes], mode: str, connections: int, last_ids: list[str]) -> float:
    """Seconds to POST every body (each must answer 202) and read the last ones back committed."""
    return asyncio.run(_post_all(url, bodies, mode, connections, last_ids))


async def _post_all(url: str, bodies: list[bytes], mode: str, connections: int, last_ids: list[str]) -> float:
    host, port = url.removeprefix("http://").split(":")
    streams = [await asyncio.open_connection(host, int(port)) for _ in range(connections)]
    pending = iter(bodies)
    started = time.perf_counter()

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for body in pending:
            head = f"POST /api/v1/transactions?mode={mode} HTTP/1.1\r\nHost: {host}\r\n"
            writer.write(
                f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            writer.write(body)
            status, answer = await _response(reader)
            assert status == 202, answer

    await asyncio.gather(*(worker(*stream) for stream in streams))
    reader, writer = streams[0]
    for tx_id in last_ids:
        while True:
            writer.write(f"GET /api/v1/transactions/{tx_id} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            if (await _response(reader))[0] == 200:
                break
            await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    return elapsed


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    return int(lines[0].split()[1]), await reader.readexactly(length)


def _sign_creates(args: tuple[str, str, int, int]) -> list[dict[str, Any]]:
    public, private, start, count = args
    key = CryptoKeypair(private, public)
    return [
        signed_create(key, {"meter": f"urn:ngsi-ld:Meter:{i}", "site": SITES[i % 10]}, {"n": i})
        for i in range(start, start + count)
    ]


def _sign_transfers(args: tuple[str, str, str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    public, private, to, creates = args
    return make_transfers(creates, CryptoKeypair(private, public), to)


def sign_all(pool: ProcessPoolExecutor, key: Any, to: str, creates: int) -> tuple[list[Any], list[Any]]:
    """`creates` signed CREATEs owned by `key` and one TRANSFER of each to `to`, signed in `pool`."""
    chunks = [(key.public_key, key.private_key, s, min(500, creates - s)) for s in range(0, creates, 500)]
    signed = [tx for chunk in pool.map(_sign_creates, chunks) for tx in chunk]
    parts = [(key.public_key, key.private_key, to, signed[s : s + 500]) for s in range(0, creates, 500)]
    return signed, [tx for chunk in pool.map(_sign_transfers, parts) for tx in chunk]


def run(
    txs: int,
    seq_txs: int,
    connections: int,
    preload_count: int,
    block_interval: float = 1.0,
    chain: int = 35_040,
) -> dict[str, Any]:
    """Every measurement; returns the figures."""
    results: dict[str, Any] = {}
    alice, bob = generate_keypair(), generate_keypair()
    # Commit mode under a block interval holds one HTTP thread per transaction until its block: 10 blocks.
    blocked_commit = 10 * connections if block_interval else 0
    total = 2 * txs + seq_txs + (txs + blocked_commit if block_interval else 0)
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(2) as pool:
        log(f"signing {total} CREATEs and {total} TRANSFERs")
        creates, transfers = sign_all(pool, alice, bob.public_key, total)
        seq = slice(0, seq_txs)
        tput = slice(seq_txs, seq_txs + txs)
        commit = slice(seq_txs + txs, seq_txs + 2 * txs)
        with ledger_process(Path(tmp) / "tput") as (url, pid):
            runs: list[tuple[str, Callable[[], Any]]] = [
                ("CREATE sequential send_commit", lambda: {"tx_s": sequential_commit(url, creates[seq])}),
                ("TRANSFER sequential send_commit", lambda: {"tx_s": sequential_commit(url, transfers[seq])}),
                (
                    "CREATE concurrent send_async",
                    lambda: concurrent_post(url, pid, creates[tput], "async", connections),
                ),
                (
                    "TRANSFER concurrent send_async",
                    lambda: concurrent_post(url, pid, transfers[tput], "async", connections),
                ),
                (
                    "CREATE concurrent send_commit",
                    lambda: concurrent_post(url, pid, creates[commit], "commit", connections),
                ),
                (
                    "TRANSFER concurrent send_commit",
                    lambda: concurrent_post(url, pid, transfers[commit], "commit", connections),
                ),
            ]
            results["load"] = {}
            for name, measure in runs:
                results["load"][name] = os.getloadavg()[0]
                results[name] = measure()
                log(f"{name}: {results[name]}")
        if block_interval:
            blocked = blocked_runs(
                Path(tmp), block_interval, creates, transfers, 2 * txs + seq_txs, txs, connections
            )
            results["load"].update(blocked.pop("load"))
            results.update(blocked)
        if preload_count:
            log(f"preloading {preload_count} transactions (signed, 2 processes)")
            preload(Path(tmp) / "big", preload_count)
            log(f"preloading one meter's chain of {chain:,} TRANSFERs")
            meter = preload_chain(Path(tmp) / "big", chain) if chain else None
            with ledger_process(Path(tmp) / "big") as (url, _):
                results["latency"] = get_latencies(url, preload_count)
                if meter is not None:
                    results["latency"].update(chain_latencies(url, meter, chain))
    return results


def blocked_runs(
    tmp: Path,
    interval: float,
    creates: list[Any],
    transfers: list[Any],
    start: int,
    txs: int,
    connections: int,
) -> dict[str, Any]:
    """Async and commit-mode TRANSFERs against a ledger cutting a block every `interval` seconds (the
    CREATEs they spend are committed first, untimed)."""
    results: dict[str, Any] = {"load": {}}
    commit_txs = 10 * connections
    with ledger_process(tmp / "blocked", interval) as (url, pid):
        concurrent_post(url, pid, creates[start : start + txs + commit_txs], "async", connections)
        tail = slice(start + txs, start + txs + commit_txs)
        runs: list[tuple[str, Callable[[], Any]]] = [
            (
                f"TRANSFER concurrent send_async, {interval:g} s blocks",
                lambda: concurrent_post(url, pid, transfers[start : start + txs], "async", connections),
            ),
            (
                f"TRANSFER concurrent send_commit, {interval:g} s blocks ({commit_txs} txs)",
                lambda: concurrent_post(url, pid, transfers[tail], "commit", connections),
            ),
        ]
        for name, measure in runs:
            results["load"][name] = os.getloadavg()[0]
            results[name] = measure()
            log(f"{name}: {results[name]}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--txs", type=int, default=3000, help="transactions per concurrent run (default 3000)"
    )
    parser.add_argument("--seq-txs", type=int, default=300, help="transactions per sequential run")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive client connections")
    parser.add_argument("--preload", type=int, default=100_000, help="stored txs for latencies (0 skips)")
    parser.add_argument(
        "--block-interval",
        type=float,
        default=1.0,
        help="seconds between blocks for the block-interval rows (0 skips them; default 1)",
    )
    parser.add_argument(
        "--chain",
        type=int,
        default=35_040,
        help="TRANSFERs in one meter's preloaded chain (default: a year of 15-minute windows; 0 skips)",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 / 100 txs and 10,000 stored (iterating)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "devledger.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.txs, args.seq_txs, args.preload = 1000, 100, min(args.preload, 10_000)
        args.chain = min(args.chain, 3_000)
    started = time.time()
    results = run(args.txs, args.seq_txs, args.connections, args.preload, args.block_interval, args.chain)
    command = "python -m bench.devledger_bench" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    log(f"figures: {json.dumps(results)}")  # kept in the log even if the report cannot be written
    args.out.write_text(report(results, args, command, time.time() - started))
    log(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
