"""POST /notify with what real Orion and Orion-LD brokers send: every well-formed notification is answered
2xx, its usable readings stored, its unusable parts listed and counted (issue 15). Payloads are our own."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlalchemy import select

from connector.store.models import Meter, Reading
from tests.connector import payloads as p

LD_TENANT = {"Content-Type": "application/json", "NGSILD-Tenant": "grid", "Link": "<x>; rel=context"}


def post(client, body, headers=None):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/notify", data=data, headers={**p.ORION_HEADERS, **(headers or {})})


def stored(store):
    with store.reading() as conn:
        q = select(Meter.tenant, Meter.service_path, Meter.entity_id, Reading.attr, Reading.number,
                   Reading.observed_at, Reading.time_source).join(Meter)  # fmt: skip
        return conn.execute(q.order_by(Meter.entity_id, Reading.attr)).all()


def ld(*entities):
    return {"id": "urn:ngsi-ld:Notification:n1", "type": "Notification", "subscriptionId": "urn:s:1",
            "notifiedAt": "2024-05-01T10:00:01.000Z", "data": list(entities)}  # fmt: skip


def metric(client, name, **labels):
    text = client.get("/metrics").get_data(as_text=True)
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    found = [line.split()[-1] for line in text.splitlines() if line.startswith(want + " ")]
    return float(found[0]) if found else 0.0


def test_ld_typed_datetime_times_the_readings(client, store):
    """An NGSI-LD {"@type": "DateTime", "@value": ...} dateObserved is the readings' time, none is lost."""
    when = {"type": "Property", "value": {"@type": "DateTime", "@value": "2024-05-01T09:58:14.000Z"}}
    attrs = {f"a{k}": {"type": "Property", "value": k} for k in range(21)}
    body = ld({"id": "urn:w:1", "type": "WeatherObserved", "dateObserved": when, **attrs})
    resp = post(client, body, LD_TENANT)
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 21, resp.get_json()
    rows = stored(store)
    assert {r.time_source for r in rows} == {"dateObserved"}
    assert {r.observed_at.isoformat() for r in rows} == {"2024-05-01T09:58:14+00:00"}


def test_time_named_attribute_without_a_date_falls_back_and_is_stored(client, store):
    """A "timestamp" holding 37 is no time source: the others fall back to receipt, 37 is stored too."""
    body = {"data": [{"id": "m1", "type": "T", "timestamp": {"type": "nothing", "value": 37},
                      "A": {"type": "Number", "value": 1}}]}  # fmt: skip
    resp = post(client, body, {"Ngsiv2-AttrsFormat": "normalized"})
    assert resp.status_code == 200 and resp.get_json()["rejected"] == []
    assert {(r.attr, r.number, r.time_source) for r in stored(store)} == {
        ("A", "1", "receipt"),
        ("timestamp", "37", "receipt"),
    }


def test_legacy_untyped_attribute_and_one_service_path_per_entity(client, store):
    """NGSIv1 "type": "" is an untyped attribute; "/a,/b" gives the n-th entity the n-th path."""
    element = lambda eid, v: {"contextElement": {"id": eid, "type": "ET", "isPattern": "false",  # noqa: E731
        "attributes": [{"name": "A", "type": "", "value": v}]}, "statusCode": {"code": "200"}}  # fmt: skip
    body = {"subscriptionId": "s1", "originator": "localhost",
            "contextResponses": [element("E1", "1.5"), element("E2", "2.5")]}  # fmt: skip
    resp = post(client, body, {"Fiware-Service": "t1", "Fiware-ServicePath": "/a,/b"})
    assert resp.status_code == 200, resp.get_json()
    assert [(r.tenant, r.service_path, r.entity_id, r.number) for r in stored(store)] == [
        ("t1", "/a", "E1", "1.5"),
        ("t1", "/b", "E2", "2.5"),
    ]
    with store.reading() as conn:
        assert conn.execute(select(Reading.attr_type)).scalars().all() == [None, None]


@pytest.mark.parametrize(
    ("entity", "reason"),
    [
        ({"id": "urn:x:1", "type": "T", "deletedAt": "2024-05-01T10:00:00.000Z"}, "deletedAt"),
        ({"id": "urn:x:1", "type": "T", "observedAt": "2024-05-01T10:00:00Z"}, "only its id, type and time"),
    ],
)
def test_deleted_or_time_only_entity_is_answered_200_and_counted(client, store, entity, reason):
    """Orion-LD counts non-2xx as failures: nothing to store is 200, listed in rejected and counted."""
    before = metric(client, "connector_readings_total", outcome="rejected")
    resp = post(client, ld(entity), LD_TENANT)
    assert resp.status_code == 200, resp.get_json()
    answer = resp.get_json()
    assert answer["accepted"] == 0 and reason in answer["rejected"][0]["reason"]
    assert stored(store) == []
    assert metric(client, "connector_readings_total", outcome="rejected") == before + 1
    assert metric(client, "connector_notifications_total", format="ld", outcome="accepted") == 1


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_numbers_are_rejected_per_reading(client, store, literal):
    """NaN, infinities and numbers beyond a double are rejected with a reason; the other value stays."""
    a = f'"A":{{"type":"Number","value":{literal}}}'
    c = f'"C":{{"type":"StructuredValue","value":[1,{literal}]}}'
    body = f'{{"data":[{{"id":"m1","type":"T",{a},"B":{{"type":"Number","value":2}},{c}}}]}}'
    resp = post(client, body, {"Ngsiv2-AttrsFormat": "normalized"})
    assert resp.status_code == 200
    answer = resp.get_json()
    assert [(r["where"], "NaN, Infinity" in r["reason"]) for r in answer["rejected"]] == [
        ("data[0].A", True),
        ("data[0].C", True),
    ]
    assert [(r.attr, r.number) for r in stored(store)] == [("B", "2")]
    readings = client.get("/v1/meters/m1/readings")
    assert readings.status_code == 200 and json.loads(readings.data)["total"] == 1


@pytest.mark.parametrize(
    ("body", "headers", "fmt"),
    [
        ({"contextResponses": "nope"}, {}, "legacy"),
        ({"type": "Notification", "data": []}, {}, "ld"),
        ({"data": [{"type": "T"}]}, {"Ngsiv2-AttrsFormat": "keyValues"}, "keyValues"),
        ({"data": [[1, 2]]}, {"Ngsiv2-AttrsFormat": "values"}, "values"),
        ({"data": [[1, 2]]}, {}, "values"),
        ({"data": []}, {"Fiware-ServicePath": "no-slash"}, "normalized"),
    ],
)
def test_rejected_notifications_are_counted_under_their_format(client, body, headers, fmt):
    """A 400 is counted as connector_notifications_total{format=<its format>, outcome="rejected"}."""
    resp = post(client, body, headers)
    assert resp.status_code == 400
    assert metric(client, "connector_notifications_total", format=fmt, outcome="rejected") == 1
    assert metric(client, "connector_notifications_total", format="unknown", outcome="rejected") == 0


def test_pre_1970_reading_is_rejected_with_a_reason(client, store):
    """A meter whose clock reset reports 1969: that reading is rejected, the notification's others stored."""

    def attr(value: int, when: str) -> dict:
        return {"type": "Number", "value": value, "metadata": {"TimeInstant": {"value": when}}}

    body = {"data": [{"id": "m1", "type": "T", "A": attr(1, "1969-12-31T23:59:00Z"),
                      "B": attr(2, "2024-01-01T00:00:00Z")}]}  # fmt: skip
    resp = post(client, body, {"Ngsiv2-AttrsFormat": "normalized"})
    assert resp.status_code == 200
    [rejected] = resp.get_json()["rejected"]
    assert rejected["where"] == "data[0].A" and "before 1970-01-01" in rejected["reason"]
    assert [r.attr for r in stored(store)] == ["B"]


def test_ld_geojson_notification_is_stored(client, store):
    """Orion-LD's application/geo+json notification (a FeatureCollection in data) is read like entities."""
    feature = {"type": "Feature", "id": "urn:g:1", "geometry": {"type": "Point", "coordinates": [1, 2]},
               "properties": {"type": "T", "P1": 7, "P2": "text"}}  # fmt: skip
    body = {**ld(), "data": {"type": "FeatureCollection", "features": [feature]}}
    resp = post(client, body, {**LD_TENANT, "Content-Type": "application/geo+json"})
    assert resp.status_code == 200, resp.get_json()
    assert {(r.entity_id, r.attr, r.number) for r in stored(store)} == {
        ("urn:g:1", "P1", "7"),
        ("urn:g:1", "P2", None),
    }


def test_unreadable_earliest_observation_stops_the_app(services):
    """ingest.earliest_observation that is no date-time is refused when the app is built, naming it."""
    from connector.app import create_app
    from connector.settings import SettingsError

    ingest = dataclasses.replace(services.settings.ingest, earliest_observation="last tuesday")
    services.settings = services.settings.replace(ingest=ingest)
    with pytest.raises(SettingsError, match="ingest.earliest_observation"):
        create_app(services)
