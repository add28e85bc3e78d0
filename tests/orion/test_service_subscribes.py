"""`run` with orion.subscribe_on_run: the connector registers its subscription with Orion at start."""

from __future__ import annotations

from connector.service import Connector


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
