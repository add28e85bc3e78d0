"""Start the dev ledger (HTTP on waitress, websocket stream, writer) inside the current process.

    handle = start_ledger(host="127.0.0.1", port=0, ws_port=0, data_dir=None)
    ... handle.url, handle.ws_url ...
    handle.stop()

Port 0 picks a free port; `data_dir=None` keeps everything in memory; `block_interval` (seconds, 0 = every
transaction batch is committed at once) emulates Tendermint's time between blocks.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from nacl.signing import SigningKey
from waitress.server import create_server

from devledger.http import LedgerApp
from devledger.ledger import Ledger
from devledger.storage import Storage
from devledger.stream import EVENTS_PATH, EventStream

HTTP_THREADS = 16


@dataclass
class LedgerHandle:
    """A running dev ledger: where it listens, and `stop()`."""

    host: str
    port: int
    ws_port: int
    _stop: list[object] = field(repr=False, default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, e.g. http://127.0.0.1:9984"""
        return f"http://{_advertised(self.host)}:{self.port}"

    @property
    def ws_url(self) -> str:
        """URL of the valid-transactions websocket stream."""
        return f"ws://{_advertised(self.host)}:{self.ws_port}{EVENTS_PATH}"

    def stop(self) -> None:
        """Stop serving, commit what is pending, close the database. Idempotent."""
        while self._stop:
            stopper = self._stop.pop()
            stopper()  # type: ignore[operator]


def start_ledger(
    host: str = "127.0.0.1",
    port: int = 0,
    ws_port: int = 0,
    data_dir: str | Path | None = None,
    block_interval: float = 0.0,
) -> LedgerHandle:
    """Start a dev ledger in background threads; it answers requests when this returns.

    With `block_interval` > 0 a block is committed at most once per interval (after the previous one):
    accepted transactions wait for it and `mode=commit` answers then.
    """
    storage = Storage(Path(data_dir) if data_dir is not None else None)
    ledger = Ledger(storage, block_interval=block_interval)
    stream = EventStream(host, ws_port)
    stream.start()
    ledger.add_listener(stream.publish)
    ledger.start()
    handle = LedgerHandle(host, 0, stream.port, [storage.close, ledger.stop, stream.stop])
    app = LedgerApp(ledger, handle.ws_url, _validator_key(storage))
    # waitress warns "Task queue depth is N" whenever requests wait for a thread; under load that is normal.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    http = create_server(
        app,
        host=host,
        port=port,
        threads=HTTP_THREADS,
        ident="BigchainDB",
        # No route reads X-Forwarded-* headers, so waitress need not wrap the app to strip them.
        clear_untrusted_proxy_headers=False,
    )
    thread = threading.Thread(target=http.run, name="devledger-http", daemon=True)
    thread.start()
    handle.port = int(http.effective_port)  # type: ignore[union-attr]
    handle._stop.append(lambda: _stop_http(http, thread))
    return handle


def _stop_http(http: object, thread: threading.Thread) -> None:
    socket_map = http._map  # type: ignore[attr-defined]

    def close_all() -> None:
        for dispatcher in list(socket_map.values()):
            dispatcher.close()

    try:
        http.trigger.pull_trigger(close_all)  # type: ignore[attr-defined]
    except OSError:  # the serving loop has already closed its wake-up pipe: close what is left directly
        close_all()
    thread.join(timeout=5)
    http.task_dispatcher.shutdown()  # type: ignore[attr-defined]


def _validator_key(storage: Storage) -> str:
    # Only the public half is kept: the dev ledger never signs, it just shows a validator as Tendermint does.
    fresh = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
    return storage.meta("validator_public_key", fresh)


def _advertised(host: str) -> str:
    return "localhost" if host in ("0.0.0.0", "::", "") else host
