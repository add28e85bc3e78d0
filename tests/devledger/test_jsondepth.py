"""json_depth: the nesting a parser would descend, measured without parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devledger.jsondepth import json_depth, nests_deeper_than

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\a'), inner, max_size=3)
    ),
    max_leaves=20,
)


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(value=JSON)
def test_depth_is_the_parsed_values_nesting(encoding, value):
    """For any JSON text, in any encoding json.loads reads (brackets and escaped quotes inside strings
    included), the depth is the value's."""
    raw = json.dumps(value).encode(encoding)
    assert json.loads(raw) == value
    assert json_depth(raw) == depth_of(value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be"])
def test_an_escaped_quote_in_utf16_or_utf32_hides_no_nesting(encoding):
    """An escaped quote spans two or four bytes there: the brackets after it still count."""
    text = '["\\"", ' + "[" * 5000 + "]" * 5000 + "]"
    assert json_depth(text.encode(encoding)) == 5001


@pytest.mark.parametrize(
    ("raw", "depth"),
    [(b"1", 0), (b"[]", 1), (b'{"a": [[{}]]}', 4), (b'["]]]", "\\"[["]', 1), (b"[" * 100_000, 100_000)],
)
def test_depth_table(raw, depth):
    """Scalars are 0, strings do not count, unclosed text counts what it opens."""
    assert json_depth(raw) == depth


@given(text=st.binary(max_size=40) | st.text(alphabet='ab"\\[]{}\n', max_size=40).map(str.encode))
def test_strings_are_skipped_as_the_plain_pattern_skips_them(text):
    """The unrolled string pattern removes exactly what '"(?:[^"\\\\]|\\\\.)*"' removes, on any bytes."""
    import re

    from devledger.jsondepth import _STRING

    plain = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
    assert _STRING.sub(b"", text) == plain.sub(b"", text)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(value=JSON, limit=st.integers(min_value=0, max_value=4))
def test_nests_deeper_than_agrees_with_the_depth(encoding, value, limit):
    """`nests_deeper_than` says exactly whether the parsed value nests deeper than the limit."""
    assert nests_deeper_than(json.dumps(value).encode(encoding), limit) == (depth_of(value) > limit)
