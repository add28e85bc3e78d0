"""POSTing the outbox's stored transaction bytes to BigchainDB, at the least CPU a POST can cost.

The batched writer sends every transaction it anchors (100,000 a window at 100,000 meters) with
`ledger.concurrency` threads. Through urllib3's PoolManager a POST cost about 210 us of CPU (URL parsing,
pool lookup, request and response objects), a fifth of the writer's CPU per transaction: here each sending
thread keeps one http.client connection per node and writes the request itself, 70-80 us.

What a node sees is unchanged, byte for byte (`tests/ledger/test_poster.py` checks it against urllib3):
the request line, `Host`, `Accept-Encoding: identity`, `Content-Length`, urllib3's `User-Agent` (proxies
in front of BigchainDB may log or filter on it), `Content-Type`, the optional app_id / app_key, the body.
So are the outcomes: a kept-alive connection the node has closed meanwhile is opened again before the
request, as urllib3's pool does; no retry on the same node (`retries=False` before): a failed request
moves on to the next node, and when none answers, ConnectionError (transient, `ledger/errors.py`); a
non-2xx answer raises the driver's own exception for its status.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import weakref

import urllib3
from bigchaindb_driver.exceptions import HTTP_EXCEPTIONS, TransportError
from urllib3.util import wait_for_read

from connector.settings import LedgerSettings

USER_AGENT = f"python-urllib3/{urllib3.__version__}"  # what every POST carried when urllib3 sent it
FAILED = (OSError, http.client.HTTPException)  # refused, reset, timed out, TLS, a broken answer


class Node:
    """One node's address, split once: scheme, host, port and the path prefix of its API."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parsed = urllib3.util.parse_url(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parsed.scheme == "https"
        self.host = parsed.host.strip("[]")  # an IPv6 literal without brackets, as http.client takes it
        self.port = parsed.port or (443 if self.tls else 80)
        self.prefix = (parsed.path or "").rstrip("/")

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        """A new (not yet opened) connection to the node; https verifies the certificate and host name."""
        if self.tls:
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class RawPoster:
    """POST serialized transactions to the first node that answers (failover in `urls` order); see the
    module docstring. Thread-safe: each thread uses its own connections."""

    def __init__(self, urls: list[str], settings: LedgerSettings) -> None:
        self.nodes = [Node(u) for u in urls]
        self.timeout = settings.timeout
        self.headers = [("Content-Type", "application/json")]
        if settings.app_id:
            self.headers += [("app_id", settings.app_id), ("app_key", settings.app_key)]
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []  # every connection made, for `close`
        # A poster dropped without `close` closes its connections too (as urllib3's pools do).
        weakref.finalize(self, _close_all, self._all, self._lock)

    def post(self, body: bytes, mode: str) -> None:
        """POST one transaction; returns on 2xx, raises the driver's TransportError family otherwise, or
        ConnectionError when no node answered."""
        last: BaseException | None = None
        for index, node in enumerate(self.nodes):
            conn = self._connection(index, node)
            try:
                status, data = self._exchange(conn, node, body, mode)
            except FAILED as exc:
                conn.close()  # whatever state it was left in: the next POST opens it again
                last = exc
                continue
            if status < 300:
                return
            text = data.decode("utf-8", "replace")
            try:
                info = json.loads(text)
            except ValueError:
                info = text
            raise HTTP_EXCEPTIONS.get(status, TransportError)(status, text, info, node.url)
        raise ConnectionError(f"no BigchainDB node answered: {type(last).__name__}: {last}")

    def _exchange(
        self, conn: http.client.HTTPConnection, node: Node, body: bytes, mode: str
    ) -> tuple[int, bytes]:
        """Send the request (the bytes urllib3 sent, header for header) and read the whole answer."""
        if conn.sock is not None and wait_for_read(conn.sock, timeout=0.0):
            conn.close()  # the node closed it while idle: open a new one, as urllib3's pool did
        conn.putrequest("POST", f"{node.prefix}/api/v1/transactions/?mode={mode}")
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("User-Agent", USER_AGENT)
        for name, value in self.headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def _connection(self, index: int, node: Node) -> http.client.HTTPConnection:
        mine: list[http.client.HTTPConnection] | None = getattr(self._local, "connections", None)
        if mine is None:
            mine = self._local.connections = [n.connect(self.timeout) for n in self.nodes]
            with self._lock:
                self._all.extend(mine)
        return mine[index]

    def close(self) -> None:
        """Close every connection (a later POST opens its thread's again)."""
        _close_all(self._all, self._lock)


def _close_all(connections: list[http.client.HTTPConnection], lock: threading.Lock) -> None:
    with lock:
        for conn in connections:
            conn.close()
