"""A synchronous test client for the connector's ASGI app: the door production serves (uvicorn runs the
same `ConnectorAsgi`), driven in-process without a socket.

The app runs on one event loop in a background thread for the whole test session, as under uvicorn: a
notification awaits its group commit on that loop while the ingest writer commits in its own thread.
Responses offer what the tests read of Flask's test responses (`status_code`, `get_json()`, `json`,
`data`, `text`, `headers`, `mimetype`).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlencode

from werkzeug.datastructures import Headers

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
REQUEST_TIMEOUT = 120.0  # a request that has not finished by then is a hang, not a slow machine


def _shared_loop() -> asyncio.AbstractEventLoop:
    """The session's event loop, started on first use in a daemon thread."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="asgi-test-loop", daemon=True).start()
        return _loop


class TestResponse:
    """What the app answered: status, headers and body."""

    __test__ = False  # not a pytest test class

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code = status
        self.headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
        self.data = body

    @property
    def text(self) -> str:
        return self.data.decode()

    @property
    def mimetype(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def json(self) -> Any:
        return self.get_json()

    def get_json(self) -> Any:
        """The body decoded as JSON (None when it is not JSON)."""
        try:
            return jsonlib.loads(self.data)
        except ValueError:
            return None

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.text if as_text else self.data


class AsgiClient:
    """Requests to an ASGI app, answered as whole responses."""

    __test__ = False

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = _shared_loop()

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> TestResponse:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.request("DELETE", path, **kw)

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | str | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        query_string: Mapping[str, Any] | str | None = None,
        content_type: str | None = None,
        chunks: list[bytes] | None = None,
    ) -> TestResponse:
        """One request; `chunks` sends the body in several ASGI messages with no Content-Length."""
        body, header_list = _body_and_headers(data, json, headers, content_type, chunks)
        raw_path, _, query = path.partition("?")
        if query_string:
            query = query_string if isinstance(query_string, str) else urlencode(query_string, doseq=True)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(raw_path),
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": header_list,
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 50000),
        }
        parts = chunks if chunks is not None else [body]
        future = asyncio.run_coroutine_threadsafe(_call(self.app, scope, parts), self.loop)
        return future.result(timeout=REQUEST_TIMEOUT)


def _body_and_headers(
    data: bytes | str | None,
    json: Any,
    headers: Mapping[str, str] | None,
    content_type: str | None,
    chunks: list[bytes] | None,
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    given = dict(headers or {})
    if json is not None:
        data = jsonlib.dumps(json)
        given.setdefault("Content-Type", "application/json")
    if content_type is not None:
        given["Content-Type"] = content_type
    body = data.encode() if isinstance(data, str) else (data or b"")
    lower = {k.lower() for k in given}
    if chunks is not None:
        given.setdefault("Transfer-Encoding", "chunked")
    elif "content-length" not in lower and (body or "content-type" in lower):
        given["Content-Length"] = str(len(body))
    items = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in given.items()]
    return body, [(b"host", b"testserver"), *items]


async def _call(app: Any, scope: dict[str, Any], parts: list[bytes]) -> TestResponse:
    pending = list(parts)
    finished = asyncio.Event()
    status = 0
    response_headers: list[tuple[bytes, bytes]] = []
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await finished.wait()  # the client stays connected until the whole answer is sent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status, response_headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    await app(scope, receive, send)
    finished.set()
    return TestResponse(status, response_headers, b"".join(body))


def connector_client(svc: Any, threads: int = 4) -> AsgiClient:
    """A client of the connector's production door (`connector.service.http_app`) on `svc`."""
    from connector.service import http_app  # tests/ helpers load the connector only when used

    return AsgiClient(http_app(svc, threads))
