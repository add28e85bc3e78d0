"""The subscription manager against the Orion stand-in (real HTTP on loopback)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from connector.settings import subscription_settings
from ngsi.orion import OrionRequestError, OrionUnavailable, Scope
from ngsi.subscription_spec import SubscriptionSpecError, desired

from .conftest import NOTIFY_URL, manager


def test_creates_one_subscription_per_type_and_tenant_exactly_as_reference(orion, make_settings):
    """ensure() POSTs the reference body once per tenant, with Orion's tenant headers."""
    settings = make_settings(orion__tenants=["", "tk"], orion__service_path="/terni/#")
    outcomes = manager(settings).ensure()

    assert [(o.tenant, o.entity_type, o.action) for o in outcomes] == [
        ("", "SMX", "created"),
        ("tk", "SMX", "created"),
    ]
    posts = [r for r in orion.writes() if r.method == "POST"]
    assert "Fiware-Service" not in posts[0].headers
    assert posts[1].headers["Fiware-Service"] == "tk"
    assert {p.headers["Fiware-Servicepath"] for p in posts} == {"/terni/#"}
    assert posts[0].body == {
        "description": "smartmeter-connector: SMX",
        "subject": {"entities": [{"idPattern": ".*", "type": "SMX"}], "condition": {"attrs": ["P", "E"]}},
        "notification": {
            "http": {"url": NOTIFY_URL, "timeout": 5000},
            "attrs": ["P", "E", "TimeInstant", "serialNumber", "manufacturer"],
            "attrsFormat": "normalized",
            "metadata": ["TimeInstant"],
            "onlyChangedAttrs": False,
            "maxFailsLimit": 10,
        },
        "expires": "2040-01-01T00:00:00.00Z",
        "status": "active",
        "throttling": 0,
    }
    assert [s["id"] for s in orion.all("tk")] == [outcomes[1].subscription_id]


def test_second_run_changes_nothing(orion, make_settings):
    """Running ensure() twice: the second run sends no POST, PATCH or DELETE."""
    mgr = manager(make_settings(orion__tenants=["", "tk"]))
    mgr.ensure()
    writes = len(orion.writes())
    again = mgr.ensure()
    assert {o.action for o in again} == {"unchanged"}
    assert len(orion.writes()) == writes


def test_reactivates_what_orions_failure_policy_turned_off(orion, make_settings):
    """Failed deliveries past maxFailsLimit turn it inactive (Orion v2): PATCHed back to active, expiry
    kept; while still under the limit it is `failed`, active, and not touched."""
    mgr = manager(make_settings(orion__max_fails_limit=3))
    (created,) = mgr.ensure()
    for _ in range(3):
        orion.deliver("", created.subscription_id, code=None)
    (status,) = mgr.check()
    assert (status.status, status.fails_counter, status.action) == ("failed", 3, "unchanged")
    orion.deliver("", created.subscription_id, code=None)  # Orion: failsCounter 3 >= 3 -> inactive
    assert orion.all()[0]["status"] == "inactive"

    (outcome,) = mgr.ensure()
    assert outcome.action == "reactivated"
    patch = orion.writes()[-1]
    assert patch.method == "PATCH" and patch.path.startswith(f"/v2/subscriptions/{created.subscription_id}")
    assert patch.body["status"] == "active" and patch.body["expires"] == "2040-01-01T00:00:00.00Z"
    assert orion.all()[0]["status"] == "active"
    orion.deliver("", created.subscription_id, code=200)
    assert mgr.ensure()[0].action == "unchanged"


def test_updates_when_attributes_or_url_differ(orion, make_settings):
    """A changed attribute list or notify URL is PATCHed in place, keeping the same id."""
    (created,) = manager(make_settings()).ensure()
    changed = make_settings(
        entity_types__SMX__subscribe_attrs=["P", "TimeInstant"], orion__notify_url="http://c2:8668/notify"
    )
    (outcome,) = manager(changed).ensure()
    assert (outcome.action, outcome.subscription_id) == ("updated", created.subscription_id)
    assert outcome.changed == ("subject", "notification")
    (stored,) = orion.all()
    assert stored["subject"]["condition"]["attrs"] == ["P"]
    assert stored["notification"]["http"]["url"] == "http://c2:8668/notify"
    assert manager(changed).ensure()[0].action == "unchanged"


def test_deletes_duplicates_and_keeps_the_one_at_our_url(orion, make_settings):
    """Three subscriptions with our description: the one at our URL stays, the others are deleted."""
    other = manager(make_settings(orion__notify_url="http://old:1/notify"))
    other.ensure()
    orion.subs[""]["dup"] = {**orion.all()[0], "id": "dup"}
    ours = manager(make_settings())
    orion.subs[""]["mine"] = {
        **orion.all()[0],
        "id": "mine",
        "notification": {**orion.all()[0]["notification"]},
    }
    orion.subs[""]["mine"]["notification"]["http"] = {"url": NOTIFY_URL, "timeout": 5000}

    (outcome,) = ours.ensure()
    assert outcome.subscription_id == "mine" and outcome.action == "unchanged"
    assert len(outcome.deleted) == 2
    assert [s["id"] for s in orion.all()] == ["mine"]


def test_leaves_other_subscriptions_alone_and_pages_through_the_listing(orion, make_settings):
    """Foreign subscriptions are not touched; ours is found past the first page of 100."""
    foreign = make_settings(orion__notify_url="http://quantumleap:8668/v2/notify")
    client = manager(foreign).client
    for i in range(150):
        client.create_subscription(
            Scope(),
            {**desired(subscription_settings(foreign), "SMX").body, "description": f"quantumleap {i}"},
        )
    mgr = manager(make_settings())
    mgr.ensure()
    writes = len(orion.writes())
    assert mgr.ensure()[0].action == "unchanged"
    assert len(orion.writes()) == writes
    assert len(orion.all()) == 151


def test_transient_errors_are_retried(orion, make_settings):
    """Two 503s then success: ensure() still creates the subscription."""
    orion.fail_next[:] = [503, 503]
    (outcome,) = manager(make_settings()).ensure()
    assert outcome.action == "created"


def test_persistent_transient_errors_raise_unavailable(orion, make_settings):
    """Orion answering 503 on every attempt gives OrionUnavailable naming the request."""
    orion.fail_next[:] = [503, 503, 503]
    with pytest.raises(OrionUnavailable, match="GET /v2/subscriptions 3 times: 503"):
        manager(make_settings()).ensure()


def test_unreachable_orion_raises_unavailable(make_settings):
    """A refused connection is retried, then reported clearly."""
    settings = make_settings(orion__url="http://127.0.0.1:9")
    with pytest.raises(OrionUnavailable, match="127.0.0.1:9"):
        manager(settings, attempts=2).ensure()


def test_a_request_orion_refuses_raises_with_orions_description(orion, make_settings):
    """A 400 is raised with Orion's description, not retried."""
    mgr = manager(make_settings(entity_types__SMX__subscribe_attrs=["P", ""]))  # "": Orion says 400
    with pytest.raises(OrionRequestError, match="400 BadRequest: condition attrs is not an array") as err:
        mgr.ensure()
    assert err.value.status == 400
    assert len([r for r in orion.requests if r.method == "POST"]) == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"orion__notify_url": ""}, "orion.notify_url"),
        ({"orion__expires": "2020-01-01T00:00:00Z"}, "orion.expires: .* is in the past"),
        ({"orion__attrs_format": "values"}, "orion.attrs_format"),
    ],
)
def test_bad_orion_settings_raise_before_any_request(orion, make_settings, overrides, message):
    """Settings that cannot make a valid subscription are refused with the setting's name."""
    with pytest.raises(SubscriptionSpecError, match=message):
        manager(make_settings(**overrides)).ensure()
    assert orion.requests == []


def test_no_orion_url_means_nothing_to_do(orion, make_settings):
    """Without orion.url, ensure() and check() do nothing."""
    mgr = manager(make_settings(orion__url=""))
    assert mgr.ensure() == [] and mgr.check() == []


def test_check_exposes_orions_counters_and_reactivates(orion, make_settings):
    """check() turns timesSent/failsCounter/lastFailure into gauges and logs, and re-activates."""
    registry = CollectorRegistry()
    mgr = manager(make_settings(orion__tenants=["tk"]), registry=registry)
    (created,) = mgr.ensure()
    orion.set_fields("tk", created.subscription_id, status="inactive")  # Orion did it: failsCounter = limit
    orion.set_counters(
        "tk",
        created.subscription_id,
        timesSent=42,
        failsCounter=10,
        lastFailure="2026-03-18T16:00:00.000Z",
        lastFailureReason="Couldn't connect to server",
        lastSuccessCode=200,
    )
    with capture_logs() as logs:
        (status,) = mgr.check()

    assert (status.status, status.times_sent, status.fails_counter, status.action) == (
        "inactive",
        42,
        10,
        "reactivated",
    )
    assert status.last_failure_reason == "Couldn't connect to server"
    labels = {"tenant": "tk", "service_path": "/#", "entity_type": "SMX"}
    sample = registry.get_sample_value
    assert sample("connector_orion_subscription_times_sent", labels) == 42
    assert sample("connector_orion_subscription_fails", labels) == 10
    assert sample("connector_orion_subscription_active", labels) == 0
    assert sample("connector_orion_subscription_last_success_code", labels) == 200
    assert (
        sample("connector_orion_subscription_last_failure_timestamp_seconds", labels)
        == datetime(2026, 3, 18, 16, tzinfo=UTC).timestamp()
    )
    assert sample("connector_orion_subscription_changes_total", {"action": "reactivated"}) == 1
    warned = [e for e in logs if e["event"] == "orion.subscription.status"]
    assert warned[0]["log_level"] == "warning" and warned[0]["fails_counter"] == 10
    assert orion.all("tk")[0]["status"] == "active"


def test_check_recreates_a_deleted_subscription(orion, make_settings):
    """If someone deleted ours, check() reports it missing and creates it again."""
    mgr = manager(make_settings())
    (created,) = mgr.ensure()
    del orion.subs[""][created.subscription_id]
    (status,) = mgr.check()
    assert (status.status, status.action) == ("missing", "created")
    assert len(orion.all()) == 1


def test_ngsi_ld_subscription_created_paused_reactivated_idempotent(orion, make_settings):
    """NGSI-LD: ld+json body with watchedAttributes and endpoint.uri; paused -> isActive true; idempotent."""
    mgr = manager(make_settings(orion__ld=True, orion__tenants=["t1"]))
    (created,) = mgr.ensure()
    post = orion.writes()[0]
    assert post.path.startswith("/ngsi-ld/v1/subscriptions")
    assert post.headers["Content-Type"] == "application/ld+json"
    assert post.headers["Ngsild-Tenant"] == "t1"
    assert post.body["watchedAttributes"] == ["P", "E"]
    assert post.body["notification"]["endpoint"] == {"uri": NOTIFY_URL, "accept": "application/json"}
    assert post.body["notification"]["attributes"] == ["P", "E", "serialNumber", "manufacturer"]
    assert created.subscription_id.startswith("urn:ngsi-ld:subscription:")
    assert mgr.ensure()[0].action == "unchanged"

    for _ in range(3):  # Orion-LD pauses after 3 consecutive failed deliveries
        orion.deliver("t1", created.subscription_id, code=500)
    assert orion.all("t1")[0]["status"] == "paused"
    (outcome,) = mgr.ensure()
    assert outcome.action == "reactivated"
    assert orion.writes()[-1].body["isActive"] is True
    assert orion.all("t1")[0]["status"] == "active"
