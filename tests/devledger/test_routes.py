"""Routes: trailing slashes, CORS, 404s and parameter errors, as BigchainDB's Flask app answers them."""

from __future__ import annotations

import pytest
import requests

from .conftest import create, error_text, post

MISSING = "Missing required parameter in the JSON body or the post body or the query string"


def get(ledger, path: str, **headers: str) -> requests.Response:
    """GET a path of the ledger."""
    return requests.get(ledger.url + path, headers=headers, timeout=5)


@pytest.mark.parametrize(
    "path", ["/", "/api/v1", "/api/v1/", "/api/v1/validators", "/api/v1/validators/", "/api/v1/blocks/1/"]
)
def test_paths_work_with_and_without_trailing_slash(ledger, alice, path) -> None:
    """Every route answers 200 with or without the trailing slash, JSON, CORS *."""
    post(ledger, create(alice))
    answer = get(ledger, path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_transaction_get_with_trailing_slash_and_cors_origin(ledger, alice) -> None:
    """GET /transactions/{id}/ works; a request's Origin is echoed as flask-cors does."""
    tx = create(alice)
    post(ledger, tx)
    answer = get(ledger, f"/api/v1/transactions/{tx['id']}/", Origin="http://demo.local")
    assert answer.json() == tx
    assert answer.headers["Access-Control-Allow-Origin"] == "http://demo.local"
    preflight = requests.options(
        ledger.url + "/api/v1/transactions/",
        headers={"Origin": "http://x", "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert preflight.status_code == 200 and "POST" in preflight.headers["Access-Control-Allow-Methods"]


def test_not_found_answers(ledger) -> None:
    """Unknown tx and blocks above the top: JSON 404 'Not found'; unknown URLs: Flask's HTML 404."""
    assert get(ledger, "/api/v1/transactions/" + "0" * 64).text == error_text("Not found", 404)
    assert get(ledger, "/api/v1/blocks/5").text == error_text("Not found", 404)
    unknown = get(ledger, "/api/v1/nothing")
    assert unknown.status_code == 404 and "<title>404 Not Found</title>" in unknown.text
    assert get(ledger, "/api/v1/blocks/abc").status_code == 404
    assert requests.delete(ledger.url + "/api/v1/transactions", timeout=5).status_code == 405


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/transactions", {"message": {"asset_id": MISSING}}),
        ("/api/v1/transactions?asset_id=xyz", {"message": {"asset_id": "Invalid hash"}}),
        (
            "/api/v1/transactions?asset_id=" + "a" * 64 + "&operation=BURN",
            {"message": {"operation": 'Operation must be "CREATE" or "TRANSFER"'}},
        ),
        (
            "/api/v1/transactions?asset_id=" + "a" * 64 + "&last_tx=maybe",
            {"message": {"last_tx": 'Boolean value must be "true" or "false" (lowercase)'}},
        ),
        ("/api/v1/outputs", {"message": {"public_key": MISSING}}),
        ("/api/v1/outputs?public_key=0OIl", {"message": {"public_key": "Invalid base58 ed25519 key"}}),
        ("/api/v1/outputs?public_key=" + "A" * 44 + "&foo=1", {"message": "Unknown arguments: foo"}),
        (
            "/api/v1/outputs?public_key=" + "A" * 44 + "&spent=no",
            {"message": {"spent": 'Boolean value must be "true" or "false" (lowercase)'}},
        ),
        ("/api/v1/assets", {"message": {"search": MISSING}}),
        ("/api/v1/assets?search=", {"message": "text_search cannot be empty", "status": 400}),
        (
            "/api/v1/metadata?search=x&limit=ten",
            {"message": {"limit": "invalid literal for int() with base 10: 'ten'"}},
        ),
        ("/api/v1/blocks", {"message": {"transaction_id": MISSING}}),
        ("/api/v1/blocks?transaction_id=x&status=valid", {"message": "Unknown arguments: status"}),
    ],
)
def test_parameter_errors(ledger, path, body) -> None:
    """Bad or missing query parameters answer 400 with reqparse's bodies."""
    answer = get(ledger, path)
    assert (answer.status_code, answer.json()) == (400, body)


def test_empty_results(ledger) -> None:
    """Queries with nothing to find answer empty lists; spent=TRUE is accepted in any case."""
    assert get(ledger, "/api/v1/transactions?asset_id=" + "A" * 64).json() == []
    assert get(ledger, "/api/v1/outputs?public_key=" + "A" * 44 + "&spent=TRUE").json() == []
    assert get(ledger, "/api/v1/blocks?transaction_id=nothing").json() == []
    assert get(ledger, "/api/v1/assets?search=nothing").json() == []
