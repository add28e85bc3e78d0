"""Meters, history and readings routes: tenancy, auth, pagination, aggregation, CSV and bad parameters."""

from __future__ import annotations

import csv
import io
from datetime import timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import inspect

from connector.api.tenancy import Scope, scope_from_headers
from tests.api import history as h

TENANT_A = {"Fiware-Service": "city_a"}
CET = timezone(timedelta(hours=1))


@pytest.fixture
def two_tenants(anchored, store, api_settings):  # type: ignore[no-untyped-def]
    """Tenant city_a: meters under /north and /south (one anchored); tenant city_b: one meter."""
    m = anchored("urn:a:1", n=8, tenant="city_a", path="/north")
    for entity, path in (("urn:a:2", "/north/x"), ("urn:a:3", "/south")):
        h.add_meter(store, entity, "city_a", path)
    h.add_meter(store, "urn:b:1", "city_b", "/north")
    return m


def test_meter_list_is_scoped_by_tenant_and_service_path(client, two_tenants):
    """A tenant sees only its own meters; Fiware-ServicePath /a/# covers the subtree, /a only /a."""
    ids = lambda r: [m["entityId"] for m in r.json["meters"]]  # noqa: E731
    assert ids(client.get("/v1/meters", headers=TENANT_A)) == ["urn:a:1", "urn:a:2", "urn:a:3"]
    assert ids(client.get("/v1/meters", headers={"Fiware-Service": "city_b"})) == ["urn:b:1"]
    assert ids(client.get("/v1/meters")) == []
    subtree = {**TENANT_A, "Fiware-ServicePath": "/north/#"}
    assert ids(client.get("/v1/meters", headers=subtree)) == ["urn:a:1", "urn:a:2"]
    exact = {**TENANT_A, "Fiware-ServicePath": "/north, /south"}
    assert ids(client.get("/v1/meters", headers=exact)) == ["urn:a:1", "urn:a:3"]
    assert client.get("/v1/meters/urn:b:1", headers=TENANT_A).status_code == 404
    assert client.get("/v1/meters/urn:a:1/history", headers={"Fiware-Service": "city_b"}).status_code == 404


def test_meter_list_filters_and_pages(client, two_tenants):
    """type and servicePath filter; limit/offset page with the total."""
    page = client.get("/v1/meters?limit=1&offset=1", headers=TENANT_A).json
    assert (page["total"], [m["entityId"] for m in page["meters"]]) == (3, ["urn:a:2"])
    assert client.get("/v1/meters?servicePath=/south", headers=TENANT_A).json["total"] == 1
    assert client.get("/v1/meters?type=Other", headers=TENANT_A).json["total"] == 0


def test_meter_detail_has_ledger_identity_and_counts(client, two_tenants):
    """The detail shows asset id, public key, CREATE id, first/last window and counts."""
    body = client.get("/v1/meters/urn:a:1", headers=TENANT_A).json
    assert body["assetId"] == body["createTxId"] and len(body["assetId"]) == 64
    assert body["publicKey"]
    assert body["counts"] == {"windows": 8, "readings": 240, "anchored": 8, "pending": 0, "dead": 0}
    assert body["firstWindow"] == two_tenants.windows[0].isoformat()
    assert body["lastWindow"] == two_tenants.windows[-1].isoformat()
    assert "private" not in str(body).lower()


def test_same_entity_id_in_two_service_paths_is_a_409(client, store, two_tenants):
    """An entity id present in two service paths needs Fiware-ServicePath to pick one."""
    h.add_meter(store, "urn:a:1", "city_a", "/south")
    assert client.get("/v1/meters/urn:a:1", headers=TENANT_A).status_code == 409
    picked = client.get("/v1/meters/urn:a:1", headers={**TENANT_A, "Fiware-ServicePath": "/north"})
    assert picked.status_code == 200 and picked.json["servicePath"] == "/north"


def test_bearer_tokens_per_tenant(make_client, api_settings, two_tenants):
    """With tokens configured, each tenant needs its own token (401 + WWW-Authenticate otherwise)."""
    api = api_settings.api.__class__(tokens={"city_a": "s3cret-a", "city_b": "s3cret-b"})
    client = make_client(api_settings.replace(api=api))
    missing = client.get("/v1/meters", headers=TENANT_A)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/v1/meters", headers={**TENANT_A, "Authorization": "Bearer s3cret-b"})
    assert wrong.status_code == 401
    ok = client.get("/v1/meters", headers={**TENANT_A, "Authorization": "Bearer s3cret-a"})
    assert ok.status_code == 200 and ok.json["total"] == 3
    assert client.get("/v1/meters", headers={"Authorization": "Bearer s3cret-a"}).status_code == 401
    assert client.get("/v1/meters", headers={**TENANT_A, "Authorization": "Bearer ñ"}).status_code == 401
    assert client.get("/openapi.json").status_code == 200


BAD_HISTORY_QUERIES = [
    ("from=yesterday", "from"),
    ("from=2024-03-02T00:00:00Z&to=2024-03-01T00:00:00Z", "from"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("offset=-1", "offset"),
    ("order=sideways", "order"),
    ("aggregate=week", "aggregate"),
    ("source=cache", "source"),
]


def test_bad_history_parameters_are_400_naming_the_parameter(client, store):
    """A bad parameter (bad time, from after to, limit out of range, unknown order) is a 400 naming it."""
    h.add_meter(store, "urn:a:1", "city_a", "/north")
    for query, problem in BAD_HISTORY_QUERIES:
        answer = client.get(f"/v1/meters/urn:a:1/history?{query}", headers=TENANT_A)
        assert answer.status_code == 400, query
        assert problem in answer.json["errors"] and problem in answer.json["description"], query


def test_bad_headers_are_400(client):
    """A malformed Fiware-Service or Fiware-ServicePath is a 400, not an empty answer."""
    assert client.get("/v1/meters", headers={"Fiware-Service": "a b"}).status_code == 400
    assert client.get("/v1/meters", headers={"Fiware-ServicePath": "north"}).status_code == 400
    assert client.get("/v1/meters", headers={"Fiware-ServicePath": ",".join(["/a"] * 11)}).status_code == 400


def test_scope_parsing_defaults():
    """No headers: the default tenant and every service path."""
    assert scope_from_headers({}) == Scope("", ("/#",))  # type: ignore[arg-type]


def test_history_pages_from_index_and_ledger_agree(client, two_tenants):
    """The local index and the ledger give the same TRANSFER ids, heights and metadata, in either order."""
    url = "/v1/meters/urn:a:1/history"
    index = client.get(f"{url}?limit=3&offset=2&order=desc", headers=TENANT_A).json
    ledger = client.get(f"{url}?limit=3&offset=2&order=desc&source=ledger", headers=TENANT_A).json
    assert index["total"] == ledger["total"] == 8
    assert index["windows"] == ledger["windows"]
    starts = [w["start"] for w in index["windows"]]
    assert starts == [ws.isoformat() for ws in reversed(two_tenants.windows)][2:5]
    assert all(
        w["blockHeight"] and w["metadata"]["schema"] == "smartmeter-connector/window/v1"
        for w in ledger["windows"]
    )
    ranged = client.get(url, query_string={"from": starts[-1], "to": starts[0]}, headers=TENANT_A).json
    assert [w["start"] for w in ranged["windows"]] == list(reversed(starts))[:2]


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (timedelta(0), timedelta(0)),
        (timedelta(milliseconds=500), timedelta(milliseconds=500)),
        (-timedelta(microseconds=1), -timedelta(microseconds=1)),
        (timedelta(seconds=1), timedelta(minutes=14, seconds=59, microseconds=999_999)),
    ],
)
def test_history_bounds_between_whole_seconds_match_the_ledger(client, two_tenants, lo, hi):
    """from/to with fractions of a second or another offset select exactly the windows whose start is in
    [from, to), the same as the ledger source, which compares times directly."""
    url = "/v1/meters/urn:a:1/history"
    starts = two_tenants.windows
    bounds = {"from": (starts[2] + lo).isoformat(), "to": (starts[5] + hi).astimezone(CET).isoformat()}
    index = client.get(url, query_string=bounds, headers=TENANT_A).json
    ledger = client.get(url, query_string={**bounds, "source": "ledger"}, headers=TENANT_A).json
    expected = [ws.isoformat() for ws in starts if starts[2] + lo <= ws < starts[5] + hi]
    assert [w["start"] for w in index["windows"]] == expected and index["total"] == len(expected)
    assert index["windows"] == ledger["windows"]
    hours = client.get(url, query_string={**bounds, "aggregate": "hour"}, headers=TENANT_A).json
    assert sum(b["windows"] for b in hours["buckets"]) == len(expected)


def test_ledger_page_looked_up_in_parallel_equals_the_index_page(client, two_tenants):
    """A page of 7 windows from the ledger (block heights looked up by several threads) keeps the order,
    heights and metadata of the index page."""
    url = "/v1/meters/urn:a:1/history?limit=7&offset=1"
    index = client.get(url, headers=TENANT_A).json
    ledger = client.get(url + "&source=ledger", headers=TENANT_A).json
    assert len(index["windows"]) == 7 and index["windows"] == ledger["windows"]
    heights = [w["blockHeight"] for w in ledger["windows"]]
    assert all(heights) and heights == sorted(heights)


def test_store_has_the_history_index(store):
    """The migrations create the index the history route counts and pages from (as the model declares)."""
    names = {i["name"] for i in inspect(store.write).get_indexes("ledger_outbox")}
    assert "ix_ledger_outbox_history" in names


def test_history_aggregates_by_hour_and_day(client, two_tenants):
    """aggregate=hour folds 4 windows per hour: energy summed, counts summed, min of mins, max of maxes."""
    url = "/v1/meters/urn:a:1/history"
    windows = client.get(f"{url}?limit=8", headers=TENANT_A).json["windows"]
    hours = client.get(f"{url}?aggregate=hour", headers=TENANT_A).json
    assert hours["total"] == 2 and [b["windows"] for b in hours["buckets"]] == [4, 4]
    first = hours["buckets"][0]
    power = [a for w in windows[:4] for a in w["metadata"]["attributes"] if a["attr"] == "P"]
    p_bucket = next(a for a in first["attributes"] if a["attr"] == "P")
    assert p_bucket["count"] == 60
    assert Decimal(p_bucket["min"]) == min(Decimal(a["min"]) for a in power)
    assert Decimal(p_bucket["max"]) == max(Decimal(a["max"]) for a in power)
    assert Decimal(p_bucket["energy_wh"]) == sum(Decimal(a["energy_wh"]) for a in power)
    day = client.get(f"{url}?aggregate=day", headers=TENANT_A).json
    assert day["total"] == 1 and day["buckets"][0]["readings"] == 240
    assert Decimal(day["buckets"][0]["energyWh"]) == sum(Decimal(b["energyWh"]) for b in hours["buckets"])
    from_ledger = client.get(f"{url}?aggregate=day&source=ledger", headers=TENANT_A).json
    assert from_ledger["buckets"] == day["buckets"]


def test_readings_as_json_and_csv(client, two_tenants):
    """Raw readings page by observation time, filter by attribute, and come as CSV on Accept: text/csv."""
    url = "/v1/meters/urn:a:1/readings"
    ws = two_tenants.windows[1]
    body = client.get(
        url, query_string={"from": ws.isoformat(), "attr": "P", "limit": 5}, headers=TENANT_A
    ).json
    assert body["total"] == 7 * 15 and len(body["readings"]) == 5
    assert {r["attr"] for r in body["readings"]} == {"P"}
    assert body["readings"][0]["value"] == float(body["readings"][0]["number"])
    answer = client.get(url, query_string={"limit": 4}, headers={**TENANT_A, "Accept": "text/csv"})
    assert answer.mimetype == "text/csv" and answer.headers["X-Total-Count"] == "240"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0][:3] == ["attr", "attr_type", "observed_at"] and len(rows) == 5
    assert client.get("/v1/meters/urn:nope/readings", headers=TENANT_A).status_code == 404


def test_settlement_is_404_when_ethereum_is_off(client, two_tenants):
    """Without Ethereum the settlement route answers a clean 404."""
    answer = client.get("/v1/meters/urn:a:1/settlement", headers=TENANT_A)
    assert answer.status_code == 404 and "settlement not configured" in answer.json["description"]
