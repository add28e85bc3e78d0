"""Issue 19: one tenant rule on both sides (case, header precedence, tokens) and every route reaching every
entity id that ingest accepts, including ids with '/'."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from connector.settings import SettingsError, load_settings
from tests.api import history as h

ORION = {"Content-Type": "application/json", "Fiware-ServicePath": "/"}


def notification(entity_id: str, when: str = "2024-03-01T00:01:00Z", power: float = 12.5) -> str:
    """A normalized NGSIv2 notification: one SMX entity, one power reading."""
    meta = {"TimeInstant": {"type": "DateTime", "value": when}}
    entity = {"id": entity_id, "type": "SMX", "P": {"type": "Number", "value": power, "metadata": meta}}
    return json.dumps({"subscriptionId": "5f0a", "data": [entity]})


def ingest(client, entity_id: str, headers: dict[str, str]) -> None:
    answer = client.post("/notify", data=notification(entity_id), headers={**ORION, **headers})
    assert answer.status_code in (200, 204), answer.data


def with_tokens(make_client, api_settings, tokens: dict[str, str]):
    """The app with api.tokens set (as given, without the start-up check)."""
    return make_client(api_settings.replace(api=api_settings.api.__class__(tokens=tokens)))


def test_mixed_case_tenant_reads_its_own_data(client):
    """Data sent under Fiware-Service: CityC is read back with Fiware-Service: CityC (and cityc)."""
    ingest(client, "urn:c:1", {"Fiware-Service": "CityC"})
    for tenant in ("CityC", "cityc", "CITYC"):
        answer = client.get("/v1/meters", headers={"Fiware-Service": tenant})
        assert answer.status_code == 200 and answer.json["total"] == 1, tenant
        assert client.get("/v1/meters/urn:c:1", headers={"Fiware-Service": tenant}).status_code == 200


def test_token_of_a_mixed_case_tenant_opens_it(make_client, api_settings):
    """A token configured for `CityC` opens the tenant that ingest filed as `cityc`, under any spelling."""
    client = with_tokens(make_client, api_settings, {"CityC": "tok-c"})
    ingest(client, "urn:c:1", {"Fiware-Service": "CityC"})
    for tenant in ("CityC", "cityc"):
        headers = {"Fiware-Service": tenant, "Authorization": "Bearer tok-c"}
        answer = client.get("/v1/meters", headers=headers)
        assert answer.status_code == 200 and answer.json["total"] == 1, tenant


def test_configured_tenant_names_are_normalised_at_start(tmp_path):
    """Settings spell configured tenants lower-case (tokens, ingest and orion tenants) and refuse bad ones."""
    s = load_settings(
        environ={},
        overrides={
            "api.tokens": {"CityC": "t"},
            "ingest.tenants": ["CityC", ""],
            "orion.tenants": ["CityC"],
        },
    )
    assert s.api.tokens == {"cityc": "t"}
    assert s.ingest.tenants == ["cityc", ""] and s.orion.tenants == ["cityc"]
    for bad in ({"api.tokens": {"city-c": "t"}}, {"ingest.tenants": ["a b"]}, {"orion.tenants": ["x" * 51]}):
        with pytest.raises(SettingsError, match="not a valid tenant"):
            load_settings(environ={}, overrides=bad)
    with pytest.raises(SettingsError, match="listed twice"):
        load_settings(environ={}, overrides={"api.tokens": {"CityC": "a", "cityc": "b"}})


@pytest.mark.parametrize("token", ["", "  ", None])
def test_empty_token_stops_the_start(token):
    """An empty token in api.tokens is a settings error, not a tenant readable with `Bearer` and nothing."""
    with pytest.raises(SettingsError, match="api.tokens.city_a: the token is empty"):
        load_settings(environ={}, overrides={"api.tokens": {"city_a": token, "city_b": "x"}})


def test_empty_token_opens_nothing_even_if_configured(make_client, api_settings):
    """Defence in depth: a token table holding "" (built without the start-up check) still answers 401."""
    client = with_tokens(make_client, api_settings, {"city_a": "", "city_b": "x"})
    for auth in ("Bearer", "Bearer ", "Bearer  "):
        headers = {"Fiware-Service": "city_a", "Authorization": auth}
        assert client.get("/v1/meters", headers=headers).status_code == 401


def test_ngsild_tenant_wins_on_both_sides(client):
    """NGSILD-Tenant alone names the tenant at ingest and in the query API; equal values in both agree."""
    ingest(client, "urn:ld:1", {"NGSILD-Tenant": "t1"})
    assert client.get("/v1/meters", headers={"NGSILD-Tenant": "T1"}).json["total"] == 1
    both = {"NGSILD-Tenant": "t1", "Fiware-Service": "T1"}
    assert client.get("/v1/meters", headers=both).json["total"] == 1
    ingest(client, "urn:ld:2", both)
    assert client.get("/v1/meters", headers={"Fiware-Service": "t1"}).json["total"] == 2


def test_conflicting_tenant_headers_are_400_on_both_sides(client, store):
    """A request whose NGSILD-Tenant and Fiware-Service name different tenants is 400 at ingest and query."""
    conflict = {"NGSILD-Tenant": "t1", "Fiware-Service": "t2"}
    answer = client.post("/notify", data=notification("urn:x:1"), headers={**ORION, **conflict})
    assert answer.status_code == 400 and b"different tenants" in answer.data
    h.add_meter(store, "urn:x:1", "t1")
    query = client.get("/v1/meters", headers=conflict)
    assert query.status_code == 400 and "different tenants" in query.json["description"]


@pytest.mark.parametrize("entity_id", ["urn:x:a/b", "urn:x:a/b/c", "urn:x:a/readings", "http://e.org/m/1"])
def test_every_route_reaches_ids_with_slashes(client, entity_id):
    """An id with '/' accepted at ingest is reached by detail, readings, history, verify and settlement."""
    ingest(client, entity_id, {"Fiware-Service": "tk"})
    base = f"/v1/meters/{quote(entity_id, safe='')}"
    headers = {"Fiware-Service": "tk"}
    assert client.get(base, headers=headers).json["entityId"] == entity_id
    readings = client.get(f"{base}/readings", headers=headers)
    assert readings.status_code == 200 and readings.json["total"] == 1, readings.json
    for route in ("history", "verify"):
        answer = client.get(f"{base}/{route}", headers=headers)
        assert answer.status_code == 200 and answer.json["entityId"] == entity_id, (route, answer.json)
    settlement = client.get(f"{base}/settlement", headers=headers)
    assert settlement.status_code == 404 and "settlement not configured" in settlement.json["description"]


def test_sub_route_wins_when_both_ids_exist(client):
    """With meters `urn:x:a` and `urn:x:a/readings`, `.../urn:x:a/readings` is the readings of `urn:x:a`."""
    ingest(client, "urn:x:a", {"Fiware-Service": "tk"})
    ingest(client, "urn:x:a/readings", {"Fiware-Service": "tk"})
    answer = client.get("/v1/meters/urn:x:a/readings", headers={"Fiware-Service": "tk"})
    assert answer.json["entityId"] == "urn:x:a" and answer.json["total"] == 1
