"""Dev ledger benchmark: commit throughput and GET latency, against a devledger subprocess.

    .venv/bin/python -m bench.devledger_bench [--txs 500] [--preload 100000]

The ledger runs as `smartmeter-connector devledger --data TMP` in its own process (file-backed, SQLite
synchronous=FULL), the client here uses bigchaindb-driver / requests. Transactions are prepared and signed
before each timed section, so the figures are the ledger's, not the client's signing. The 100,000
transactions for the GET latencies are real signed CREATEs written directly through the storage layer
(`Storage.append_block`, in blocks of 1,000) to save the HTTP round trips; they are then served by the
restarted ledger like any other.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from bigchaindb_driver import BigchainDB
from bigchaindb_driver.crypto import generate_keypair
from bigchaindb_driver.offchain import fulfill_transaction, prepare_transaction

ROOT = Path(__file__).resolve().parents[1]
SITES = [
    "vienna",
    "graz",
    "linz",
    "salzburg",
    "innsbruck",
    "bregenz",
    "klagenfurt",
    "villach",
    "wels",
    "steyr",
]


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def ledger_process(data: Path) -> Iterator[str]:
    """A devledger subprocess on `data`; yields its URL."""
    port, ws_port = free_port(), free_port()
    command = [sys.executable, "-m", "connector", "devledger", "--port", str(port), "--ws-port", str(ws_port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with subprocess.Popen(
        [*command, "--data", str(data)], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            assert "listening on" in line, line
            log(f"ledger up in {time.perf_counter() - started:.2f} s ({line.strip()})")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def make_creates(n: int, key: Any, tag: str) -> list[dict[str, Any]]:
    """n signed CREATEs with distinct data."""
    return [
        _create(key, {"meter": f"urn:ngsi-ld:Meter:{tag}-{i}", "site": SITES[i % 10]}, {"n": i})
        for i in range(n)
    ]


def _create(key: Any, data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    prepared = prepare_transaction(
        operation="CREATE", signers=key.public_key, asset={"data": data}, metadata=metadata
    )
    return fulfill_transaction(prepared, private_keys=key.private_key)


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
    """tx/s of send_commit one after the other."""
    bdb = BigchainDB(url)
    started = time.perf_counter()
    for tx in txs:
        bdb.transactions.send_commit(tx)
    return len(txs) / (time.perf_counter() - started)


def concurrent_post(url: str, txs: Sequence[dict[str, Any]], mode: str, workers: int = 8) -> float:
    """tx/s of POSTs from `workers` threads until the last one is committed (checked by reading it back)."""
    sessions: dict[int, requests.Session] = {}

    def send(tx: dict[str, Any]) -> None:
        import threading

        session = sessions.setdefault(threading.get_ident(), requests.Session())
        answer = session.post(f"{url}/api/v1/transactions?mode={mode}", json=tx, timeout=30)
        assert answer.status_code == 202, answer.text

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(send, txs))
    for tx in txs[-workers:]:
        while requests.get(f"{url}/api/v1/transactions/{tx['id']}", timeout=5).status_code != 200:
            time.sleep(0.001)
    return len(txs) / (time.perf_counter() - started)


def latency(call: Callable[[], Any], n: int) -> dict[str, float]:
    """Mean, p50 and p95 in milliseconds of n sequential calls."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"mean": statistics.fmean(samples), "p50": samples[n // 2], "p95": samples[int(n * 0.95)]}


def _checked_chunk(args: tuple[int, int]) -> list[Any]:
    from devledger.validation import check_stateless

    start, count = args
    key = generate_keypair()
    return [
        check_stateless(
            _create(
                key,
                {"meter": f"urn:ngsi-ld:Meter:pre-{i}", "site": SITES[i % 10], "serial": f"sn{i}"},
                {"n": i},
            )
        )
        for i in range(start, start + count)
    ]


def preload(data: Path, count: int) -> None:
    """Write `count` signed and checked CREATEs straight through the storage layer, 1,000 per block."""
    from devledger.storage import Storage

    storage = Storage(data)
    chunk = 1000
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        for done, checked in enumerate(
            pool.map(_checked_chunk, [(s, chunk) for s in range(0, count, chunk)]), 1
        ):
            storage.append_block(checked)
            if done % 10 == 0:
                log(f"preloaded {done * chunk} in {time.perf_counter() - started:.0f} s")
    storage.close()


def run(txs: int, preload_count: int) -> dict[str, Any]:
    """Every measurement; returns the figures."""
    results: dict[str, Any] = {}
    alice, bob = generate_keypair(), generate_keypair()
    with tempfile.TemporaryDirectory() as tmp:
        log(f"signing {4 * txs} CREATEs and {2 * txs} TRANSFERs")
        seq_creates, async_creates = make_creates(txs, alice, "s"), make_creates(2 * txs, alice, "a")
        commit_creates = make_creates(txs, alice, "c")
        seq_transfers = make_transfers(seq_creates, alice, bob.public_key)
        async_transfers = make_transfers(async_creates[:txs], alice, bob.public_key)
        with ledger_process(Path(tmp) / "tput") as url:
            results["create_seq_commit"] = sequential_commit(url, seq_creates)
            log(f"CREATE sequential send_commit: {results['create_seq_commit']:.0f} tx/s")
            results["transfer_seq_commit"] = sequential_commit(url, seq_transfers)
            log(f"TRANSFER sequential send_commit: {results['transfer_seq_commit']:.0f} tx/s")
            results["create_async_8"] = concurrent_post(url, async_creates, "async")
            log(f"CREATE concurrent send_async (8 threads): {results['create_async_8']:.0f} tx/s")
            results["transfer_async_8"] = concurrent_post(url, async_transfers, "async")
            log(f"TRANSFER concurrent send_async (8 threads): {results['transfer_async_8']:.0f} tx/s")
            results["create_commit_16"] = concurrent_post(url, commit_creates, "commit", workers=16)
            log(f"CREATE concurrent send_commit (16 threads): {results['create_commit_16']:.0f} tx/s")
        if preload_count:
            log(f"preloading {preload_count} transactions (signed, 2 processes)")
            preload(Path(tmp) / "big", preload_count)
            with ledger_process(Path(tmp) / "big") as url:
                results["latency"] = get_latencies(url, preload_count)
    return results


def get_latencies(url: str, count: int) -> dict[str, dict[str, float]]:
    """GET latencies on the preloaded ledger."""
    bdb = BigchainDB(url)
    some = bdb.assets.get(search=f"sn{count // 2}", limit=1)[0]["id"]
    out = {
        "GET transaction by id": latency(lambda: bdb.transactions.retrieve(some), 300),
        "GET transactions by asset_id": latency(lambda: bdb.transactions.get(asset_id=some), 300),
        "assets search, 1 match": latency(lambda: bdb.assets.get(search=f"sn{count // 3}"), 300),
        "assets search, 10% match, limit 10": latency(lambda: bdb.assets.get(search="graz", limit=10), 100),
        "metadata search, limit 10": latency(lambda: bdb.metadata.get(search="nothing", limit=10), 100),
        "outputs by public_key (1,000 outputs)": latency(
            lambda: bdb.outputs.get(bdb.transactions.retrieve(some)["outputs"][0]["public_keys"][0]), 50
        ),
    }
    for name, figures in out.items():
        log(f"{name}: mean {figures['mean']:.2f} ms, p50 {figures['p50']:.2f}, p95 {figures['p95']:.2f}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a Markdown summary on stdout."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--txs", type=int, default=500, help="transactions per throughput run (default 500)")
    parser.add_argument("--preload", type=int, default=100_000, help="stored txs for latencies (0 skips)")
    args = parser.parse_args(argv)
    results = run(args.txs, args.preload)
    print("| measurement | result |\n|---|---|")
    for key, value in results.items():
        if key != "latency":
            print(f"| {key} | {value:.0f} tx/s |")
    for name, figures in results.get("latency", {}).items():
        mean, p50, p95 = figures["mean"], figures["p50"], figures["p95"]
        print(f"| {name} | mean {mean:.2f} ms, p50 {p50:.2f} ms, p95 {p95:.2f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
