"""What the subscription manager leaves alone, how one tenant's failure stays its own, and the secret
Orion must send: against the Orion stand-in with Orion v2's and Orion-LD's behaviours."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from connector.service import build_services
from ngsi.orion import OrionRequestError, OrionUnavailable
from tests.asgi_client import connector_client

from .conftest import NOTIFY_URL, manager

SECRET = {"ingest__notify_secret": "s3cret-value", "ingest__notify_secret_header": "X-Connector-Secret"}


# --- re-activation policy --------------------------------------------------------------------------------


def test_operator_inactive_subscription_is_left_alone_and_reported(orion, make_settings):
    """status inactive without Orion's failures (an operator did it): no PATCH; log and metric say so."""
    registry = CollectorRegistry()
    mgr = manager(make_settings(), registry=registry)
    (created,) = mgr.ensure()
    orion.set_fields("", created.subscription_id, status="inactive")
    writes = len(orion.writes())
    with capture_logs() as logs:
        (status,) = mgr.check()
    assert (status.status, status.action) == ("inactive", "left_inactive")
    assert len(orion.writes()) == writes and orion.all()[0]["status"] == "inactive"
    assert [e["log_level"] for e in logs if e["event"] == "orion.subscription.left_inactive"] == ["warning"]
    assert registry.get_sample_value(
        "connector_orion_subscription_changes_total", {"action": "left_inactive"}
    )
    assert mgr.health()["status"] == "failing"


def test_failures_below_the_limit_do_not_make_an_operators_inactive_ours(orion, make_settings):
    """Inactive with failsCounter under maxFailsLimit was not Orion's doing: left alone."""
    mgr = manager(make_settings(orion__max_fails_limit=5))
    (created,) = mgr.ensure()
    for _ in range(2):
        orion.deliver("", created.subscription_id, code=None)
    orion.set_fields("", created.subscription_id, status="inactive")
    assert mgr.ensure()[0].action == "left_inactive"


def test_a_subscription_whose_expiry_has_passed_is_left_alone(orion, make_settings):
    """expires in the past (Orion lists it `expired`): no PATCH of status or expiry."""
    mgr = manager(make_settings())
    (created,) = mgr.ensure()
    orion.set_fields("", created.subscription_id, expires="2020-01-01T00:00:00.000Z")
    writes = len(orion.writes())
    (outcome,) = mgr.ensure()
    assert outcome.action == "left_expired"
    assert len(orion.writes()) == writes
    assert orion.all()[0]["expires"] == "2020-01-01T00:00:00.000Z"


def test_orion_v2_failed_status_is_active_not_reactivated(orion, make_settings):
    """Orion lists an active subscription whose last delivery failed as `failed`: counted, not PATCHed."""
    registry = CollectorRegistry()
    mgr = manager(make_settings(), registry=registry)
    (created,) = mgr.ensure()
    orion.deliver("", created.subscription_id, code=None, reason="Timeout was reached")
    writes = len(orion.writes())
    (status,) = mgr.check()
    assert (status.status, status.fails_counter, status.action) == ("failed", 1, "unchanged")
    assert status.last_failure_reason == "Timeout was reached"
    assert len(orion.writes()) == writes
    labels = {"tenant": "", "service_path": "/#", "entity_type": "SMX"}
    assert registry.get_sample_value("connector_orion_subscription_fails", labels) == 1


def test_ngsi_ld_operator_paused_subscription_is_left_alone(orion, make_settings):
    """Orion-LD: isActive false without 3 consecutive failures (an operator paused it) stays paused."""
    mgr = manager(make_settings(orion__ld=True))
    (created,) = mgr.ensure()
    orion.deliver("", created.subscription_id, code=500)
    orion.set_fields("", created.subscription_id, status="paused")
    assert mgr.ensure()[0].action == "left_inactive"
    assert orion.all()[0]["status"] == "paused"


# --- tenants ----------------------------------------------------------------------------------------------


def test_ngsi_ld_new_tenant_404_on_get_is_created_by_post(orion, make_settings):
    """Orion-LD answers 404 "No such tenant" to GET for a new tenant: the POST creates it, and the
    tenants after it (the default one included) are reconciled too."""
    mgr = manager(make_settings(orion__ld=True, orion__tenants=["new1", "new2", ""]))
    with capture_logs() as logs:
        outcomes = mgr.ensure()
    assert [(o.tenant, o.action) for o in outcomes] == [
        ("new1", "created"),
        ("new2", "created"),
        ("", "created"),
    ]
    gets = [r for r in orion.requests if r.method == "GET"]
    assert len(gets) == 3
    assert [e["tenant"] for e in logs if e["event"] == "orion.tenant.new"] == ["new1", "new2"]
    assert {o.action for o in mgr.ensure()} == {"unchanged"}  # the tenants exist now: GET answers 200


def test_the_404_raises_for_ngsiv2(orion, make_settings):
    """A 404 on GET from Orion v2 is not a new tenant: it is raised (after the other tenants are done)."""
    orion.fail_next[:] = [404]
    mgr = manager(make_settings(orion__tenants=["a", "b"]))
    with pytest.raises(OrionRequestError):
        mgr.ensure()
    assert len(orion.all("b")) == 1 and orion.all("a") == []


def test_one_tenants_failure_does_not_stop_the_others(orion, make_settings):
    """The first tenant's listing fails: later tenants, the default one included, still get theirs;
    the failure is logged, counted, shown in health, then raised."""
    registry = CollectorRegistry()
    orion.fail_next[:] = [503, 503]
    mgr = manager(make_settings(orion__tenants=["tk", "t2", ""]), registry=registry, attempts=2)
    with capture_logs() as logs, pytest.raises(OrionUnavailable, match="GET /v2/subscriptions"):
        mgr.check()
    assert orion.all("tk") == [] and len(orion.all("t2")) == 1 and len(orion.all("")) == 1
    failed = [e for e in logs if e["event"] == "orion.tenant.failed"]
    assert [(e["tenant"], e["log_level"]) for e in failed] == [("tk", "error")]
    assert registry.get_sample_value("connector_orion_subscription_errors_total", {"tenant": "tk"}) == 1
    health = mgr.health()
    assert health["status"] == "failing" and list(health["errors"]) == ["tk"]
    assert [s["tenant"] for s in health["subscriptions"]] == ["t2", ""]
    assert [s.tenant for s in mgr.check()] == ["tk", "t2", ""]  # Orion answers again: all three
    assert mgr.health()["status"] == "ok"


# --- the notify secret ------------------------------------------------------------------------------------


def test_v2_subscription_sends_the_secret_through_http_custom(orion, make_settings):
    """With ingest.notify_secret: notification.httpCustom with the header (Orion 4), idempotent."""
    mgr = manager(make_settings(**SECRET))
    mgr.ensure()
    post = orion.writes()[0]
    assert "http" not in post.body["notification"]
    assert post.body["notification"]["httpCustom"] == {
        "url": NOTIFY_URL,
        "headers": {"X-Connector-Secret": "s3cret-value"},
        "timeout": 5000,
    }
    assert mgr.ensure()[0].action == "unchanged"


def test_ld_subscription_sends_the_secret_through_receiver_info(orion, make_settings):
    """NGSI-LD: notification.endpoint.receiverInfo carries the header Orion-LD adds to notifications."""
    mgr = manager(make_settings(orion__ld=True, **SECRET))
    mgr.ensure()
    endpoint = orion.writes()[0].body["notification"]["endpoint"]
    assert endpoint["receiverInfo"] == [{"key": "X-Connector-Secret", "value": "s3cret-value"}]
    assert mgr.ensure()[0].action == "unchanged"


def test_a_subscription_without_the_secret_is_updated_to_send_it(orion, make_settings):
    """A plain-http subscription from before the secret was set is PATCHed to httpCustom, same id."""
    (before,) = manager(make_settings()).ensure()
    (outcome,) = manager(make_settings(**SECRET)).ensure()
    assert (outcome.action, outcome.subscription_id, outcome.changed) == (
        "updated",
        before.subscription_id,
        ("notification",),
    )
    headers = orion.all()[0]["notification"]["httpCustom"]["headers"]
    assert headers == {"X-Connector-Secret": "s3cret-value"}


def test_an_operators_http_custom_keeps_its_shape(orion, make_settings):
    """An operator's httpCustom (own header, qs) at our URL is not rewritten; adding the secret keeps them."""
    (created,) = manager(make_settings()).ensure()
    custom = {"url": NOTIFY_URL, "timeout": 5000, "headers": {"X-Site": "terni"}, "qs": {"src": "orion"}}
    notification = orion.all()[0]["notification"]
    del notification["http"]
    notification["httpCustom"] = custom
    assert manager(make_settings()).ensure()[0].action == "unchanged"

    assert manager(make_settings(**SECRET)).ensure()[0].action == "updated"
    stored = orion.all()[0]["notification"]["httpCustom"]
    assert stored["qs"] == {"src": "orion"}
    assert stored["headers"] == {"X-Site": "terni", "X-Connector-Secret": "s3cret-value"}
    assert manager(make_settings(**SECRET)).ensure()[0].action == "unchanged"


def test_ld_operators_receiver_info_is_kept(orion, make_settings):
    """NGSI-LD: the operator's other receiverInfo entries stay next to the secret."""
    manager(make_settings(orion__ld=True)).ensure()
    endpoint = orion.all()[0]["notification"]["endpoint"]
    endpoint["receiverInfo"] = [{"key": "X-Site", "value": "terni"}]
    assert manager(make_settings(orion__ld=True)).ensure()[0].action == "unchanged"
    assert manager(make_settings(orion__ld=True, **SECRET)).ensure()[0].action == "updated"
    assert orion.all()[0]["notification"]["endpoint"]["receiverInfo"] == [
        {"key": "X-Site", "value": "terni"},
        {"key": "X-Connector-Secret", "value": "s3cret-value"},
    ]


@pytest.mark.parametrize("ld", [False, True], ids=["v2", "ld"])
def test_the_header_orion_is_told_to_send_passes_the_connectors_notify(orion, make_settings, store, ld):
    """The secret header exactly as the stored subscription makes Orion send it: /notify answers 200;
    the same notification without it gets 401 (what every notification got before)."""
    from tests.connector import payloads as p

    settings = make_settings(orion__ld=ld, **SECRET)
    manager(settings).ensure()
    n = orion.all()[0]["notification"]
    infos = n["endpoint"]["receiverInfo"] if ld else []
    sent = {i["key"]: i["value"] for i in infos} if ld else n["httpCustom"]["headers"]
    body = p.LD if ld else p.NORMALIZED
    client = connector_client(build_services(settings, store))
    headers = {"Content-Type": "application/json"}
    assert client.post("/notify", data=body, headers=headers).status_code == 401
    answer = client.post("/notify", data=body, headers={**headers, **sent})
    assert answer.status_code == 200, answer.get_json()
