"""Issue 19: query-API ledger reads share one bounded pool of connections, closed at shutdown."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from connector.ledger.client import QUERY_CONNECTIONS
from devledger.server import start_ledger
from tests.api import history as h

# /proc/net/tcp states that hold a socket open (ESTABLISHED, SYN_SENT, CLOSE_WAIT); TIME_WAIT is gone.
OPEN_STATES = {"01", "02", "08"}


def open_client_connections(port: int) -> int:
    """Sockets of this machine connected to `port` (the client side of each connection to the ledger)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            count += remote_port == port and fields[3] in OPEN_STATES
    return count


@pytest.fixture
def own_ledger():
    """A dev ledger of this test alone, so only this test's connections reach its port."""
    handle = start_ledger(port=0, ws_port=0, data_dir=None)
    yield handle
    handle.stop()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections through /proc/net/tcp")
def test_500_ledger_reads_hold_a_bounded_pool_closed_at_shutdown(
    make_client, store, api_settings, own_ledger, tmp_path
):
    """500 /verify and history?source=ledger requests leave at most QUERY_CONNECTIONS connections open to
    the ledger, all answered 200; closing the shared pool (as the connector's stop does) closes them."""
    from connector.keystore import Keystore

    meter_id = h.add_meter(store, "urn:pool:1", "tk", "/")
    h.close_windows(store, api_settings, meter_id, 8)
    h.anchor(store, api_settings, Keystore(tmp_path / "keys"), [own_ledger.url])
    client = make_client()
    svc = client.app.svc
    svc.ledger_urls = [own_ledger.url]
    headers = {"Fiware-Service": "tk"}
    gc.collect()  # the anchoring writer's clients are gone: count only what the reads hold
    before = open_client_connections(own_ledger.port)
    for i in range(500):
        route = "verify" if i % 2 else "history?source=ledger"
        answer = client.get(f"/v1/meters/urn:pool:1/{route}", headers=headers)
        assert answer.status_code == 200, (i, answer.json)
    held = open_client_connections(own_ledger.port) - before
    assert 0 < held <= QUERY_CONNECTIONS, held
    svc.ledger_reads.close()
    assert open_client_connections(own_ledger.port) - before <= 0
