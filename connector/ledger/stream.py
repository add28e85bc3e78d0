"""The event stream of committed transactions, which the batched ledger writer confirms its rounds from.

`TxStream` follows BigchainDB's `/api/v1/streams/valid_transactions` (one JSON frame per committed tx:
height, asset_id, transaction_id) in a daemon thread and remembers the last `SEEN_LIMIT` committed ids with
their block heights, so the writer confirms a whole round by looking them up instead of reading every
transaction back. The stream only tells what is committed while it is connected: anything it may have
missed (sent before it connected, or during a reconnect) is confirmed the old way, by reading it back.

Sending the transactions is `connector.ledger.poster`'s.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

import urllib3

# Committed tx ids remembered; older ones are read back. An id is asked for from its send until its round
# settles (at most `ledger.timeout`, 20 s) and again before a resend of a row left unconfirmed (after its
# backoff): 100,000 ids cover 20 s at the dev ledger's peak of 2,000 commits/s (docs/benchmarks/devledger.md)
# with room to spare, and 200 s at the writer's 500/s. 210-264 bytes an id with its height (tracemalloc),
# so 26 MB when full. 500,000 (132 MB) took over 15 minutes at 500/s to fill: the ledger process's heap
# grew all that time (docs/benchmarks/soak.md).
SEEN_LIMIT = 100_000
RECONNECT_PAUSE = 1.0
PING_EVERY = 20.0  # seconds; a ping unanswered by the next one means the connection is gone


class TxStream:
    """Committed transaction ids from a node's event stream (see the module docstring). Start with `start`."""

    def __init__(self, api_urls: list[str], timeout: float) -> None:
        self.api_urls = list(api_urls)
        self.timeout = timeout
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.connected_since: float | None = None  # time.monotonic() of the current connection
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="ledger-stream", daemon=True)

    def start(self) -> TxStream:
        """Connect in the background (and reconnect after every failure, until `stop`)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following the stream."""
        self._stop.set()
        self._thread.join(timeout=self.timeout + 2)

    def height(self, tx_id: str) -> int | None:
        """The block height of `tx_id` if the stream saw it committed, else None."""
        with self._cond:
            return self._seen.get(tx_id)

    def wait(self, tx_ids: set[str], seconds: float) -> dict[str, int]:
        """Wait up to `seconds` until every id of `tx_ids` was seen (or the stream dropped); return
        {tx id: height} of those seen."""
        deadline = time.monotonic() + seconds
        found: dict[str, int] = {}
        missing = set(tx_ids)
        with self._cond:
            while True:  # woken at every commit seen: only the ids still missing are looked up again
                for tx_id in [t for t in missing if t in self._seen]:
                    found[tx_id] = self._seen[tx_id]
                    missing.discard(tx_id)
                left = deadline - time.monotonic()
                if not missing or left <= 0 or self.connected_since is None:
                    return found
                self._cond.wait(min(left, 0.5))

    def wait_connected(self, seconds: float) -> bool:
        """Wait up to `seconds` for the stream to be connected; True if it is."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while self.connected_since is None and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(min(left, 0.2))
            return self.connected_since is not None

    def covers(self, sent_at: float) -> bool:
        """True if the stream has been connected without a break since before `sent_at` (monotonic)."""
        since = self.connected_since
        return since is not None and since <= sent_at

    def _record(self, tx_id: str, height: int) -> None:
        with self._cond:
            self._seen[tx_id] = height
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            self._cond.notify_all()

    def _run(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        while not self._stop.is_set():
            try:
                url = stream_url(self.api_urls, self.timeout)
                # No websockets keepalive: its pings draw from the global `random` (seen as flaky hypothesis
                # tests in the same process); `_follow` pings with its own payload instead.
                with connect(url, open_timeout=self.timeout, close_timeout=1, ping_interval=None) as ws:
                    self._follow(ws)
            except (OSError, WebSocketException, ValueError, KeyError, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]  # not logged: it retries every second
            finally:
                with self._cond:
                    self.connected_since = None
                    self._cond.notify_all()
            self._stop.wait(RECONNECT_PAUSE)

    def _follow(self, ws: Any) -> None:
        with self._cond:
            self.connected_since = time.monotonic()
            self._cond.notify_all()
        pinged, pong = time.monotonic(), None
        while not self._stop.is_set():
            if time.monotonic() - pinged > PING_EVERY:
                if pong is not None and not pong.is_set():
                    raise TimeoutError("the node did not answer the stream's ping")
                pinged, pong = time.monotonic(), ws.ping(str(pinged).encode())
            try:
                frame = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            event = json.loads(frame)
            self._record(str(event["transaction_id"]), int(event["height"]))


def stream_url(api_urls: list[str], timeout: float) -> str:
    """The event stream's URL as the first answering node advertises it (GET /api/v1, "streams")."""
    http = urllib3.PoolManager(timeout=timeout, retries=False)
    errors = []
    for base in api_urls:
        try:
            resp = http.request("GET", base.rstrip("/") + "/api/v1/")
            if resp.status == 200:
                return str(json.loads(resp.data)["streams"])
            errors.append(f"{base}: HTTP {resp.status}")
        except urllib3.exceptions.HTTPError as exc:
            errors.append(f"{base}: {type(exc).__name__}")
    raise OSError(f"no node gave its stream URL: {errors}")
