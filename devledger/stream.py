"""The event stream on the websocket port: one text frame per committed transaction.

Frames are BigchainDB's `json.dumps({"height": h, "asset_id": ..., "transaction_id": ...})`. The server
runs its own asyncio loop in a background thread; the ledger's writer hands it each block.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from devledger.validation import Checked

EVENTS_PATH = "/api/v1/streams/valid_transactions"


def frames(height: int, transactions: Sequence[Checked]) -> list[str]:
    """The websocket frames announcing one committed block."""
    return [
        json.dumps({"height": height, "asset_id": c.asset_id, "transaction_id": c.id}) for c in transactions
    ]


class EventStream:
    """A websocket server broadcasting committed transactions; `start()` returns once it listens."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._requested_port = host, port
        self.port = 0
        self._subscribers: set[ServerConnection] = set()
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

    def _broadcast(self, messages: list[str]) -> None:
        for message in messages:
            broadcast(self._subscribers, message)

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
        async with serve(
            self._handle, self._host, self._requested_port, process_request=_only_events
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
