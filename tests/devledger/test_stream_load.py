"""The event stream under load: every event reaches a subscriber that reads; one that does not is closed."""

from __future__ import annotations

import json
import socket
import threading
import time

import base58
import pytest
from nacl.bindings import crypto_sign_seed_keypair
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from connector.ledger.fast_tx import create_transaction
from devledger.ledger import Ledger
from devledger.storage import Storage
from devledger.stream import TOO_SLOW, EventStream
from devledger.validation import Checked

HUNG = 120  # a guard against a hang, not a speed budget
EVENTS = 12_000
REASON = b"subscriber too slow"
CLOSE_FRAME = bytes([0x88, 2 + len(REASON)]) + TOO_SLOW.to_bytes(2, "big") + REASON  # unmasked, FIN


@pytest.fixture
def stream():
    """An event stream on a free loopback port with a small backlog limit (256 KiB)."""
    events = EventStream("127.0.0.1", 0, max_backlog_bytes=256 * 1024)
    events.start()
    yield events
    events.stop()


def url(stream: EventStream) -> str:
    return f"ws://127.0.0.1:{stream.port}/api/v1/streams/valid_transactions"


def checked(n: int) -> Checked:
    """A committed-transaction record as the ledger hands it to the stream (only ids matter here)."""
    tx_id = f"{n:064x}"
    return Checked(tx_id, "CREATE", tx_id, (), (), (), True, {}, "")


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until `condition()` holds (a hang guard, no speed budget)."""
    deadline = time.monotonic() + HUNG
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def test_a_reading_subscriber_gets_every_event_of_12000_transactions(stream) -> None:
    """12,000 CREATEs committed by the ledger in quick blocks: every frame arrives, in commit order."""
    ledger = Ledger(Storage(None))
    ledger.add_listener(stream.publish)
    ledger.start()
    seed = b"\x05" * 32
    public = base58.b58encode(crypto_sign_seed_keypair(seed)[0]).decode()
    private = base58.b58encode(seed).decode()
    sent = [create_transaction(public, private, {"data": {"n": i}}, None) for i in range(EVENTS)]
    try:
        with connect(url(stream), max_size=None) as ws:
            wait_for(lambda: stream.subscriber_count() == 1, "the subscriber")
            for tx in sent:
                ledger.submit(tx, wait_commit=False)
            frames = [json.loads(ws.recv(timeout=HUNG)) for _ in range(EVENTS)]
    finally:
        ledger.stop()
    assert [f["transaction_id"] for f in frames] == [tx["id"] for tx in sent]
    assert all(f["asset_id"] == f["transaction_id"] for f in frames)
    heights = [f["height"] for f in frames]
    assert heights == sorted(heights) and heights[0] == 1


def test_a_subscriber_that_does_not_read_is_closed_and_the_others_miss_nothing(stream) -> None:
    """A stalled subscriber is closed with 1013 past the backlog limit; a reader gets every frame in order."""
    stalled = _stalled_subscriber(stream.port)
    received: list[str] = []
    with connect(url(stream), max_size=None) as fast:
        wait_for(lambda: stream.subscriber_count() == 2, "both subscribers")
        reader = threading.Thread(target=_read_all, args=(fast, received), daemon=True)
        reader.start()
        sent, height = 0, 0
        while stream.subscriber_count() == 2:
            assert sent < 2_000_000, "the stalled subscriber was never dropped"
            height += 1
            stream.publish(height, [checked(sent + i) for i in range(1000)])
            sent += 1000
            # The reader keeps up by construction: the next block waits until it has read this one, so
            # its backlog is empty at every broadcast however busy the machine is. The stalled one's grows.
            _wait_for_frames(reader, received, sent)
        assert _read_until_closed(stalled).endswith(CLOSE_FRAME)  # what was queued, then 1013
        stream.publish(height + 1, [checked(sent)])
        sent += 1
        _wait_for_frames(reader, received, sent)
        assert stream.subscriber_count() == 1  # the reader was never dropped
        fast.close()
        reader.join(HUNG)
    assert [json.loads(r)["transaction_id"] for r in received] == [f"{n:064x}" for n in range(sent)]


def _wait_for_frames(reader: threading.Thread, received: list[str], count: int) -> None:
    """Wait until the reader has `count` frames; fail at once if its connection was closed."""
    wait_for(lambda: len(received) >= count or not reader.is_alive(), "the reader's frames")
    assert len(received) == count, f"the reader was closed after {len(received)} of {count} frames"


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sent on a raw subscriber socket, up to its close frame."""
    data = bytearray()
    sock.settimeout(HUNG)
    while not data.endswith(CLOSE_FRAME):
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    sock.close()
    return bytes(data)


def _stalled_subscriber(port: int) -> socket.socket:
    """A websocket subscriber that completes the handshake and then never reads (a small receive window)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /api/v1/streams/valid_transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)  # one byte at a time: nothing after the handshake is read
    assert answer.startswith(b"HTTP/1.1 101")
    return sock


def _read_all(ws, frames: list[str]) -> None:  # type: ignore[no-untyped-def]
    try:
        while True:
            frames.append(ws.recv(timeout=HUNG))
    except ConnectionClosed:
        return
