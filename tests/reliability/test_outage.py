"""The ledger or Ethereum away while readings keep coming: once back, everything catches up in order, once.

RELIABILITY_OUTAGE=300 runs the issue's five-minute ledger outage and RELIABILITY_ETH_OUTAGE=300 its
five-minute Ethereum outage (the defaults, 8 s and 12 s, keep the tests short).
"""

from __future__ import annotations

import os
import time

import pytest

from connector.store.db import open_store
from tests.reliability import checks
from tests.reliability.harness import ConnectorProcess, EthereumNode, LedgerProcess, Sender, wait_until

OUTAGE = float(os.environ.get("RELIABILITY_OUTAGE", "8"))
ETH_OUTAGE = float(os.environ.get("RELIABILITY_ETH_OUTAGE", "12"))
METERS = 3
HUNG = 120  # a guard against a hang, not a speed budget


@pytest.mark.timeout(300 + 3 * OUTAGE)  # the long version outlasts the suite's 300-s limit
def test_ledger_outage_catches_up_in_order_without_doubles(store_url, tmp_path, ledger: LedgerProcess):
    """Ledger stopped a while: readings still acked; after restart each window anchored once, in order."""
    # The harness retries every 2 s at most (ledger.backoff_cap), and a budget of 3 attempts runs out early
    # in the outage: rows out of tries must stay open (reported stuck), never die and leave a hole.
    attempts = {"CONNECTOR_LEDGER_MAX_ATTEMPTS": "3"}
    connector = ConnectorProcess(store_url, tmp_path, ledger.url, extra_env=attempts).start()
    sender = Sender([connector.url], METERS).start()
    store = open_store(store_url)
    try:
        time.sleep(3)
        ledger.stop()
        acked_before = len(sender.acked)
        time.sleep(OUTAGE)
        # The outage lasts OUTAGE seconds and, on a slow machine, until both are seen (conditions, not a
        # budget for how much a loaded machine gets done in OUTAGE seconds).
        wait_until(lambda: len(sender.acked) > acked_before, HUNG, "acks while the ledger is down")
        wait_until(
            lambda: checks.backlog(store)["open_outbox"] > 0,
            HUNG,
            "windows closed during the outage waiting for the ledger",
        )
        ledger.start()
        time.sleep(2)
        sender.stop()
        wait_until(lambda: checks.drained(store), 60 + OUTAGE, "the outbox to drain after the outage")
        assert checks.kept_problems(store, sender.acked, ledger.client()) == []
    finally:
        sender.stop()
        connector.stop()
        store.dispose()


@pytest.mark.timeout(300 + 3 * ETH_OUTAGE)
def test_ethereum_outage_relays_in_order_without_doubles(tmp_path, ledger: LedgerProcess):
    """anvil stopped a while (chain kept): readings still acked and anchored on the ledger, relays wait;
    after restart every window is relayed exactly once, in order (on-chain chain heads match)."""
    # SQLite only, to keep the suite short: the relay's SQL is the same on both stores, and the crash test
    # relays to Ethereum on PostgreSQL too.
    store_url = f"sqlite:///{tmp_path}/store.sqlite3"
    node = EthereumNode(tmp_path).start()
    connector = ConnectorProcess(store_url, tmp_path, ledger.url, extra_env=node.env()).start()
    sender = Sender([connector.url], METERS).start()
    store = open_store(store_url)
    try:
        wait_until(
            lambda: checks.final_relays(store) > 0,
            60,
            "a first window relayed before the outage",
            state=lambda: checks.relay_states(store),
        )
        node.stop()
        acked_before = len(sender.acked)
        time.sleep(ETH_OUTAGE)
        wait_until(lambda: len(sender.acked) > acked_before, HUNG, "acks while Ethereum is down")
        wait_until(
            lambda: sum(checks.relay_backlog(store).values()) > 0,
            HUNG,
            "windows confirmed during the outage waiting for Ethereum",
        )
        node.start()
        time.sleep(2)
        sender.stop()
        wait_until(
            lambda: checks.drained(store) and checks.relayed(store),
            90 + ETH_OUTAGE,
            "the relay to catch up",
            state=lambda: checks.relay_states(store),
        )
        assert checks.kept_problems(store, sender.acked, ledger.client()) == []
        assert checks.relay_problems(store, node.contract()) == []
    finally:
        sender.stop()
        connector.stop()
        node.stop()
        store.dispose()
