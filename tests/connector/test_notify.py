"""POST /notify: every Orion format stored, errors answered with a clear 4xx, duplicates counted."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import structlog
from sqlalchemy import select
from structlog.testing import capture_logs

from connector.service import build_services
from connector.store.models import LedgerOutbox, Meter, Reading
from tests.asgi_client import connector_client
from tests.connector import payloads as p


def post(client, body, headers=None, **kw):
    return client.post("/notify", data=body, headers={**p.ORION_HEADERS, **(headers or {})}, **kw)


def rows(store, model):
    with store.reading() as conn:
        return conn.execute(select(model)).all()


@pytest.mark.parametrize(
    ("body", "attrs_format", "expected"),
    [
        (p.NORMALIZED, "normalized", {("urn:ngsi-ld:SMX:BBB6099", "P"): "-84.891"}),
        (p.KEY_VALUES, "keyValues", {("Room1", "temperature"): "23", ("Room1", "humidity"): "70"}),
        (p.SIMPLIFIED_NORMALIZED, "simplifiedNormalized", {("urn:ngsi-ld:SMX:BBB6099", "P"): "-84.891"}),
        (
            p.SIMPLIFIED_KEY_VALUES,
            "simplifiedKeyValues",
            {("Room1", "temperature"): "23", ("Room1", "humidity"): "70"},
        ),
        (p.LEGACY, None, {("urn:ngsi-ld:SMX:BBB6099", "P"): "-84.891"}),
        (
            p.LD,
            None,
            {("urn:ngsi-ld:SMX:BBB6099", "P"): "-84.891", ("urn:ngsi-ld:SMX:BBB6099", "refMeter"): None},
        ),
    ],
)
def test_every_orion_format_is_stored_verbatim(client, store, body, attrs_format, expected):
    """Each payload of reference/orion.md, byte for byte, is committed before the 200."""
    headers = {"Ngsiv2-AttrsFormat": attrs_format} if attrs_format else {}
    resp = post(client, body, headers)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["accepted"] == len(expected)
    with store.reading() as conn:
        stored = conn.execute(select(Meter.entity_id, Reading.attr, Reading.number).join(Meter)).all()
    assert {(e, a): n for e, a, n in stored} == expected


def test_legacy_figure16_reading_has_metadata_time_and_number(client, store):
    """Seed 003 Figure 16: the string "-84.891" is the number -84.891 observed at its TimeInstant metadata."""
    assert post(client, p.LEGACY).status_code == 200
    (r,) = rows(store, Reading)
    assert Decimal(r.number) == Decimal("-84.891")
    assert r.observed_at.isoformat() == "2019-03-18T16:13:45.275000+00:00"
    assert r.time_source == "metadata"
    assert json.loads(r.value_json) == "-84.891"
    assert r.correlator == "9e10fc36-e5a7-11e8-a0a6-0242ac1a0005; cbnotif=1"


def test_new_meter_gets_its_create_queued_in_the_same_transaction(client, store):
    """The first reading of a meter registers it and queues exactly one CREATE."""
    post(client, p.NORMALIZED)
    post(client, p.normalized("urn:ngsi-ld:SMX:BBB6099", "2019-03-18T16:14:45.275Z", 10))
    (meter,) = rows(store, Meter)
    (outbox,) = rows(store, LedgerOutbox)
    assert outbox.operation == "CREATE" and outbox.meter_id == meter.id and outbox.status == "pending"
    assert meter.chain_head == meter.chain_seed


def test_same_reading_twice_is_stored_once_and_counted(client, store):
    """(tenant, path, entity, attribute, time) twice: one row, the second answer says duplicate."""
    first = post(client, p.NORMALIZED).get_json()
    second = post(client, p.NORMALIZED).get_json()
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 1)
    assert len(rows(store, Reading)) == 1


def test_same_reading_in_another_tenant_is_not_a_duplicate(client, store):
    """Tenants are separate: the same entity and time under two Fiware-Service values are two meters."""
    post(client, p.NORMALIZED, {"Fiware-Service": "tk"})
    post(client, p.NORMALIZED, {"Fiware-Service": "other"})
    assert sorted(m.tenant for m in rows(store, Meter)) == ["other", "tk"]


def test_ngsild_tenant_and_a_different_fiware_service_are_refused(client, store):
    """NGSILD-Tenant names the tenant; a Fiware-Service naming another tenant makes the request a 400."""
    assert post(client, p.LD, {"Fiware-Service": "v2tenant", "NGSILD-Tenant": "t1"}).status_code == 400
    post(client, p.LD, {"Fiware-Service": "T1", "NGSILD-Tenant": "t1"})
    assert [m.tenant for m in rows(store, Meter)] == ["t1"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        ("{not json", "application/json", 400, "not valid JSON"),
        ("", "application/json", 400, "empty body"),
        ("[1, 2]", "application/json", 400, ""),
        ('{"hello": "world"}', "application/json", 400, ""),
        (p.NORMALIZED, "text/plain", 415, "application/json"),
        (p.NORMALIZED, "application/x-www-form-urlencoded", 415, "application/json"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(client, store, body, content_type, status, needle):
    """Non-notifications and wrong content types are refused with a JSON message; nothing is stored."""
    resp = post(client, body, {"Content-Type": content_type})
    assert resp.status_code == status
    answer = resp.get_json()
    assert answer["description"] and needle in answer["description"]
    assert rows(store, Reading) == []


def test_oversized_notification_gets_413(client, settings, store):
    """A body over ingest.max_body is refused with 413 naming the limit."""
    big = '{"id":"x","type":"SMX","junk":"' + "a" * settings.ingest.max_body + '"}'
    resp = post(client, big)
    assert resp.status_code == 413
    assert str(settings.ingest.max_body) in resp.get_json()["description"]


def test_valid_entities_are_stored_next_to_invalid_ones(client, store):
    """A legacy batch with one broken entity: the good one is stored, the answer names the bad one."""
    body = json.loads(p.LEGACY)
    bad = json.loads(p.LEGACY)["contextResponses"][0]
    del bad["contextElement"]["id"]
    body["contextResponses"].append(bad)
    resp = post(client, json.dumps(body))
    assert resp.status_code == 200
    answer = resp.get_json()
    assert answer["accepted"] == 1
    assert len(answer["rejected"]) == 1 and answer["rejected"][0]["reason"]
    assert len(rows(store, Reading)) == 1


def test_reading_without_time_gets_receipt_time_and_says_so(client, store, clock):
    """keyValues without any time attribute: observed at the receipt time, marked 'receipt'."""
    post(client, p.KEY_VALUES, {"Ngsiv2-AttrsFormat": "keyValues"})
    for r in rows(store, Reading):
        assert r.time_source == "receipt" and r.observed_at == clock.now()


def test_notify_secret_is_required_when_configured(settings, store, clock):
    """With ingest.notify_secret set, /notify without the header is 401 and stores nothing."""
    from dataclasses import replace

    s = settings.replace(ingest=replace(settings.ingest, notify_secret="letmein"))
    client = connector_client(build_services(s, store, clock.now))
    assert post(client, p.NORMALIZED).status_code == 401
    assert post(client, p.NORMALIZED, {"X-Connector-Secret": "letmein"}).status_code == 200


def test_tenant_not_accepted_is_refused(settings, store, clock):
    """A tenant outside ingest.tenants gets 403 naming it."""
    from dataclasses import replace

    s = settings.replace(ingest=replace(settings.ingest, tenants=["tk"]))
    client = connector_client(build_services(s, store, clock.now))
    resp = post(client, p.NORMALIZED, {"Fiware-Service": "intruder"})
    assert resp.status_code == 403 and "intruder" in resp.get_json()["description"]
    assert post(client, p.NORMALIZED, {"Fiware-Service": "tk"}).status_code == 200


def test_health_and_metrics(client):
    """/health answers ok with the store up; /metrics counts notifications by format and outcome."""
    assert client.get("/health").get_json()["status"] == "ok"
    post(client, p.NORMALIZED)
    post(client, "{", {})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'connector_notifications_total{format="normalized",outcome="accepted"} 1.0' in text
    assert 'connector_readings_total{outcome="accepted"} 1.0' in text
    assert "connector_ack_latency_seconds_bucket" in text


def test_settlement_route_answers_when_ethereum_is_on(settings, store, clock):
    """With ethereum.enabled, GET /v1/meters/{id}/settlement serves the meter's relay rows (none yet)."""
    from dataclasses import replace

    s = settings.replace(ethereum=replace(settings.ethereum, enabled=True))
    client = connector_client(build_services(s, store, clock.now))
    assert post(client, p.NORMALIZED).status_code == 200
    resp = client.get("/v1/meters/urn:ngsi-ld:SMX:BBB6099/settlement")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["rows"] == []


REFUSED = [
    ("{not json", {}),
    ("", {}),
    ("[1, 2]", {}),
    ('{"hello": "world"}', {}),
    ('{"data": [{"id": "x"}]}', {}),
    (p.NORMALIZED, {"Content-Type": "text/plain"}),
    (p.NORMALIZED, {"Content-Type": "Application/JSON-Patch ; charset=latin-1"}),
    (p.NORMALIZED, {"Fiware-Service": "bad tenant!"}),
    (p.NORMALIZED, {"Fiware-ServicePath": "relative"}),
    (p.NORMALIZED, {"NGSILD-Tenant": "x" * 51}),
    (p.NORMALIZED, {"Ngsiv2-AttrsFormat": "values"}),
    (p.KEY_VALUES, {"Ngsiv2-AttrsFormat": "simplifiedKeyValues"}),
    ('{"subscriptionId": "s", "data": [{"id": "e", "type": "T", "P": "\\ud800"}]}', {}),
    ("1" * 5000, {}),
]


@pytest.mark.parametrize(("body", "headers"), REFUSED)
@pytest.mark.parametrize("path", ["/notify", "/v2/notify"])
def test_unusable_notifications_are_answered_in_json_on_both_paths(client, store, path, body, headers):
    """Each unusable body or header gets a 4xx naming the error, or a 200 listing what it rejected, in
    compact JSON (as Flask's jsonify wrote it); nothing is stored."""
    data = body.encode("utf-8", "surrogatepass")
    resp = client.post(path, data=data, headers={**p.ORION_HEADERS, **headers})
    assert resp.headers["Content-Type"] == "application/json"
    answer = resp.get_json()
    if resp.status_code == 200:
        assert answer["accepted"] == 0 and answer["rejected"]
    else:
        assert 400 <= resp.status_code < 500
        assert set(answer) == {"error", "description"} and answer["description"]
    assert resp.text == json.dumps(answer, separators=(",", ":")) + "\n"
    assert rows(store, Reading) == []


def test_notification_with_a_bad_entity_is_stored_and_lists_it(client):
    """A legacy notification with one bad entity: 200, one reading accepted, the bad one in `rejected`."""
    body = json.loads(p.LEGACY)
    body["contextResponses"].append({"contextElement": {"type": "SMX", "attributes": []}})
    answer = post(client, json.dumps(body)).get_json()
    assert answer["accepted"] == 1 and len(answer["rejected"]) == 1


def test_other_methods_and_routes_pass_the_notify_door(client):
    """GET /notify is 405 (POST only) with a JSON body; /health is the Flask app's route."""
    resp = client.get("/notify")
    assert resp.status_code == 405 and resp.get_json()["error"] == "MethodNotAllowed"
    assert client.get("/health").get_json()["status"] == "ok"


def test_chunked_notification_is_read_and_stored(client):
    """A notification sent in chunks (no Content-Length) is stored like a plain one."""
    body = p.NORMALIZED.encode()
    resp = client.post("/notify", headers=p.ORION_HEADERS, chunks=[body[:10], body[10:50], body[50:]])
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1


def test_body_without_length_or_chunks_reads_as_empty(client, store):
    """No Content-Length and not chunked: the body is empty (as werkzeug read it), answered 400."""
    resp = client.post("/notify", headers={**p.ORION_HEADERS, "Content-Length": "not-a-number"})
    assert resp.status_code == 400 and "empty body" in resp.get_json()["description"]


def test_declared_length_over_the_limit_is_413_after_the_secret(settings, store, clock):
    """A Content-Length over ingest.max_body is 413 unread; a wrong secret is still 401 first."""
    from dataclasses import replace

    s = settings.replace(ingest=replace(settings.ingest, notify_secret="letmein"))
    client = connector_client(build_services(s, store, clock.now))
    big = {"Content-Length": str(s.ingest.max_body + 1)}
    assert post(client, b"{}", big).status_code == 401
    resp = post(client, b"{}", {**big, "X-Connector-Secret": "letmein"})
    assert resp.status_code == 413 and "ingest.max_body" in resp.get_json()["description"]


def test_log_lines_carry_tenant_service_path_and_correlator(client):
    """`notify.stored` and `notify.rejected` lines carry the request's tenant, service path and correlator
    (bound once per request), and nothing of one request leaks into the next."""
    headers = {"Fiware-Service": "cityb", "Fiware-ServicePath": "/north", "Fiware-Correlator": "corr-1"}
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        assert post(client, p.NORMALIZED, {**headers, "Ngsiv2-AttrsFormat": "normalized"}).status_code == 200
        assert post(client, "{}", headers).status_code == 400
        assert post(client, p.NORMALIZED, {"Ngsiv2-AttrsFormat": "normalized"}).status_code == 200
    stored, rejected, plain = [e for e in logs if e["event"] in ("notify.stored", "notify.rejected")]
    assert stored["event"] == "notify.stored" and stored["accepted"] == 1
    for line in (stored, rejected):
        assert (line["tenant"], line["service_path"], line["correlator"]) == ("cityb", "/north", "corr-1")
    assert rejected["event"] == "notify.rejected" and rejected["status"] == 400
    assert (plain["tenant"], plain["service_path"]) == ("", "/")
    assert plain["correlator"] == p.ORION_HEADERS["Fiware-Correlator"]
