"""/health asks the Ethereum node for its block number when the relay is enabled."""

from __future__ import annotations

import dataclasses

from connector.service import build_services
from tests.asgi_client import connector_client


def ethereum_health(settings, store, clock, rpc_url):
    eth = dataclasses.replace(settings.ethereum, enabled=True, rpc_url=rpc_url)
    svc = build_services(settings.replace(ethereum=eth), store, clock.now)
    resp = connector_client(svc).get("/health")
    return resp.status_code, resp.get_json()


def test_health_reports_the_ethereum_nodes_block(settings, store, clock, anvil):
    """A live anvil: ethereum ok with its block number; overall ok."""
    status, body = ethereum_health(settings, store, clock, anvil.url)
    assert status == 200 and body["status"] == "ok", body
    assert body["checks"]["ethereum"]["status"] == "ok"
    assert isinstance(body["checks"]["ethereum"]["block"], int)


def test_health_reports_an_unreachable_ethereum_node(settings, store, clock):
    """Nothing listening at rpc_url: ethereum unreachable, overall degraded, still 200."""
    status, body = ethereum_health(settings, store, clock, "http://127.0.0.1:9")
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["ethereum"] == {"status": "unreachable", "error": "ConnectionError"}
