"""Reads of `bench/devledger_bench.py`: preloading a ledger straight through its storage layer, and GET
latencies on it (single lookups, searches, bulk and recovery reads)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import requests
from bigchaindb_driver import BigchainDB
from bigchaindb_driver.crypto import generate_keypair
from bigchaindb_driver.offchain import fulfill_transaction, prepare_transaction

from connector.ledger.fast_tx import create_transaction, transfer_transaction
from devledger.storage import Storage
from devledger.validation import check_stateless

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


def signed_create(key: Any, data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """A CREATE of `data` signed by `key` with bigchaindb-driver 0.6.2."""
    prepared = prepare_transaction(
        operation="CREATE", signers=key.public_key, asset={"data": data}, metadata=metadata
    )
    return fulfill_transaction(prepared, private_keys=key.private_key)


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
    start, count = args
    key = generate_keypair()
    return [
        check_stateless(
            signed_create(
                key,
                {"meter": f"urn:ngsi-ld:Meter:pre-{i}", "site": SITES[i % 10], "serial": f"sn{i}"},
                {"n": i},
            )
        )
        for i in range(start, start + count)
    ]


def preload(data: Path, count: int) -> None:
    """Write `count` signed and checked CREATEs straight through the storage layer, 1,000 per block."""
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


def preload_chain(data: Path, length: int) -> dict[str, str]:
    """One meter's chain as the connector writes it: a CREATE and `length` window TRANSFERs back to the same
    key, each spending the previous one (signed with the connector's fast builder, 1,000 per block)."""
    key = generate_keypair()
    head = create_transaction(key.public_key, key.private_key, {"data": {"meter": "urn:chain"}}, None)
    asset_id, block = head["id"], [check_stateless(head)]
    storage = Storage(data)
    for window in range(length):
        metadata = {"window": window, "fingerprint": f"{window:064x}"}
        head = transfer_transaction(key.public_key, key.private_key, asset_id, head["id"], metadata)
        block.append(check_stateless(head))
        if len(block) == 1000:
            storage.append_block(block)
            block = []
    if block:
        storage.append_block(block)
    storage.close()
    return {"public_key": key.public_key, "asset_id": asset_id, "head": head["id"]}


def chain_latencies(url: str, meter: dict[str, str], chain: int) -> dict[str, dict[str, float]]:
    """The reads that find a long chain's head: unspent outputs of its key, or its last transaction."""
    bdb = BigchainDB(url)
    assert bdb.outputs.get(meter["public_key"], spent=False) == [
        {"transaction_id": meter["head"], "output_index": 0}
    ]
    last = f"{url}/api/v1/transactions?asset_id={meter['asset_id']}&last_tx=true"
    assert requests.get(last, timeout=60).json()[0]["id"] == meter["head"]
    out = {
        f"outputs by public_key, spent=false (a chain of {chain:,} outputs, 1 unspent)": latency(
            lambda: bdb.outputs.get(meter["public_key"], spent=False), 20
        ),
        f"transactions by asset_id, last_tx=true (a chain of {chain:,})": latency(
            lambda: requests.get(last, timeout=60), 100
        ),
    }
    for name, figures in out.items():
        log(f"{name}: mean {figures['mean']:.2f} ms, p50 {figures['p50']:.2f}, p95 {figures['p95']:.2f}")
    return out


def get_latencies(url: str, count: int) -> dict[str, dict[str, float]]:
    """GET latencies on the preloaded ledger."""
    bdb = BigchainDB(url)
    some = bdb.assets.get(search=f"sn{count // 2}", limit=1)[0]["id"]
    owner = bdb.transactions.retrieve(some)["outputs"][0]["public_keys"][0]
    out = {
        "GET transaction by id": latency(lambda: bdb.transactions.retrieve(some), 300),
        "GET transactions by asset_id": latency(lambda: bdb.transactions.get(asset_id=some), 300),
        "assets search, 1 match": latency(lambda: bdb.assets.get(search=f"sn{count // 3}"), 300),
        "assets search, 10% match, limit 10": latency(lambda: bdb.assets.get(search="graz", limit=10), 100),
        "metadata search, limit 10": latency(lambda: bdb.metadata.get(search="nothing", limit=10), 100),
        "outputs by public_key (1,000 outputs)": latency(lambda: bdb.outputs.get(owner), 50),
        "outputs by public_key, spent=false (1,000 outputs)": latency(
            lambda: bdb.outputs.get(owner, spent=False), 50
        ),
        "transactions by asset_id, operation=CREATE": latency(
            lambda: bdb.transactions.get(asset_id=some, operation="CREATE"), 300
        ),
        "transactions by asset_id, operation=TRANSFER": latency(
            lambda: bdb.transactions.get(asset_id=some, operation="TRANSFER"), 300
        ),
    }
    for name, figures in out.items():
        log(f"{name}: mean {figures['mean']:.2f} ms, p50 {figures['p50']:.2f}, p95 {figures['p95']:.2f}")
    return out
