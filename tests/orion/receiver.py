"""A loopback HTTP receiver that records every notification exactly as it arrived."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    """Records requests to any path; answers `status` (a test may change it)."""

    url: str = ""
    status: int = 204
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Flask:
        app = Flask("receiver")

        @app.post("/<path:path>")
        def notify(path: str) -> Response:
            with self.lock:
                self.got.append(
                    Received("/" + path, dict(request.args), dict(request.headers), request.get_data())
                )
            return Response(status=self.status)

        return app


class QuietHandler(WSGIRequestHandler):
    """No access log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ServedReceiver:
    """The receiver on 127.0.0.1 in a daemon thread."""

    def __init__(self) -> None:
        self.receiver = Receiver()
        self.server = make_server(
            "127.0.0.1", 0, self.receiver.app(), threaded=True, request_handler=QuietHandler
        )
        self.receiver.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
