"""Memory of the dev ledger's in-memory state over time: N assets, each transferred R times, file-backed.

    python -m bench.devledger_memory --assets 1000 --rounds 20

The ledger runs in this process (Ledger + Storage, no HTTP) so tracemalloc sees its Python heap; every
transaction is signed before the first mark, so the marks measure the ledger alone. Prints, per round of
TRANSFERs (one per asset), the traced Python memory and this process's RssAnon, then the same for a
restart on the data dir (`Ledger(storage)`, which loads the state).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from bigchaindb_driver.crypto import generate_keypair
from bigchaindb_driver.offchain import fulfill_transaction, prepare_transaction

from devledger.ledger import Ledger
from devledger.storage import Storage


def rss_anon_kib() -> int:
    """This process's anonymous resident memory (heap and mmaps not backed by files), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


def signed_rounds(assets: int, rounds: int) -> list[list[dict[str, Any]]]:
    """Round 0: `assets` CREATEs; round r: one TRANSFER of each asset spending round r-1's."""
    owner = generate_keypair()
    heads = []
    for i in range(assets):
        prepared = prepare_transaction(operation="CREATE", signers=owner.public_key, asset={"data": {"m": i}})
        heads.append(fulfill_transaction(prepared, private_keys=owner.private_key))
    result = [heads]
    for _ in range(rounds):
        heads = [_transfer(tx, owner) for tx in heads]
        result.append(heads)
    return result


def _transfer(tx: dict[str, Any], owner: Any) -> dict[str, Any]:
    output = tx["outputs"][0]
    spend = {
        "fulfillment": output["condition"]["details"],
        "fulfills": {"output_index": 0, "transaction_id": tx["id"]},
        "owners_before": output["public_keys"],
    }
    asset_id = tx["id"] if tx["operation"] == "CREATE" else tx["asset"]["id"]
    prepared = prepare_transaction(
        operation="TRANSFER", inputs=[spend], asset={"id": asset_id}, recipients=owner.public_key
    )
    return fulfill_transaction(prepared, private_keys=owner.private_key)


def mark(label: str, base: tuple[int, int]) -> None:
    gc.collect()
    traced, rss = tracemalloc.get_traced_memory()[0], rss_anon_kib()
    print(f"{label:>14}  traced {(traced - base[0]) / 1024:9.1f} KiB  RssAnon {rss - base[1]:7d} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rounds = signed_rounds(args.assets, args.rounds)
    with tempfile.TemporaryDirectory() as data:
        gc.collect()
        tracemalloc.start()
        base = (tracemalloc.get_traced_memory()[0], rss_anon_kib())
        storage = Storage(Path(data))
        ledger = Ledger(storage)
        ledger.start()
        for number, txs in enumerate(rounds):
            for i, tx in enumerate(txs):
                # Blocks commit in order: waiting for one waits for all before it (nothing pending at a mark).
                ledger.submit(tx, wait_commit=i >= len(txs) - 2)
            mark("creates" if number == 0 else f"round {number}", base)
        ledger.stop()
        storage.close()
        mark("stopped", base)
        restarted = Storage(Path(data))
        reloaded = Ledger(restarted)
        mark("restarted", base)
        del reloaded
        restarted.close()
        tracemalloc.stop()


if __name__ == "__main__":
    main()
