"""CPU per signed transaction: bigchaindb-driver 0.6.2 against the connector's fast builder.

Both build the same window TRANSFER (a realistic ~1 kB window metadata: three attribute summaries, hashes,
counts) and the same meter CREATE, N times each, with different spent transaction ids; the figure is
process CPU time divided by N. Each builder runs in turn, several rounds, and the best round is kept (the
machine is shared). The two outputs are checked equal byte for byte before timing.

    .venv/bin/python bench/sign_bench.py [--n 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from bigchaindb_driver.common.utils import serialize
from bigchaindb_driver.crypto import generate_keypair
from bigchaindb_driver.offchain import (
    fulfill_transaction,
    prepare_create_transaction,
    prepare_transfer_transaction,
)

from connector.ledger.fast_tx import create_transaction, transfer_transaction

ASSET_ID = "a" * 64


def window_metadata(i: int) -> dict[str, Any]:
    """A window TRANSFER's metadata of the connector's shape (about 1 kB serialized)."""
    attribute = {
        "type": "W",
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
    return {
        "schema": "smartmeter-window/1",
        "meter": f"urn:ngsi-ld:SMX:{i:06d}",
        "window": {"start": "2019-03-18T16:00:00.000Z", "end": "2019-03-18T16:15:00.000Z"},
        "recvTime": "2019-03-18T16:15:02.120Z",
        "attributes": [{"attr": a, "kind": k, **attribute} for a, k in (("P", "power"), ("E", "energy"))],
        "fingerprint": f"{i:064x}",
        "chain_hash": "c" * 64,
        "prev_chain_hash": "0" * 64,
        "counts": {"readings": 270, "duplicates": 0, "late": 0},
    }


def driver_transfer(public: str, private: str, spent: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """prepare_transfer_transaction + fulfill_transaction, as the connector called them before."""
    inputs = {
        "fulfillment": {"type": "ed25519-sha-256", "public_key": public},
        "fulfills": {"transaction_id": spent, "output_index": 0},
        "owners_before": [public],
    }
    prepared = prepare_transfer_transaction(
        inputs=inputs, recipients=public, asset={"id": ASSET_ID}, metadata=metadata
    )
    return fulfill_transaction(prepared, private_keys=private)  # type: ignore[no-any-return]


def driver_create(public: str, private: str, i: int) -> dict[str, Any]:
    """prepare_create_transaction + fulfill_transaction."""
    prepared = prepare_create_transaction(
        signers=public, asset={"data": {"meter": {"id": f"urn:ngsi-ld:SMX:{i:06d}"}}}, metadata={"i": i}
    )
    return fulfill_transaction(prepared, private_keys=private)  # type: ignore[no-any-return]


def fast_create(public: str, private: str, i: int) -> dict[str, Any]:
    """The fast builder's CREATE."""
    return create_transaction(
        public, private, {"data": {"meter": {"id": f"urn:ngsi-ld:SMX:{i:06d}"}}}, {"i": i}
    )


def cpu_per_call(build: Callable[[int], object], n: int, rounds: int) -> float:
    """Best mean process CPU seconds per call over `rounds` rounds of `n` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for i in range(n):
            build(i)
        best = min(best, (time.process_time() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="transactions per round and builder")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    keys = generate_keypair()
    pub, priv = keys.public_key, keys.private_key
    metadata = [window_metadata(i) for i in range(args.n)]
    spent = [f"{i:064x}" for i in range(args.n)]
    same = serialize(driver_transfer(pub, priv, spent[0], metadata[0])) == serialize(
        transfer_transaction(pub, priv, ASSET_ID, spent[0], metadata[0])
    ) and serialize(driver_create(pub, priv, 0)) == serialize(fast_create(pub, priv, 0))
    if not same:
        raise SystemExit("the fast builder's transaction differs from the driver's")
    figures = {
        "n": args.n,
        "metadata_bytes": len(serialize(metadata[0]).encode()),
        "driver_transfer_ms": cpu_per_call(
            lambda i: driver_transfer(pub, priv, spent[i], metadata[i]), args.n, args.rounds
        ),
        "fast_transfer_ms": cpu_per_call(
            lambda i: transfer_transaction(pub, priv, ASSET_ID, spent[i], metadata[i]), args.n, args.rounds
        ),
        "driver_create_ms": cpu_per_call(lambda i: driver_create(pub, priv, i), args.n, args.rounds),
        "fast_create_ms": cpu_per_call(lambda i: fast_create(pub, priv, i), args.n, args.rounds),
    }
    print(
        json.dumps({k: round(v * 1000, 4) if k.endswith("_ms") else v for k, v in figures.items()}, indent=2)
    )


if __name__ == "__main__":
    main()
