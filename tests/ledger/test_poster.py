"""POSTing transactions (connector/ledger/poster.py): the bytes a node receives, failover and errors."""

from __future__ import annotations

import dataclasses
import gc
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import pytest
import urllib3
from bigchaindb_driver.exceptions import BadRequest, TransportError

from connector.ledger.errors import Verdict, classify
from connector.ledger.poster import RawPoster
from connector.settings import LedgerSettings

ACCEPTED = b"HTTP/1.1 202 ACCEPTED\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
REASON = b'{"message": "Invalid transaction", "status": 400}'
REJECTED = b"HTTP/1.1 400 BAD REQUEST\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(REASON),
    REASON,
)


class Node:
    """A node on loopback that records every request's raw bytes and answers each with `answer`; with
    `close_after`, it closes the connection after each answer, as a node ending idle keep-alives does."""

    def __init__(self, answer: bytes = ACCEPTED, close_after: bool = False) -> None:
        self.answer, self.close_after = answer, close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.startswith(b"Content-Length")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                conn.sendall(self.answer)
                if self.close_after:
                    return

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def node() -> Iterator[Node]:
    """A recording node that accepts every POST."""
    made = Node()
    yield made
    made.close()


def settings(**changes: object) -> LedgerSettings:
    return dataclasses.replace(LedgerSettings(), timeout=2.0, **changes)  # type: ignore[arg-type]


BODIES = [b'{"id":"a","metadata":{"x":"\xc3\xa9"}}', b"{}", b'{"inputs":[' + b"7" * 3000 + b"]}"]


@pytest.mark.parametrize("app", [{}, {"app_id": "id-1", "app_key": "key-1"}])
@pytest.mark.parametrize("prefix", ["", "/bigchaindb/"])
def test_a_node_receives_the_bytes_urllib3_sent(node: Node, app: dict[str, str], prefix: str) -> None:
    """Every request is byte for byte what urllib3's pool sent before: request line, headers, body."""
    before = urllib3.PoolManager(retries=False)
    headers = {"Content-Type": "application/json"} | (
        app and {"app_id": app["app_id"], "app_key": app["app_key"]}
    )
    base = node.url + prefix.rstrip("/")
    for body in BODIES:
        before.request("POST", f"{base}/api/v1/transactions/?mode=sync", body=body, headers=headers)
    before.clear()
    expected, node.requests = node.requests, []
    poster = RawPoster([node.url + prefix], settings(**app))
    for body in BODIES:
        poster.post(body, "sync")
    poster.close()
    assert node.requests == expected
    assert node.connections == 2  # one each: kept alive between POSTs


def test_a_connection_the_node_closed_meanwhile_is_opened_again() -> None:
    """A kept-alive connection the node closed while idle costs no failed POST: a new one is opened."""
    node = Node(close_after=True)
    poster = RawPoster([node.url], settings())
    for _ in range(3):
        poster.post(b"{}", "sync")
        time.sleep(0.05)  # the node's close arrives
    poster.close()
    node.close()
    assert len(node.requests) == 3 and node.connections == 3


def test_the_next_node_is_tried_when_one_does_not_answer(node: Node) -> None:
    """A node that refuses the connection is passed over for the next one, in the order given."""
    down = socket.create_server(("127.0.0.1", 0))
    down_url = f"http://127.0.0.1:{down.getsockname()[1]}"
    down.close()  # nothing listens there any more
    poster = RawPoster([down_url, node.url], settings())
    poster.post(b"{}", "commit")
    poster.close()
    assert node.requests[0].startswith(b"POST /api/v1/transactions/?mode=commit HTTP/1.1\r\n")


def test_no_node_answering_is_a_transient_connection_error() -> None:
    """When no node answers, ConnectionError: the writer retries it later (classified transient)."""
    down = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{down.getsockname()[1]}"
    down.close()
    poster = RawPoster([url], settings())
    with pytest.raises(ConnectionError) as caught:
        poster.post(b"{}", "sync")
    assert classify(caught.value).verdict is Verdict.TRANSIENT


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (REJECTED, BadRequest),
        (ACCEPTED.replace(b"202 ACCEPTED", b"500 INTERNAL SERVER ERROR"), TransportError),
    ],
)
def test_a_non_2xx_answer_raises_the_drivers_exception(answer: bytes, error: type[Exception]) -> None:
    """A 400 is the driver's BadRequest with the node's text, other statuses its TransportError; the
    next node is not asked (the node answered)."""
    node, other = Node(answer=answer), Node()
    poster = RawPoster([node.url, other.url], settings())
    with pytest.raises(error) as caught:
        poster.post(b"{}", "sync")
    assert type(caught.value) is error
    if error is BadRequest:
        assert caught.value.args[1] == REASON.decode()
        assert caught.value.args[2] == {"message": "Invalid transaction", "status": 400}
    assert other.requests == []
    poster.close()
    node.close()
    other.close()


def test_a_poster_dropped_without_close_closes_its_connections(node: Node) -> None:
    """A poster no longer referenced closes its kept-alive connections: no socket is left to the
    garbage collector (a ResourceWarning, an error under pytest's filterwarnings)."""

    def post_from_a_thread(poster: RawPoster) -> None:
        thread = threading.Thread(target=poster.post, args=(b"{}", "sync"))
        thread.start()
        thread.join()

    poster = RawPoster([node.url], settings())
    post_from_a_thread(poster)
    poster.post(b"{}", "sync")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del poster
        gc.collect()
    assert node.connections == 2 and not [w for w in caught if issubclass(w.category, ResourceWarning)]
