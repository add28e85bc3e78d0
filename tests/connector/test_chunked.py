"""Transfer-Encoding: chunked notifications (valid JSON, no Content-Length) over the real HTTP server."""

from __future__ import annotations

import http.client
import json

import pytest

from connector.asgi import HttpServer, bind
from connector.service import http_app
from tests.connector import payloads as p


@pytest.fixture
def server(services):
    """The connector's uvicorn server in this process, on a free port."""
    http_server = HttpServer(http_app(services), bind("127.0.0.1", 0))
    http_server.start()
    yield http_server
    http_server.stop()


def post_chunked(port: int, chunks: list[bytes]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {**p.ORION_HEADERS, "Transfer-Encoding": "chunked"}
    conn.request("POST", "/notify", body=iter(chunks), headers=headers, encode_chunked=True)
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    conn.close()
    return resp.status, answer


def test_chunked_body_is_read_and_stored(server):
    """A normalized notification sent in three chunks is stored (it was 400 "empty body")."""
    body = p.NORMALIZED.encode()
    status, answer = post_chunked(server.port, [body[:10], body[10:50], body[50:]])
    assert status == 200, answer
    assert answer["accepted"] == 1


def test_chunked_body_over_max_body_gets_413(server, services):
    """A chunked body past ingest.max_body is refused with 413 naming the limit, not read to its end."""
    limit = services.settings.ingest.max_body
    status, answer = post_chunked(server.port, [b" " * 65536] * (limit // 65536 + 2))
    assert status == 413
    assert "ingest.max_body" in answer["description"]
