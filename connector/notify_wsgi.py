"""The lean WSGI path of POST /notify: the same answer as the Flask route, without Flask's dispatch.

Orion notifications are by far the most frequent request, and Flask's request context, URL matching and
response objects cost more CPU than parsing the notification. This middleware answers POST /notify and
/v2/notify directly through `notify_answer`, the one function behind both paths, so statuses, JSON bodies,
messages, metrics and logs are identical. Requests whose body needs werkzeug's handling (no usable
Content-Length, chunked, over the size limit) and everything else go to the Flask app unchanged.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from werkzeug.http import parse_options_header

from connector.app import ApiError, error_answer, notify_answer
from connector.context import Services

NOTIFY_PATHS = frozenset(("/notify", "/v2/notify"))
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_STATUS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class NotifyFastPath:
    """WSGI middleware answering well-formed POST /notify requests itself, handing on the rest."""

    def __init__(self, app: WsgiApp, svc: Services) -> None:
        self.app = app
        self.svc = svc
        self.max_body = svc.settings.ingest.max_body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") not in NOTIFY_PATHS:
            return self.app(environ, start_response)
        length = plain_body_length(
            environ.get("HTTP_TRANSFER_ENCODING"), environ.get("CONTENT_LENGTH", ""), self.max_body
        )
        if length is None:
            return self.app(environ, start_response)
        headers = {key[5:].replace("_", "-").lower(): v for key, v in environ.items() if key[:5] == "HTTP_"}
        mimetype = media_type(environ.get("CONTENT_TYPE", ""))
        try:
            status, body = notify_answer(self.svc, headers, mimetype, lambda: _read(environ, length))
            extra: list[tuple[str, str]] = []
        except ApiError as exc:
            status, body, extra = error_answer(exc)
        data = answer_bytes(body)
        response_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response(_STATUS[status], response_headers + extra)
        return [data]


def plain_body_length(transfer_encoding: str | None, content_length: str, max_body: int) -> int | None:
    """The body's length when it is a plain body within the limit, else None (werkzeug decides: chunked,
    no usable Content-Length, over the limit)."""
    if transfer_encoding:
        return None
    if not content_length.isdigit() or not content_length.isascii():
        return None
    length = int(content_length)
    return length if length <= max_body else None


def answer_bytes(body: dict[str, Any]) -> bytes:
    """A notification's JSON answer, byte for byte as Flask's jsonify writes it."""
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


@functools.lru_cache(maxsize=64)  # a sender uses one or two Content-Type values
def media_type(content_type: str) -> str:
    """The media type, lower-cased, exactly as werkzeug's `Request.mimetype` reads it."""
    return parse_options_header(content_type)[0].lower()


def _read(environ: dict[str, Any], length: int) -> bytes:
    stream = environ["wsgi.input"]
    parts, missing = [], length
    while missing > 0:
        chunk = stream.read(missing)
        if not chunk:  # the client went away before sending its whole body
            break
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)
