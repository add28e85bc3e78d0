"""The served OpenAPI document: valid, complete, browsable without a CDN, and honoured by the app
(schemathesis finds no 5xx and no response breaking the schema)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.portfolio import build


def test_openapi_document_lists_every_route(client):
    """/openapi.json is OpenAPI 3 and documents every query route with its tenancy headers."""
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/v1/meters",
        "/v1/meters/{entity_id}",
        "/v1/meters/{entity_id}/history",
        "/v1/meters/{entity_id}/readings",
        "/v1/meters/{entity_id}/verify",
        "/v1/meters/{entity_id}/settlement",
        "/v1/meters/{entity_id}/proof",
        "/v1/catalog",
    }
    history = doc["paths"]["/v1/meters/{entity_id}/history"]
    names = {p["name"] for p in history.get("parameters", []) + history["get"]["parameters"]}
    assert {
        "Fiware-Service",
        "Fiware-ServicePath",
        "from",
        "to",
        "limit",
        "offset",
        "order",
        "aggregate",
    } <= names
    assert "text/csv" in doc["paths"]["/v1/meters/{entity_id}/readings"]["get"]["responses"]["200"]["content"]


def test_docs_page_is_self_contained(client):
    """/docs is HTML naming every route, and loads nothing from another host."""
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "GET /v1/meters/{entity_id}/verify" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_api_conforms_to_its_openapi_document(app, anchored, store, api_settings):
    """Generated requests (50 per operation, in-process WSGI) never get a 5xx, and every answer matches
    the documented schema, status codes and content types."""
    anchored(entity_id="urn:meter:1", n=4)
    build(store, api_settings)  # period trees, so /proof and /catalog answer with content too
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    for operation in operations:
        _fuzz(operation)


def _fuzz(operation) -> None:  # type: ignore[no-untyped-def]
    @given(case=operation.as_strategy())
    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case) -> None:  # type: ignore[no-untyped-def]
        # Rules across parameters (from <= to, verify's range cap) cannot be written in OpenAPI, so a
        # schema-valid request may rightly get a 400: that one check is left out.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    run()
