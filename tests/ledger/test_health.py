"""/health reports the ledger and its writer: a wrong keystore passphrase blocks every row, and says so."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from connector.keystore import Keystore
from connector.ledger.outbox import enqueue_create
from connector.ledger.writer import LedgerWriter
from connector.service import build_services
from connector.store.db import open_store
from tests.asgi_client import connector_client
from tests.ledger.conftest import DevLedger
from tests.ledger.helpers import add_meter


@pytest.fixture
def ledger(tmp_path):
    live = DevLedger(tmp_path / "devledger")
    yield live
    live.stop()


def health(settings, store, clock, urls):
    svc = build_services(settings, store, clock.now, ledger_urls=urls)
    resp = connector_client(svc).get("/health")
    return resp.status_code, resp.get_json()


def test_health_ok_with_the_ledger_up_and_nothing_failing(ledger_settings, store, clock, ledger):
    """Store answers, the ledger's root document answers, no outbox row keeps failing: ok, 200."""
    status, body = health(ledger_settings, store, clock, [ledger.url])
    assert status == 200 and body["status"] == "ok", body
    assert body["checks"]["store"] == {"status": "ok"}
    assert body["checks"]["ledger"] == {"status": "ok", "url": ledger.url}
    assert body["checks"]["ledger_writer"] == {"status": "ok", "pending": 0}


def test_wrong_keystore_passphrase_shows_the_writer_blocked(ledger_settings, store, clock, ledger, tmp_path):
    """Rows the writer cannot sign (keystore passphrase wrong) make /health degraded, naming the reason;
    notifications are still taken, so the answer stays 200."""
    path = tmp_path / "keystore-encrypted"
    Keystore(path, "the right passphrase").meter_keypair("meter-0")  # an encrypted keystore
    meter = add_meter(store, "urn:ngsi-ld:SMX:H1", clock.now())
    with store.begin() as conn:
        enqueue_create(conn, meter, clock.now())
    wrong = Keystore(path, "a wrong passphrase")
    with LedgerWriter(
        ledger_settings.ledger, store, wrong, [ledger.url], clock, registry=CollectorRegistry()
    ) as writer:
        for _ in range(2):
            assert writer.dispatch_once().get("blocked") == 1
            clock.advance(600)
    status, body = health(ledger_settings, store, clock, [ledger.url])
    assert status == 200 and body["status"] == "degraded", body
    blocked = body["checks"]["ledger_writer"]
    assert (blocked["status"], blocked["failing"], blocked["attempts"]) == ("blocked", 1, 2)
    assert "passphrase" in blocked["reason"]
    assert "the right passphrase" not in str(body) and "a wrong passphrase" not in str(body)


def test_unreachable_ledger_is_reported(ledger_settings, store, clock):
    """A ledger URL nothing listens on: `unreachable` with the error's name, overall degraded."""
    status, body = health(ledger_settings, store, clock, ["http://127.0.0.1:9"])
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["ledger"]["status"] == "unreachable"
    assert "ConnectionError" in body["checks"]["ledger"]["errors"][0]


def test_store_down_is_unhealthy_503(ledger_settings, clock):
    """A store that does not answer (PostgreSQL on a port nothing listens on): 503 unhealthy."""
    down = open_store(
        "postgresql+psycopg://connector@127.0.0.1:9/connector", connect_args={"connect_timeout": 2}
    )
    try:
        svc = build_services(ledger_settings, down, clock.now)
        resp = connector_client(svc).get("/health")
    finally:
        down.dispose()
    assert resp.status_code == 503
    assert resp.get_json() == {
        "status": "unhealthy",
        "checks": {"store": {"status": "unhealthy", "error": "OperationalError"}},
    }
