"""Ledger writer benchmark: N meters close the same window; how long until every TRANSFER is confirmed?

The dev ledger runs in its own process (so its CPU is not charged to the writer); the writer runs here
with the configured concurrency and send mode. Reported:
- wall time from "N windows closed" to "N TRANSFERs confirmed" (read back from the ledger),
- the writer process's CPU time per transaction over that run (store, HTTP, JSON, signing),
- the pure prepare + sign CPU cost per TRANSFER (bigchaindb-driver), which is what a real BigchainDB
  network would cost this connector per window.

    .venv/bin/python bench/ledger_writer_bench.py --meters 1000 [--mode commit] [--concurrency 8]
        [--block-interval 1]   # the dev ledger cuts a block at most once a second, as Tendermint does
        [--per-row]            # the writer's per-row path, for comparison
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from connector.keystore import Keystore
from connector.ledger.metadata import transfer_metadata
from connector.ledger.outbox import OPEN, enqueue_create, enqueue_transfer
from connector.ledger.transactions import sign_transfer
from connector.ledger.writer import LedgerWriter
from connector.settings import load_settings
from connector.store.db import Store, migrate, open_store
from connector.store.models import LedgerOutbox, Meter, Window

WINDOW = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)


def _serve_ledger(
    queue: multiprocessing.Queue, stop: multiprocessing.Event, block_interval: float = 0.0
) -> None:  # type: ignore[type-arg]
    from devledger.server import start_ledger

    handle = start_ledger(host="127.0.0.1", port=0, ws_port=0, data_dir=None, block_interval=block_interval)
    queue.put(handle.url)
    stop.wait()
    handle.stop()


def summary_json() -> str:
    """A realistic three-attribute window summary (power, energy, voltage)."""
    attrs = []
    for name, kind in (("P", "power"), ("E", "energy"), ("V", "gauge")):
        attrs.append(
            {
                "attr": name,
                "type": "W",
                "kind": kind,
                "count": 90,
                "min": "-84.891",
                "max": "312.5",
                "mean": "120.044",
                "first": "-84.891",
                "first_at": "2019-03-18T16:00:05.000Z",
                "last": "312.5",
                "last_at": "2019-03-18T16:14:55.000Z",
                "energy_wh": "30.011",
            }
        )
    return json.dumps(attrs, sort_keys=True, separators=(",", ":"))


def add_meters(store: Store, n: int, now: datetime) -> list[int]:
    """N meters with their CREATEs queued."""
    ids = []
    with store.begin() as conn:
        for i in range(n):
            seed = hashlib.sha256(str(i).encode()).hexdigest()
            values = dict(
                tenant="bench",
                service_path="/",
                entity_id=f"urn:ngsi-ld:SMX:{i:05d}",
                entity_type="SMX",
                first_seen=now,
                chain_seed=seed,
                chain_head=seed,
                late_since_close=0,
            )
            meter_id = int(conn.execute(insert(Meter).values(**values)).inserted_primary_key[0])
            enqueue_create(conn, meter_id, now)
            ids.append(meter_id)
    return ids


def close_windows(store: Store, meters: list[int], now: datetime) -> None:
    """Close the same window for every meter, queueing its TRANSFER (one store transaction per meter)."""
    text = summary_json()
    for meter_id in meters:
        fp = hashlib.sha256(f"{meter_id}".encode()).hexdigest()
        with store.begin() as conn:
            values = dict(
                meter_id=meter_id,
                start=WINDOW,
                end=WINDOW + timedelta(minutes=15),
                closed_at=now,
                reading_count=270,
                duplicate_count=0,
                late_count=0,
                summary_json=text,
                energy_wh="30.011",
                fingerprint=fp,
                prev_chain_hash="0" * 64,
                chain_hash=fp,
            )
            window_id = int(conn.execute(insert(Window).values(**values)).inserted_primary_key[0])
            enqueue_transfer(conn, meter_id, window_id, int(WINDOW.timestamp()), now)


def drain(writer: LedgerWriter, store: Store) -> None:
    """Dispatch until no outbox row is open."""
    while True:
        writer.dispatch_once()
        with store.reading() as conn:
            if not conn.scalar(select(func.count()).where(LedgerOutbox.status.in_(OPEN))):
                return
        time.sleep(0.05)


def sign_cost(keystore: Keystore, n: int) -> float:
    """Mean CPU seconds to build the metadata, prepare and sign one TRANSFER."""
    keys = keystore.meter_keypair("bench|/|sign-cost")
    meter = Meter(entity_id="urn:ngsi-ld:SMX:sign", tenant="bench", service_path="/")
    window = Window(
        start=WINDOW,
        end=WINDOW + timedelta(minutes=15),
        closed_at=WINDOW,
        reading_count=270,
        duplicate_count=0,
        late_count=0,
        summary_json=summary_json(),
        fingerprint="f" * 64,
        prev_chain_hash="0" * 64,
        chain_hash="c" * 64,
    )
    start = time.process_time()
    for i in range(n):
        sign_transfer(keys, "a" * 64, f"{i:064x}", transfer_metadata(meter, window))
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--mode", default="commit", choices=["async", "sync", "commit"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--store", help="store URL (default: a SQLite file in a temporary folder)")
    parser.add_argument(
        "--block-interval",
        type=float,
        default=0.0,
        help="the dev ledger's seconds between blocks (default 0)",
    )
    parser.add_argument(
        "--per-row", action="store_true", help="the writer's per-row path (before issue 18's batching)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    url = args.store or f"sqlite:///{tmp}/store.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    ledger = ctx.Process(target=_serve_ledger, args=(queue, stop, args.block_interval), daemon=True)
    ledger.start()
    ledger_url = queue.get(timeout=30)
    store = open_store(url)
    migrate(store)
    overrides = {
        "store.url": url,
        "ledger.mode": args.mode,
        "ledger.concurrency": args.concurrency,
        "ledger.backoff_base": 0.2,
    }
    settings = load_settings(overrides=overrides)
    keystore = Keystore(tmp / "keystore")
    clock = lambda: datetime.now(UTC)  # noqa: E731
    writer = LedgerWriter(settings.ledger, store, keystore, [ledger_url], clock, batched=not args.per_row)
    now = datetime.now(UTC)
    meters = add_meters(store, args.meters, now)
    t0, c0 = time.perf_counter(), time.process_time()
    drain(writer, store)
    create_wall, create_cpu = time.perf_counter() - t0, time.process_time() - c0
    close_windows(store, meters, datetime.now(UTC))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    drain(writer, store)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    per_sign = sign_cost(keystore, 500)
    writer.close()
    stop.set()
    ledger.join(10)
    result = {
        "meters": args.meters,
        "mode": args.mode,
        "writer": "per-row" if args.per_row else "batched",
        "concurrency": args.concurrency,
        "block_interval_s": args.block_interval,
        "store": store.dialect,
        "creates_wall_s": round(create_wall, 2),
        "creates_cpu_ms_per_tx": round(create_cpu / args.meters * 1000, 2),
        "transfers_wall_s": round(wall, 2),
        "transfers_per_s": round(args.meters / wall, 1),
        "writer_cpu_ms_per_tx": round(cpu / args.meters * 1000, 2),
        "prepare_sign_cpu_ms_per_tx": round(per_sign * 1000, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
