"""The event stream on the websocket port: one text frame per committed transaction.

Frames are BigchainDB's `json.dumps({"height": h, "asset_id": ..., "transaction_id": ...})`, one per
transaction of each committed block, in block order. The server runs its own asyncio loop in a background
thread; the ledger's writer hands it each block.

A connected subscriber gets every frame: nothing is skipped while it keeps up. One that does not read
(its unsent frames pass `max_backlog_bytes`, 16 MiB by default: about 140,000 events) is closed with code
1013 (try again later) and the reason "subscriber too slow", so memory stays bounded and the subscriber
knows it must catch up by reading the ledger. BigchainDB 2.2.2 does otherwise: its dispatcher awaits each
subscriber's `send_str` in turn, so one slow subscriber holds back every other one while the node's event
queue (an unbounded asyncio.Queue) grows without limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from devledger.validation import Checked

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/streams/valid_transactions"
MAX_BACKLOG_BYTES = 16 * 2**20
TOO_SLOW = 1013  # RFC 6455 "Try Again Later"


def frames(height: int, transactions: Sequence[Checked]) -> list[str]:
    """The websocket frames announcing one committed block."""
    return [
        json.dumps({"height": height, "asset_id": c.asset_id, "transaction_id": c.id}) for c in transactions
    ]


class EventStream:
    """A websocket server broadcasting committed transactions; `start()` returns once it listens."""

    def __init__(self, host: str, port: int, max_backlog_bytes: int = MAX_BACKLOG_BYTES) -> None:
        self._host, self._requested_port = host, port
        self._max_backlog = max_backlog_bytes
        self.port = 0
        self._subscribers: set[ServerConnection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="devledger-ws", daemon=True)

    def start(self) -> None:
        """Listen; raise what prevented it (e.g. the port is taken)."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Close every connection and the listening socket."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
            self._thread.join()

    def publish(self, height: int, transactions: Sequence[Checked]) -> None:
        """Send the block's frames to every subscriber (thread-safe, never blocks)."""
        # Reading the set from this thread is safe (a snapshot of its truth); with no subscriber the
        # frames would go nowhere, so skip building them and waking the loop.
        if self._subscribers and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._broadcast, frames(height, transactions))

    def subscriber_count(self) -> int:
        """How many subscribers are connected and receiving."""
        return len(self._subscribers)

    def _broadcast(self, messages: list[str]) -> None:
        receivers = [c for c in list(self._subscribers) if not self._too_slow(c)]
        for message in messages:
            broadcast(receivers, message.encode(), text=True)

    def _too_slow(self, connection: ServerConnection) -> bool:
        backlog = connection.transport.get_write_buffer_size()
        if backlog <= self._max_backlog:
            return False
        self._subscribers.discard(connection)
        log.warning("devledger.stream.too_slow", extra={"backlog_bytes": backlog})
        task = self._loop.create_task(connection.close(TOO_SLOW, "subscriber too slow"))
        self._closing.add(task)  # keep a reference until it is done (the loop holds tasks weakly)
        task.add_done_callback(self._closing.discard)
        return True

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start() so the caller sees it
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = self._loop.create_future()
        # No keepalive pings (BigchainDB 2.2.2's aiohttp stream sends none either): websockets draws their
        # payload from the global `random`, which disturbs hypothesis tests running in the same process.
        async with serve(
            self._handle, self._host, self._requested_port, process_request=_only_events, ping_interval=None
        ) as server:
            self.port = _port_of(server)
            self._ready.set()
            await self._stop

    async def _handle(self, connection: ServerConnection) -> None:
        self._subscribers.add(connection)
        try:
            await connection.wait_closed()
        finally:
            self._subscribers.discard(connection)


def _only_events(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.rstrip("/") != EVENTS_PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
    return None


def _port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])
