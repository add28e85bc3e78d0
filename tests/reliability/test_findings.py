"""Defects the fuzzer found, kept as regression tests once fixed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from connector.app import create_app
from connector.context import Services
from connector.store.models import Reading


def test_normalized_shape_is_not_judged_by_an_attributeless_first_entity(settings, store, clock):
    """Without Ngsiv2-AttrsFormat, a normalized reading after an id-only entity keeps its value and time."""
    client = create_app(Services(settings, store, clock.now)).test_client()
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
