"""Values: numbers and numeric strings become exact Decimals; everything else stays raw."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.ngsi.helpers import parse

NUMBERS = [
    # JSON value as received, expected number
    (-84.891, Decimal("-84.891")),
    (23, Decimal(23)),
    (0.1, Decimal("0.1")),
    (1e300, Decimal("1e300")),
    (10**40, Decimal(10**40)),
    ("-84.891", Decimal("-84.891")),
    ("1e3", Decimal("1E+3")),
    ("007", Decimal(7)),
    (".5", Decimal("0.5")),
    ("0", Decimal(0)),
    (True, None),
    (False, None),
    ("NaN", None),
    ("Infinity", None),
    ("-inf", None),
    ("1_000", None),
    (" 1", None),
    ("+1", None),
    ("", None),
    ("12 W", None),
    ("SN-0042", None),
    (None, None),
    ([1, 2], None),
    ({"v": 1}, None),
]


@pytest.mark.parametrize(("value", "number"), NUMBERS)
def test_value_is_kept_raw_and_number_is_exact(value, number):
    """The reading keeps the JSON value as received and its number only when it is a finite number."""
    [reading] = parse({"data": [{"id": "m1", "type": "SMX", "v": value}]}, "keyValues").readings
    assert reading.value is value
    assert reading.number == number if number is not None else reading.number is None
    assert type(reading.number) is (Decimal if number is not None else type(None))


@pytest.mark.parametrize("value", ["1e5000", "-1e-1001", "1E+1001", 10**70, -(10**64)])
def test_number_the_store_cannot_keep_is_rejected(value):
    """A number with more than 64 characters or an absurd exponent is rejected, not silently altered."""
    result = parse({"data": [{"id": "m1", "type": "SMX", "v": value}]}, "keyValues")
    assert result.readings == []
    assert [(r.where, r.reason) for r in result.rejected] == [("data[0].v", "number out of range")]


def test_long_numeric_string_is_kept_as_text():
    """A numeric string longer than the store's 64-character number column is a raw (non-numeric) value."""
    [reading] = parse({"data": [{"id": "m1", "type": "SMX", "v": "9" * 65}]}, "keyValues").readings
    assert (reading.value, reading.number) == ("9" * 65, None)


def test_relationship_object_is_the_value():
    """An NGSI-LD Relationship's object is the reading's value."""
    relationship = {"type": "Relationship", "object": "urn:x:2"}
    body = {"type": "Notification", "data": [{"id": "u:1", "type": "T", "r": relationship}]}
    [reading] = parse(body).readings
    assert (reading.value, reading.number, reading.attr_type) == ("urn:x:2", None, "Relationship")


def test_null_value_is_a_raw_reading():
    """A normalized attribute whose value is null is kept as a raw reading (number None)."""
    body = {"data": [{"id": "m1", "type": "SMX", "P": {"type": "Number", "value": None, "metadata": {}}}]}
    [reading] = parse(body, "normalized").readings
    assert (reading.value, reading.number) == (None, None)
