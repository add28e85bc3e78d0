"""`run` with orion.subscribe_on_run: the connector registers its subscription with Orion at start."""

from __future__ import annotations

from connector.service import Connector
from tests.asgi_client import connector_client


def test_connector_start_ensures_its_subscription(make_settings, orion, tmp_path):
    """Starting the connector creates exactly one subscription per entity type; a restart adds none."""
    settings = make_settings(
        **{
            "orion.subscribe_on_run": True,
            "ledger.enabled": False,
            "listen": "127.0.0.1:0",
            "store.url": f"sqlite:///{tmp_path}/s.sqlite3",
        }
    )
    for _ in range(2):
        connector = Connector(settings).start(serve_http=False)
        connector.stop()
    subs = orion.all("")
    assert len(subs) == len(settings.entity_types)
    assert subs[0]["description"].startswith("smartmeter-connector")
    assert subs[0]["notification"]["http"]["url"] == settings.orion.notify_url


def test_health_reports_the_subscriptions_from_the_start(make_settings, orion, tmp_path):
    """/health carries Orion's subscription state as soon as the connector has subscribed; a
    subscription Orion turned inactive shows as failing (degraded, still 200)."""
    settings = make_settings(
        **{
            "orion.subscribe_on_run": True,
            "ledger.enabled": False,
            "store.url": f"sqlite:///{tmp_path}/s.sqlite3",
        }
    )
    connector = Connector(settings).start(serve_http=False)
    try:
        client = connector_client(connector.services)
        body = client.get("/health").get_json()
        assert body["status"] == "ok", body
        assert body["checks"]["orion"]["subscriptions"] == [
            {"tenant": "", "entity_type": "SMX", "status": "active", "fails": 0}
        ]
        orion.set_fields("", orion.all()[0]["id"], status="inactive")  # an operator's doing: left alone
        connector.services.subscriptions.check()
        resp = client.get("/health")
        assert resp.status_code == 200 and resp.get_json()["status"] == "degraded"
        assert resp.get_json()["checks"]["orion"]["status"] == "failing"
    finally:
        connector.stop()
