"""The database restarted under load: while it is down the connector acknowledges nothing (5xx or no
answer), it recovers by itself, and afterwards every acknowledged reading is stored and every window
anchored once.

Runs on a private PostgreSQL cluster (tests/reliability/pgcluster.py), never the shared one on 5432.
RELIABILITY_DB_DOWN sets how long the database stays down at each restart (default 4 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.store.db import open_store
from tests.reliability import checks, pgcluster
from tests.reliability.harness import ConnectorProcess, LedgerProcess, Sender, wait_until

DOWN = float(os.environ.get("RELIABILITY_DB_DOWN", "4"))
METERS = 3


@pytest.fixture
def private_pg() -> Iterator[pgcluster.PrivatePostgres]:
    """A private PostgreSQL cluster on a free port, removed afterwards."""
    reason = pgcluster.unavailable()
    if reason:
        pytest.skip(reason)
    cluster = pgcluster.PrivatePostgres().init()
    yield cluster
    cluster.destroy()


def _health(url: str) -> int:
    try:
        return requests.get(url + "/health", timeout=5).status_code
    except requests.RequestException:
        return 0


def _outage(
    cluster: pgcluster.PrivatePostgres, connector: ConnectorProcess, sender: Sender, mode: str
) -> dict[str, Any]:
    """Stop the database (`mode`), keep it down DOWN seconds, start it; return what the sender saw."""
    cluster.stop(mode)
    # A 200 already on the wire when the stop returned was committed before it. The sender sends one
    # notification at a time, so once it has seen a refusal, no such 200 is left to arrive (however slow
    # the machine): only then is the count taken.
    refused = sender.failed
    wait_until(lambda: sender.failed > refused, 120, f"a refused notification after the {mode} stop")
    acked, statuses = len(sender.acked), sender.status_counts()
    time.sleep(DOWN)
    seen = {
        "acked": len(sender.acked) - acked,
        "statuses": sender.status_counts() - statuses,
        "health": _health(connector.url),
    }
    cluster.start()
    return seen


@pytest.mark.timeout(300 + 4 * DOWN)  # a long RELIABILITY_DB_DOWN outlasts the suite's 300-s limit
def test_database_restart_acks_nothing_while_down_and_recovers(private_pg, tmp_path, ledger: LedgerProcess):
    """Fast and immediate PostgreSQL restarts under load: no 200 while down, 5xx or no answer instead;
    /health 503 while down and 200 after; every acked reading stored, every window anchored once."""
    connector = ConnectorProcess(private_pg.url, tmp_path, ledger.url).start()
    sender = Sender([connector.url], METERS).start()
    store = open_store(private_pg.url)
    try:
        for mode in ("fast", "immediate"):
            acked = len(sender.acked) + 10
            wait_until(lambda: len(sender.acked) > acked, 30, f"acks before the {mode} restart")  # noqa: B023
            seen = _outage(private_pg, connector, sender, mode)
            assert seen["acked"] == 0, f"{mode}: acknowledged while the database was down: {seen}"
            assert seen["statuses"], f"{mode}: the sender got no answer at all while the database was down"
            assert all(s == 0 or s >= 500 for s in seen["statuses"]), f"{mode}: {seen}"
            assert seen["health"] == 503, f"{mode}: /health answered {seen['health']} with the database down"
            wait_until(lambda: _health(connector.url) == 200, 30, f"/health 200 after the {mode} restart")
            resumed = len(sender.acked) + 10
            wait_until(lambda: len(sender.acked) > resumed, 30, f"acks to resume after the {mode} restart")  # noqa: B023
        sender.stop()
        wait_until(lambda: checks.drained(store), 60, "windows closed and the outbox drained")
        assert checks.kept_problems(store, sender.acked, ledger.client()) == []
    finally:
        sender.stop()
        connector.stop()
        store.dispose()
