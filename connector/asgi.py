"""The connector's HTTP server: uvicorn (httptools on uvloop) in front of the Flask app.

Orion notifications are by far the most frequent request. POST /notify and /v2/notify are answered here on
the event loop: the body is read, checked and parsed by the same `prepare_notify` as the Flask route, and
the request then waits for its group commit (connector/ingest.py) without holding a thread, so one process
answers thousands of notifications a second where a threaded Python server spent most of its CPU on HTTP.
Statuses, JSON bodies, messages, metrics and logs are those of the Flask route (connector/app.py).

Chunked notification bodies (no Content-Length) are read here too, up to ingest.max_body. Every other
request (query API, /health, /metrics, and notifications whose body needs werkzeug's handling: no
Content-Length and not chunked, over the size limit) goes to the Flask WSGI app, run in a thread pool by
a2wsgi. `HttpServer` runs uvicorn in a thread of the connector process on a socket bound beforehand.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import uvicorn
from a2wsgi import WSGIMiddleware

from connector.app import ApiError, error_answer, notify_answer_async, too_large
from connector.context import Services
from connector.notify_wsgi import NOTIFY_PATHS, answer_bytes, media_type, plain_body_length

log = structlog.get_logger("connector.http")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ConnectorAsgi:
    """The ASGI app: notifications answered on the loop, everything else handed to the WSGI app."""

    def __init__(self, wsgi_app: Any, svc: Services, threads: int) -> None:
        self.svc = svc
        self.max_body = svc.settings.ingest.max_body
        self.wsgi = WSGIMiddleware(wsgi_app, workers=threads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in NOTIFY_PATHS:
            return await self.wsgi(scope, receive, send)  # type: ignore[no-any-return]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = plain_body_length(
            headers.get("transfer-encoding"), headers.get("content-length", ""), self.max_body
        )
        if length is None and not _chunked(headers):
            return await self.wsgi(scope, receive, send)  # type: ignore[no-any-return]
        # A chunked body has no Content-Length: it is read here up to ingest.max_body (werkzeug's WSGI
        # path read it as empty).
        body = await _read_body(receive, self.max_body)
        if body is None:  # the client went away before sending its whole body: nobody to answer
            return None
        if len(body) > self.max_body:
            return await _answer(send, *error_answer(too_large(self.max_body)))
        mimetype = media_type(headers.get("content-type", ""))
        extra: list[tuple[str, str]] = []
        try:
            status, answer = await notify_answer_async(self.svc, headers, mimetype, body)
        except ApiError as exc:
            status, answer, extra = error_answer(exc)
        return await _answer(send, status, answer, extra)


async def _answer(send: Send, status: int, answer: dict[str, Any], extra: list[tuple[str, str]]) -> None:
    data = answer_bytes(answer)
    response_headers = [*_JSON_HEADERS, (b"content-length", str(len(data)).encode())]
    response_headers += [(k.lower().encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": data})


def _chunked(headers: dict[str, str]) -> bool:
    """True for a body sent with Transfer-Encoding: chunked and no Content-Length."""
    encoding = headers.get("transfer-encoding", "").lower()
    return "chunked" in encoding and "content-length" not in headers


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body; None if the client went away. Reading stops once more than `limit` bytes came
    (the caller answers 413)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        part = message.get("body", b"")
        parts.append(part)
        size += len(part)
        if size > limit or not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


class HttpServer:
    """uvicorn serving `app` from a thread of this process, on `sock` (bound by the caller)."""

    def __init__(self, app: Any, sock: socket.socket, keep_alive: int = 30) -> None:
        self.sock = sock
        config = uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            server_header=False,
            timeout_keep_alive=keep_alive,
            timeout_graceful_shutdown=5,
            backlog=1024,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="http", daemon=True)
        self.error: BaseException | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; return once the server accepts connections."""
        self.thread.start()
        for _ in range(int(timeout / 0.01)):
            if self.server.started or not self.thread.is_alive():
                break
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError(f"the HTTP server did not start: {self.error!r}")

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start(); the thread ends
            self.error = exc
            log.error("http.failed", error=repr(exc))


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one."""
    sock = socket.create_server((host or "0.0.0.0", port), backlog=1024)
    sock.setblocking(False)
    return sock
