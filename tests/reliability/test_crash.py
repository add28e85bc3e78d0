"""SIGKILL the connector at random moments while a sender streams; after a restart nothing is lost or doubled.

`run` is three processes (HTTP; the closer process running the window closer; the ledger process running
the ledger writer and relay): the kills take turns between all at once, the closer process alone and then
the ledger process alone (the HTTP process starts a new one of each) and the HTTP process alone (the other
two get SIGTERM from Linux mid-round).

The connector writes BigchainDB (an external dev ledger process) and relays to Ethereum (an anvil with the
settlement contract); both outlive the kills. RELIABILITY_KILLS=10 runs the long version (the default,
3 kills, keeps the test under a minute).
"""

from __future__ import annotations

import os
import random
import time

from connector.store.db import open_store
from tests.reliability import checks
from tests.reliability.harness import ConnectorProcess, EthereumNode, Sender, wait_until

KILLS = int(os.environ.get("RELIABILITY_KILLS", "3"))
METERS = 4


def test_sigkill_loses_nothing_anchors_and_relays_each_window_once(store_url, tmp_path, ledger):
    """After random SIGKILLs: every acked reading stored, one confirmed TRANSFER and one relay per window
    (one IntervalRecorded on chain), chains linear on the ledger and on chain."""
    rng = random.Random(int(os.environ.get("RELIABILITY_SEED", "8")))
    node = EthereumNode(tmp_path).start()
    connector = ConnectorProcess(store_url, tmp_path, ledger.url, extra_env=node.env()).start()
    sender = Sender([connector.url], METERS).start()
    store = open_store(store_url)
    try:
        for kill in range(KILLS):
            time.sleep(rng.uniform(1.0, 4.0))
            if kill % 3 == 1:
                for role in ("closer", "ledger"):
                    killed = set(connector.ledger_pids(role))
                    assert killed, f"no {role} process to kill"
                    connector.kill_ledger(role)
                    new = lambda gone=killed, r=role: bool(set(connector.ledger_pids(r)) - gone)  # noqa: E731
                    wait_until(new, 60, f"a new {role} process")
                    time.sleep(rng.uniform(0.5, 2.0))
                continue
            if kill % 3 == 0:
                connector.kill()
            else:
                connector.kill_http()
            connector.start()
        time.sleep(rng.uniform(1.0, 3.0))
        sender.stop()
        done = lambda: checks.drained(store) and checks.relayed(store)  # noqa: E731
        wait_until(done, 90, "the outbox and the relay to drain", state=lambda: checks.relay_states(store))
        connector.stop()
        assert len(sender.acked) > 20 * KILLS
        assert checks.kept_problems(store, sender.acked, ledger.client()) == []
        assert checks.relay_problems(store, node.contract()) == []
        assert len(checks.meter_rows(store)) == METERS
    finally:
        sender.stop()
        connector.kill()
        node.stop()
        store.dispose()
