"""Scale-out: two connector processes sharing one PostgreSQL store and one keystore, one dev ledger.

Both receive notifications (the sender alternates targets), both close windows and write the ledger.
Afterwards: every acknowledged reading is stored, no window is anchored twice, no asset history forks.

Usage: python -m bench.scaleout [--seconds 60] [--meters 20] [--pg URL]
Prints one JSON line with the counts, the throughput and the problems found (exit 1 if any).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from connector.store.db import migrate, open_store
from tests.pgschema import PG_URL, fresh_schema
from tests.reliability import checks
from tests.reliability.harness import ConnectorProcess, LedgerProcess, Sender, wait_until


def run_scaleout(store_url: str, workdir: Path, seconds: float, meters: int) -> dict[str, Any]:
    """Run two connectors on one store for `seconds` while a sender alternates between them; check."""
    store = open_store(store_url)
    migrate(store)  # once, before two processes race to migrate the same schema
    ledger = LedgerProcess(workdir / "devledger").start()
    pair = [ConnectorProcess(store_url, workdir, ledger.url) for _ in range(2)]
    try:
        for connector in pair:
            connector.start()
        sender = Sender([c.url for c in pair], meters, prefix="S").start()
        started = time.monotonic()
        time.sleep(seconds)
        sender.stop()
        elapsed = time.monotonic() - started
        wait_until(lambda: checks.drained(store), 120, "both connectors to drain")
        problems = checks.outbox_problems(store) + checks.chain_problems(ledger.client(), store)
        missing = checks.missing_readings(store, sender.acked)
        return {
            "connectors": 2,
            "meters": meters,
            "seconds": round(elapsed, 1),
            "acked": len(sender.acked),
            "failed": sender.failed,
            "notifications_per_s": round(len(sender.acked) / elapsed, 1),
            "windows": sum(len(checks.windows_of(store, m.id)) for m in checks.meter_rows(store)),
            "missing": len(missing),
            "problems": problems[:20],
        }
    finally:
        for connector in pair:
            connector.stop()
        ledger.stop()
        store.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run the scale-out check and print its JSON line; exit 1 when any promise is broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--meters", type=int, default=20)
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL (a fresh schema is made and dropped)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, fresh_schema(args.pg) as url:
        result = run_scaleout(url, Path(tmp), args.seconds, args.meters)
    print(json.dumps(result))
    return 1 if result["problems"] or result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
