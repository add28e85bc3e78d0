"""The ledger away while readings keep coming: once it is back everything catches up in order, once.

RELIABILITY_OUTAGE=300 runs the issue's five-minute outage (the default, 8 s, keeps the test short).
"""

from __future__ import annotations

import os
import time

from connector.store.db import open_store
from tests.reliability import checks
from tests.reliability.harness import ConnectorProcess, LedgerProcess, Sender, wait_until

OUTAGE = float(os.environ.get("RELIABILITY_OUTAGE", "8"))
METERS = 3


def test_ledger_outage_catches_up_in_order_without_doubles(store_url, tmp_path, ledger: LedgerProcess):
    """Ledger stopped a while: readings still acked; after restart each window anchored once, in order."""
    connector = ConnectorProcess(store_url, tmp_path, ledger.url).start()
    sender = Sender([connector.url], METERS).start()
    store = open_store(store_url)
    try:
        time.sleep(3)
        ledger.stop()
        acked_before = len(sender.acked)
        time.sleep(OUTAGE)
        assert len(sender.acked) > acked_before, "ingest must not depend on the ledger"
        assert checks.backlog(store)["open_outbox"] > 0, (
            "windows closed during the outage wait for the ledger"
        )
        ledger.start()
        time.sleep(2)
        sender.stop()
        wait_until(lambda: checks.drained(store), 60 + OUTAGE, "the outbox to drain after the outage")
        assert checks.missing_readings(store, sender.acked) == []
        assert checks.outbox_problems(store) == []
        assert checks.chain_problems(ledger.client(), store) == []
    finally:
        sender.stop()
        connector.stop()
        store.dispose()
