"""SIGKILL the connector at random moments while a sender streams; after a restart nothing is lost or doubled.

RELIABILITY_KILLS=10 runs the long version (the default, 3 kills, keeps the test under a minute).
"""

from __future__ import annotations

import os
import random
import time

from connector.store.db import open_store
from tests.reliability import checks
from tests.reliability.harness import ConnectorProcess, LedgerProcess, Sender, wait_until

KILLS = int(os.environ.get("RELIABILITY_KILLS", "3"))
METERS = 4


def test_sigkill_loses_nothing_and_anchors_each_window_once(store_url, tmp_path, ledger: LedgerProcess):
    """After random SIGKILLs: every acked reading stored, one confirmed TRANSFER per window, chains linear."""
    rng = random.Random(int(os.environ.get("RELIABILITY_SEED", "8")))
    connector = ConnectorProcess(store_url, tmp_path, ledger.url).start()
    sender = Sender([connector.url], METERS).start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 4.0))
            connector.kill()
            connector.start()
        time.sleep(rng.uniform(1.0, 3.0))
    finally:
        sender.stop()
    store = open_store(store_url)
    try:
        wait_until(lambda: checks.drained(store), 60, "windows closed and the outbox drained")
        connector.stop()
        assert len(sender.acked) > 20 * KILLS
        assert checks.missing_readings(store, sender.acked) == []
        assert checks.outbox_problems(store) == []
        assert checks.chain_problems(ledger.client(), store) == []
        assert len(checks.meter_rows(store)) == METERS
    finally:
        connector.kill()
        store.dispose()
