"""The Orion stand-in itself refuses what Orion refuses, so the manager's tests mean something."""

from __future__ import annotations

import pytest
import requests

GOOD = {
    "description": "x",
    "subject": {"entities": [{"idPattern": ".*", "type": "SMX"}]},
    "notification": {"http": {"url": "http://c:8668/notify"}},
}


@pytest.mark.parametrize(
    "headers, body, status, description",
    [
        ({"Content-Type": "text/plain"}, GOOD, 415, "not supported content type"),
        ({"Content-Type": "application/json", "Fiware-ServicePath": "terni"}, GOOD, 400, "Only /absolute/"),
        ({"Content-Type": "application/json", "Fiware-Service": "t-k"}, GOOD, 400, "tenant name"),
        ({"Content-Type": "application/json"}, {**GOOD, "colour": 1}, 400, "invalid JSON field: /colour/"),
        ({"Content-Type": "application/json"}, {"description": "x"}, 400, "no subject"),
        (
            {"Content-Type": "application/json"},
            {**GOOD, "notification": {"http": {"url": "http://c/n"}, "attrsFormat": "legacy"}},
            400,
            "invalid attrsFormat",
        ),
    ],
)
def test_bad_v2_subscription_requests_get_orions_errors(orion, headers, body, status, description):
    """Wrong content type, service path, tenant, field or format: Orion's status and error JSON."""
    resp = requests.post(orion.url + "/v2/subscriptions", json=body, headers=headers, timeout=5)
    assert resp.status_code == status
    assert set(resp.json()) == {"error", "description"} and description in resp.json()["description"]
    assert orion.all() == [] and orion.all("t-k") == []


def test_ld_subscription_needs_context_in_ld_json(orion):
    """Orion-LD: application/ld+json without @context is a 400 in NGSI-LD's error shape."""
    body = {
        "type": "Subscription",
        "entities": [{"type": "SMX"}],
        "notification": {"endpoint": {"uri": "http://c/n"}},
    }
    resp = requests.post(
        orion.url + "/ngsi-ld/v1/subscriptions",
        json=body,
        headers={"Content-Type": "application/ld+json"},
        timeout=5,
    )
    assert resp.status_code == 400 and resp.json()["title"] == "BadRequestData"


def test_unknown_subscription_is_404(orion):
    """PATCH of an id Orion does not know: 404 NotFound."""
    resp = requests.patch(
        orion.url + "/v2/subscriptions/0123456789abcdef01234567",
        json={"status": "active"},
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert resp.status_code == 404 and resp.json()["error"] == "NotFound"
