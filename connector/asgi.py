"""The connector's HTTP door: uvicorn (httptools on uvloop) serving `ConnectorAsgi`.

Orion notifications are by far the most frequent request. Every POST /notify and /v2/notify is answered
here on the event loop: the body is read (with a Content-Length or chunked, up to ingest.max_body), handed
to the notify use case (connector/notify.py), and the request then waits for its group commit
(connector/ingest.py) without holding a thread, so one process answers thousands of notifications a
second where a threaded Python server spent most of its CPU on HTTP. Every other request (query API,
/health, /metrics, /version) goes to the Flask WSGI app (connector/app.py), run in a thread pool by a2wsgi.
`HttpServer` runs uvicorn in a thread of the connector process on a socket bound beforehand.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import structlog
import uvicorn
from a2wsgi import WSGIMiddleware
from a2wsgi.asgi_typing import HTTPScope, Receive, Scope, Send
from a2wsgi.wsgi_typing import WSGIApp
from flask import Flask
from werkzeug.http import parse_options_header

from connector.context import Services
from connector.errors import ApiError, error_answer
from connector.notify import NOTIFY_PATHS, answer_bytes, notify_answer, too_large

log = structlog.get_logger("connector.http")
_JSON_HEADERS = [(b"content-type", b"application/json")]
# As Flask answered another method on its POST-only /notify route.
NOT_ALLOWED = ApiError(
    "The method is not allowed for the requested URL.",
    status=405,
    error="MethodNotAllowed",
    headers={"Allow": "POST"},
)


class ConnectorAsgi:
    """The ASGI app: notifications answered on the loop, everything else handed to the WSGI app."""

    def __init__(self, flask_app: Flask, svc: Services, threads: int) -> None:
        self.svc = svc
        self.max_body = svc.settings.ingest.max_body
        # Flask types its environ as a plain dict, a2wsgi as a TypedDict: the same WSGI call.
        self.wsgi = WSGIMiddleware(cast(WSGIApp, flask_app), workers=threads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in NOTIFY_PATHS:
            return await self.wsgi(scope, receive, send)
        if scope["method"] != "POST":
            return await _answer(send, *error_answer(NOT_ALLOWED))
        return await self._notify(scope, receive, send)

    async def _notify(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await _read_body(receive, _declared_length(headers), self.max_body)
        if body is None:  # the client went away before sending its whole body: nobody to answer
            return None
        mimetype = media_type(headers.get("content-type", ""))
        try:
            status, answer = await notify_answer(self.svc, headers, mimetype, self._reader(body))
            extra: list[tuple[str, str]] = []
        except ApiError as exc:
            status, answer, extra = error_answer(exc)
        return await _answer(send, status, answer, extra)

    def _reader(self, body: bytes | _TooLarge) -> Callable[[], bytes]:
        """The body for the use case, read once its secret and media type are checked (a body over the
        limit answers 413 then, as werkzeug's MAX_CONTENT_LENGTH did)."""

        def read() -> bytes:
            if isinstance(body, _TooLarge):
                raise too_large(self.max_body)
            return body

        return read


class _TooLarge:
    """A body over ingest.max_body, not read to its end."""


async def _answer(send: Send, status: int, answer: dict[str, Any], extra: list[tuple[str, str]]) -> None:
    data = answer_bytes(answer)
    response_headers = [*_JSON_HEADERS, (b"content-length", str(len(data)).encode())]
    response_headers += [(k.lower().encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


def _declared_length(headers: dict[str, str]) -> int | None:
    """The Content-Length of a plain body; None when chunked or missing or not a number (read what
    comes, as werkzeug did: no usable length and not chunked reads as empty)."""
    if headers.get("transfer-encoding"):
        return None
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() and length.isascii() else None


async def _read_body(receive: Receive, declared: int | None, limit: int) -> bytes | _TooLarge | None:
    """The request body; None if the client went away; _TooLarge once more than `limit` bytes are
    declared or came (the rest is not read)."""
    if declared is not None and declared > limit:
        return _TooLarge()
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        part = message.get("body", b"")
        parts.append(part)
        size += len(part)
        if size > limit:
            return _TooLarge()
        if not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


@functools.lru_cache(maxsize=64)  # a sender uses one or two Content-Type values
def media_type(content_type: str) -> str:
    """The media type, lower-cased, exactly as werkzeug's `Request.mimetype` reads it."""
    return parse_options_header(content_type)[0].lower()


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
