"""The lean WSGI path of POST /notify answers byte-for-byte as the Flask route does."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import Client

from connector.app import create_app
from tests.connector import payloads as p

LEGACY_ONE_BAD = json.loads(p.LEGACY)
LEGACY_ONE_BAD["contextResponses"].append({"contextElement": {"type": "SMX", "attributes": []}})

CASES = [
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


def answer(client: Client, path: str, body: str, headers: dict[str, str]) -> tuple[int, str, dict, str]:
    resp = client.post(
        path, data=body.encode("utf-8", "surrogatepass"), headers={**p.ORION_HEADERS, **headers}
    )
    return resp.status_code, resp.headers["Content-Type"], resp.get_json(), resp.get_data(as_text=True)


@pytest.mark.parametrize(("body", "headers"), CASES)
@pytest.mark.parametrize("path", ["/notify", "/v2/notify"])
def test_lean_path_refuses_exactly_as_flask(services, path, body, headers):
    """Every refused notification gets the same status, content type and JSON text from both paths."""
    app = create_app(services)
    lean, flask_only = Client(app), Client(app.wsgi_app.app)  # type: ignore[attr-defined]
    assert answer(lean, path, body, headers) == answer(flask_only, path, body, headers)


def test_lean_path_stores_and_lists_rejected_parts_as_flask(services):
    """A notification with a bad entity: same 200 answer (stored one, rejected one) from both paths."""
    app = create_app(services)
    lean, flask_only = Client(app), Client(app.wsgi_app.app)  # type: ignore[attr-defined]
    first = answer(lean, "/notify", json.dumps(LEGACY_ONE_BAD), {"Fiware-Service": "a"})
    second = answer(flask_only, "/notify", json.dumps(LEGACY_ONE_BAD), {"Fiware-Service": "b"})
    assert first == second
    assert first[0] == 200 and first[2]["accepted"] == 1 and len(first[2]["rejected"]) == 1


def test_lean_path_leaves_other_routes_and_methods_to_flask(services):
    """GET /notify is Flask's 405 and /health is Flask's route, through the middleware."""
    client = create_app(services).test_client()
    assert client.get("/notify").status_code == 405
    assert client.get("/health").get_json()["status"] == "ok"
