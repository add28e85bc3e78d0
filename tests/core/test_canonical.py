"""The canonical encoding: exact bytes for every kind of value, refusals for values without one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest

from connector.core.canonical import CanonicalError, canonical_json, decimal_text, round_places, time_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("-84.891"), "-84.891"),
        (Decimal("-84.8910"), "-84.891"),
        (Decimal("84.890"), "84.89"),
        (Decimal("1.5E+3"), "1500"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("0.000"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("-0.0E-5"), "0"),
        (Decimal("007.50"), "7.5"),
        (Decimal("100"), "100"),
        (Decimal("1E+2"), "100"),
        (Decimal("-.5"), "-0.5"),
        (Decimal("123456789012345678901234567890.123456789"), "123456789012345678901234567890.123456789"),
        (42, "42"),
    ],
)
def test_decimal_text_table(value: Decimal, text: str) -> None:
    """Decimals are written in plain notation without redundant zeros; equal values give equal text."""
    assert decimal_text(value) == text


@pytest.mark.parametrize(
    "value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("1E+5000")]
)
def test_decimal_text_refuses_non_finite_and_huge(value: Decimal) -> None:
    """NaN, infinities and numbers whose plain form would be enormous have no canonical text."""
    with pytest.raises(CanonicalError):
        decimal_text(value)


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (Fraction(1, 3), "0.333333"),
        (Fraction(2, 3), "0.666667"),
        (Fraction(1, 2_000_000), "0"),  # 0.0000005: tie, to even (0)
        (Fraction(3, 2_000_000), "0.000002"),  # 0.0000015: tie, to even (2)
        (Fraction(-3, 2_000_000), "-0.000002"),
        (Fraction(-84891, 1000), "-84.891"),
    ],
)
def test_round_places_ties_to_even(x: Fraction, text: str) -> None:
    """Derived values round once to 6 places, ties to even, exactly."""
    assert decimal_text(round_places(x)) == text


@pytest.mark.parametrize(
    ("t", "text"),
    [
        (datetime(2019, 3, 18, 16, 13, 45, 275000, tzinfo=UTC), "2019-03-18T16:13:45.275000Z"),
        (
            datetime(2019, 3, 18, 17, 13, 45, 1, tzinfo=timezone(timedelta(hours=1))),
            "2019-03-18T16:13:45.000001Z",
        ),
        (datetime(2019, 1, 1, tzinfo=UTC), "2019-01-01T00:00:00.000000Z"),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00.000000Z"),
    ],
)
def test_time_text_table(t: datetime, text: str) -> None:
    """Times are UTC with exactly six fractional digits and a Z."""
    assert time_text(t) == text


@pytest.mark.parametrize(
    ("obj", "encoded"),
    [
        ({"b": 1, "a": [True, False, None]}, b'{"a":[true,false,null],"b":1}'),
        (
            {"a": Decimal("1.50"), "t": datetime(2019, 1, 1, tzinfo=UTC)},
            b'{"a":"1.5","t":"2019-01-01T00:00:00.000000Z"}',
        ),
        # keys by code point: upper case before lower case, "." and "$" are ordinary characters
        ({"b": 0, "B": 0, "a.b": 0, "$x": 0, "é": 0}, b'{"$x":0,"B":0,"a.b":0,"b":0,"\xc3\xa9":0}'),
        # code point order, not UTF-16 order: U+FF5E sorts before U+1F600
        ({"\U0001f600": 1, "\uff5e": 2}, '{"\uff5e":2,"\U0001f600":1}'.encode()),
        # minimal escaping: quote, backslash, control characters; everything else literal UTF-8
        ('q"b\\', b'"q\\"b\\\\"'),
        ("\n\r\t\b\f\x00\x1f\x7f", b'"\\n\\r\\t\\b\\f\\u0000\\u001f\x7f"'),
        ("ü/\u2028", '"ü/\u2028"'.encode()),
        ([], b"[]"),
        ({}, b"{}"),
        ((1, 2), b"[1,2]"),
        (-12345678901234567890, b"-12345678901234567890"),
    ],
)
def test_canonical_json_table(obj: object, encoded: bytes) -> None:
    """canonical_json produces exactly the documented bytes."""
    assert canonical_json(obj) == encoded


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (1.5, "float"),
        ({"a": [0.1]}, "float"),
        ({1: "a"}, "keys must be strings"),
        (datetime(2019, 1, 1), "naive"),
        (Decimal("NaN"), "canonical"),
        ("\ud800", "Unicode"),
        ({"\udfff": 1}, "Unicode"),
        (b"bytes", "bytes"),
        ({1, 2}, "set"),
    ],
)
def test_canonical_json_refuses(obj: object, message: str) -> None:
    """Values without a canonical encoding raise CanonicalError naming the problem."""
    with pytest.raises(CanonicalError, match=message):
        canonical_json(obj)
