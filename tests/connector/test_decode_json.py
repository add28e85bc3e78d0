"""The notification body is decoded as json.loads decodes it, whichever decoder does the work."""

from __future__ import annotations

import json
import sys

import pytest

from connector.errors import ApiError
from connector.notify import decode_json

SAME = [
    b'{"a":1,"a":2}',
    b'{"v":-9223372036854775809}',  # below 64 bits: orjson would give a float
    b'{"v":18446744073709551616}',  # above 64 bits
    b'{"v":123456789012345678901234567890.5}',
    b'{"v":9223372036854775807,"w":-9223372036854775808}',
    b'{"v":1e400}',  # infinity by json.loads, refused by orjson
    b'{"v":NaN}',
    b'{"v":"\\ud800"}',  # a lone surrogate escape
    b'\xef\xbb\xbf{"v":1}',  # a UTF-8 byte-order mark
    '{"v":"\u00e9"}'.encode("utf-16"),
    b' [ 1.5e-7 , 0.1 , -0.0 , "x" ] ',
    b"[" * 500 + b"]" * 500,
]


@pytest.mark.parametrize("raw", SAME)
def test_same_value_as_json_loads(raw):
    try:
        expected = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(ApiError) as err:
            decode_json(raw)
        assert err.value.description == f"body is not valid JSON: {exc}"
        return
    got = decode_json(raw)
    assert got == expected or (got != got and expected != expected)  # NaN compares unequal
    assert json.dumps(got) == json.dumps(expected)  # same types: an int stays an int


@pytest.mark.parametrize("raw", [b"{", b'{"a":}', b"\x00", b'{"a":"\x01"}', b"[1,]"])
def test_invalid_json_keeps_the_stdlib_message(raw):
    with pytest.raises(ApiError) as err:
        decode_json(raw)
    with pytest.raises(ValueError) as std:
        json.loads(raw)
    assert err.value.description == f"body is not valid JSON: {std.value}"


@pytest.mark.parametrize("depth", [1_025, 2_000, 100_000])
@pytest.mark.parametrize("first", [b"", b"NaN,"])  # orjson refuses NaN first, then json.loads would recurse
def test_deep_nesting_is_refused_before_parsing(depth, first):
    """A body nested deeper than 1,024 levels (orjson's own limit) is a 400 naming the nesting, even with
    the recursion limit raised as py_ecc (loaded by web3) raises it: json.loads would overflow the C stack
    and kill the process."""
    raw = b"[" + first + b"[" * (depth - 1) + b"]" * depth
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        with pytest.raises(ApiError) as err:
            decode_json(raw)
    finally:
        sys.setrecursionlimit(limit)
    assert err.value.description == "body is not valid JSON: nested deeper than 1024 levels"
