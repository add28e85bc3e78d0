"""How deep a JSON text nests, found before parsing it.

`json.loads` recurses in C once per level of arrays and objects, bounded only by the interpreter's recursion
limit. Libraries raise that limit on import (py_ecc, which web3 and eth-account load, sets 100,000), and then
a body nested 100,000 levels deep overflows the thread's C stack: the whole process dies with SIGSEGV
instead of answering 400. So every JSON body from the network is measured first and refused when too deep.
Shared by the dev ledger and the connector's /notify (the lowest package of the two, with no dependencies).

`json.loads` also reads UTF-16 and UTF-32 bytes (`json.detect_encoding`), and there a quote or a backslash
takes more than one byte: the text is measured in the encoding the parser reads it in, else an escaped quote
would end a string early and hide the brackets that follow.
"""

from __future__ import annotations

import json
import re

# A JSON string (escapes included); brackets inside strings do not nest anything. Written as runs of plain
# bytes between escapes ("unrolled"), which the regex engine takes a run at a time: the same matches as
# '"(?:[^"\\]|\\.)*"', in a third of the time on a transaction's body (17 against 49 us for 1.9 KB).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in `raw` (0 for a scalar), strings skipped. For malformed
    text (an unclosed string, say) an upper bound, never less than what a parser would descend."""
    depth = deepest = 0
    for byte in _STRING.sub(b"", _as_utf8(raw)).translate(None, _NOT_BRACKETS):
        if byte in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether `raw` nests arrays and objects more than `limit` deep: `json_depth(raw) > limit`, answered
    at once for a text with no more than `limit` opening brackets in it (strings included)."""
    # Every "[" and "{" holds a 0x5B or 0x7B byte in each encoding json.loads reads, so the two counts bound
    # the depth from above; a transaction has a few dozen, and counting them is 30 times cheaper than
    # json_depth's pass over the strings.
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return json_depth(raw) > limit


def _as_utf8(raw: bytes) -> bytes:
    encoding = json.detect_encoding(raw)  # what json.loads decodes `raw` with, from its first bytes
    if encoding.startswith("utf-8"):
        return raw
    try:
        return raw.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw  # json.loads refuses it too, before parsing anything
