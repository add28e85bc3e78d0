"""Defects the fuzz and fault harness found: each test fails while its defect is there, and stays as a
regression test once it is fixed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from connector.service import build_services
from connector.settings import load_settings
from connector.store.models import Reading
from tests.asgi_client import connector_client


def test_normalized_shape_is_not_judged_by_an_attributeless_first_entity(settings, store, clock):
    """Without Ngsiv2-AttrsFormat, a normalized reading after an id-only entity keeps its value and time."""
    client = connector_client(build_services(settings, store, clock.now))
    meta = {"TimeInstant": {"type": "DateTime", "value": "2019-03-18T16:00:00.000Z"}}
    good = {"id": "urn:ngsi-ld:SMX:OK", "type": "SMX", "P": {"type": "Number", "value": 5, "metadata": meta}}
    body = {
        "subscriptionId": "57458eb60962ef754e7c0998",
        "data": [{"id": "urn:ngsi-ld:SMX:BARE", "type": "SMX"}, good],
    }
    resp = client.post("/notify", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert resp.status_code == 200
    with store.reading() as conn:
        stored = conn.execute(
            select(Reading.observed_at, Reading.value_json).where(Reading.attr == "P")
        ).one()
    assert stored == (datetime(2019, 3, 18, 16, tzinfo=UTC), "5")


def test_text_settings_from_the_environment_arrive_as_given():
    """A 0x... address or key and a digits-only secret in CONNECTOR_* variables reach the settings unchanged.

    Found by the crash test with Ethereum: every environment value is parsed as YAML, so a hex address
    became an integer and reached the relay as decimal digits ("Unknown format '6101...'").
    """
    address, key, secret = "0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x" + "42" * 32, "0123"
    env = {
        "CONNECTOR_ETHEREUM_CONTRACT_ADDRESS": address,
        "CONNECTOR_ETHEREUM_REPORTER_KEY": key,
        "CONNECTOR_INGEST_NOTIFY_SECRET": secret,
    }
    settings = load_settings(environ=env)
    got = (settings.ethereum.contract_address, settings.ethereum.reporter_key, settings.ingest.notify_secret)
    assert got == (address, key, secret)
