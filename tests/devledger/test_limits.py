"""Issue 19: the dev ledger's limits: oversized bodies 413 (Tendermint's figure), deep nesting and huge
`limit` values 400, never a 500; the ledger keeps serving after each."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from devledger.http import MAX_NESTING, MAX_TX_BYTES

from .conftest import create, error_text, post


def nested(depth: int) -> object:
    """A value nesting `depth` levels of objects."""
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_limit_is_tendermints_rpc_body_limit_in_base64() -> None:
    """The figure: Tendermint's 1,000,000-byte RPC body holds a base64 transaction of 749,913 bytes."""
    assert MAX_TX_BYTES == 749_913
    assert 4 * -(-MAX_TX_BYTES // 3) + 113 <= 1_000_000


def test_oversized_transaction_is_413_and_not_stored(ledger, bdb, alice) -> None:
    """A signed transaction over the limit is a 413 naming the limit; one just under it is accepted."""
    big = create(alice, data={"blob": "x" * (MAX_TX_BYTES + 1)})
    answer = post(ledger, big)
    assert answer.status_code == 413
    assert answer.json()["message"].endswith(f"the limit is {MAX_TX_BYTES} bytes (Tendermint's RPC limit)")
    assert requests.get(f"{ledger.url}/api/v1/transactions/{big['id']}", timeout=5).status_code == 404
    fits = create(alice, data={"blob": "x" * (MAX_TX_BYTES - 2000)})
    assert len(json.dumps(fits).encode()) <= MAX_TX_BYTES
    assert post(ledger, fits).status_code == 202


def test_oversized_body_without_length_is_413(ledger) -> None:
    """A chunked body over the limit (no Content-Length to refuse it by) is a 413 too."""
    chunks = (b"x" * 65536 for _ in range(MAX_TX_BYTES // 65536 + 2))
    answer = requests.post(f"{ledger.url}/api/v1/transactions", data=chunks, timeout=30)
    assert answer.status_code == 413


def test_lying_content_length_is_413(ledger) -> None:
    """A Content-Length above the limit is refused before the body is read."""
    host, port = ledger.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"POST /api/v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_TX_BYTES + 1}\r\n\r\n"
        sock.sendall(head.encode() + b"x" * (MAX_TX_BYTES + 1))
        assert sock.recv(64).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5_000, 100_000])
def test_deeply_nested_metadata_is_400(ledger, alice, depth) -> None:
    """Metadata nested deeper than BSON's 100 levels is a 400, whether or not Python's parser can read it."""
    tx = create(alice, metadata={"x": 1})
    body = json.dumps(tx).replace(
        '"metadata": {"x": 1}', '"metadata": ' + '{"a":' * depth + "1" + "}" * depth
    )
    answer = requests.post(f"{ledger.url}/api/v1/transactions", data=body, timeout=30)
    expected = f"Invalid transaction (ValidationError): nested deeper than {MAX_NESTING} levels"
    assert (answer.status_code, answer.text) == (400, error_text(expected))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_deep_nesting_behind_an_escaped_quote_in_utf16_or_utf32_is_400(ledger, alice, encoding) -> None:
    """json.loads reads UTF-16/32 bodies: nesting after an escaped quote there is measured too, a 400."""
    tx = create(alice, metadata={"x": 1})
    deep = '{"q": "\\"", "a": ' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}"
    body = json.dumps(tx).replace('{"x": 1}', deep).encode(encoding)
    answer = requests.post(f"{ledger.url}/api/v1/transactions", data=body, timeout=30)
    expected = f"Invalid transaction (ValidationError): nested deeper than {MAX_NESTING} levels"
    assert (answer.status_code, answer.text) == (400, error_text(expected))


def test_a_json_null_body_is_a_schema_error(ledger) -> None:
    """A body of `null` nests nothing: it is the schema's 400, not a nesting one."""
    answer = requests.post(f"{ledger.url}/api/v1/transactions", data=b"null", timeout=30)
    expected = "Invalid transaction schema: None is not of type 'object'"
    assert (answer.status_code, answer.text) == (400, error_text(expected))


def test_metadata_at_the_nesting_limit_is_accepted(ledger, alice) -> None:
    """A transaction nesting exactly MAX_NESTING levels (metadata two below the top) is accepted."""
    tx = create(alice, metadata=nested(MAX_NESTING - 1))
    assert post(ledger, tx).status_code == 202


@pytest.mark.parametrize("route", ["assets", "metadata"])
@pytest.mark.parametrize("limit", ["99999999999999999999", "-99999999999999999999", str(2**63)])
def test_huge_limit_is_400(ledger, route, limit) -> None:
    """A search `limit` beyond a 64-bit integer is reqparse's 400 naming `limit`; the largest one works."""
    answer = requests.get(f"{ledger.url}/api/v1/{route}", params={"search": "x", "limit": limit}, timeout=5)
    assert answer.status_code == 400 and "limit" in answer.json()["message"]
    ok = requests.get(f"{ledger.url}/api/v1/{route}", params={"search": "x", "limit": 2**63 - 1}, timeout=5)
    assert ok.status_code == 200
