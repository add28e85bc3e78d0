"""Every payload of reference/orion.md and seed 003 Figure 16, verbatim, gives the expected readings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ngsi.errors import NotificationError
from ngsi.model import Reading
from tests.ngsi.helpers import RECEIVED, T_2019, parse, payload, utc

SMX = "urn:ngsi-ld:SMX:BBB6099"
P_NORMALIZED = Reading(SMX, "SMX", "P", "Number", -84.891, Decimal("-84.891"), T_2019, "metadata", None)
P_LEGACY = Reading(SMX, "SMX", "P", "W", "-84.891", Decimal("-84.891"), T_2019, "metadata", "W")
ROOM = [
    Reading("Room1", "Room", "temperature", None, 23, Decimal(23), RECEIVED, "receipt"),
    Reading("Room1", "Room", "humidity", None, 70, Decimal(70), RECEIVED, "receipt"),
]
LD = [
    Reading(SMX, "SMX", "P", "Property", -84.891, Decimal("-84.891"), utc("2024-03-18T16:13:45.275Z"),
            "observedAt", "WTT"),
    Reading(SMX, "SMX", "refMeter", "Relationship", "urn:ngsi-ld:Meter:1", None, RECEIVED, "receipt"),
]  # fmt: skip

CASES = [
    # file, Ngsiv2-AttrsFormat header, format, subscription id, readings
    ("normalized.json", "normalized", "normalized", "57458eb60962ef754e7c0998", [P_NORMALIZED]),
    ("normalized.json", None, "normalized", "57458eb60962ef754e7c0998", [P_NORMALIZED]),
    ("normalized.json", "custom", "normalized", "57458eb60962ef754e7c0998", [P_NORMALIZED]),
    ("keyValues.json", "keyValues", "keyValues", "...", ROOM),
    ("keyValues.json", None, "keyValues", "...", ROOM),
    ("simplifiedNormalized.json", "simplifiedNormalized", "simplifiedNormalized", None, [P_NORMALIZED]),
    ("simplifiedNormalized.json", None, "simplifiedNormalized", None, [P_NORMALIZED]),
    ("simplifiedKeyValues.json", "simplifiedKeyValues", "simplifiedKeyValues", None, ROOM),
    ("simplifiedKeyValues.json", None, "simplifiedKeyValues", None, ROOM),
    ("legacy.json", None, "legacy", "5c8fbdc3f382b7ba2d5c660d", [P_LEGACY]),
    ("legacy_seed003_figure16.json", None, "legacy", "5c8fbdc3f382b7ba2d5c660d", [P_LEGACY]),
    ("ld.json", None, "ld", "urn:ngsi-ld:subscriptions:s1", LD),
]


@pytest.mark.parametrize(("name", "attrs_format", "fmt", "subscription", "readings"), CASES)
def test_reference_payload_gives_expected_readings(name, attrs_format, fmt, subscription, readings):
    """A verbatim reference payload is accepted whole: format, subscription id and readings as expected."""
    result = parse(payload(name), attrs_format)
    assert (result.format, result.subscription_id, result.readings, result.rejected) == (
        fmt,
        subscription,
        readings,
        [],
    )


@pytest.mark.parametrize(
    ("name", "attrs"),
    [
        ("normalized.json", {SMX: {"P": -84.891}}),
        ("legacy_seed003_figure16.json", {SMX: {"P": "-84.891"}}),
        ("keyValues.json", {"Room1": {"temperature": 23, "humidity": 70}}),
        ("ld.json", {SMX: {"P": -84.891, "refMeter": "urn:ngsi-ld:Meter:1"}}),
    ],
)
def test_entity_attrs_hold_plain_values_without_time_attributes(name, attrs):
    """entity_attrs maps each entity to its non-time attributes' plain values (TimeInstant left out)."""
    assert parse(payload(name)).entity_attrs == attrs


@pytest.mark.parametrize("attrs_format", ["values", None])
def test_values_payload_is_refused_with_a_clear_message(attrs_format):
    """attrsFormat values (no entity id) is refused, by header or by the shape of data."""
    with pytest.raises(NotificationError) as err:
        parse(payload("values.json"), attrs_format)
    assert err.value.message == (
        "data[0]: attrsFormat 'values' carries no entity id; subscribe with attrsFormat 'normalized'"
    )


def test_serial_number_and_manufacturer_reach_entity_attrs():
    """Descriptive attributes become raw readings and appear in entity_attrs for meter registration."""
    body = {
        "data": [
            {
                "id": "m1",
                "type": "SMX",
                "serialNumber": {"type": "Text", "value": "SN-0042", "metadata": {}},
                "manufacturer": {"type": "Text", "value": "ACME", "metadata": {}},
            }
        ]
    }
    result = parse(body, "normalized")
    assert result.entity_attrs == {"m1": {"serialNumber": "SN-0042", "manufacturer": "ACME"}}
    assert [(r.attr, r.value, r.number) for r in result.readings] == [
        ("serialNumber", "SN-0042", None),
        ("manufacturer", "ACME", None),
    ]


def test_ld_geoproperty_and_concise_values_are_kept_raw():
    """An NGSI-LD GeoProperty and a concise (bare) value become raw readings without a number."""
    point = {"type": "Point", "coordinates": [12.6, 42.5]}
    body = {
        "type": "Notification",
        "data": [
            {"id": "urn:x:1", "type": "SMX", "location": {"type": "GeoProperty", "value": point}, "on": True}
        ],
    }
    result = parse(body)
    assert [(r.attr, r.attr_type, r.value, r.number) for r in result.readings] == [
        ("location", "GeoProperty", point, None),
        ("on", None, True, None),
    ]


def test_ld_multi_attribute_gives_one_reading_per_instance():
    """An NGSI-LD attribute given as an array of instances (datasetId) yields one reading each."""
    instances = [
        {"type": "Property", "value": 1, "datasetId": "urn:a", "observedAt": "2024-03-18T16:00:00Z"},
        {"type": "Property", "value": 2, "datasetId": "urn:b", "observedAt": "2024-03-18T16:00:01Z"},
    ]
    result = parse({"type": "Notification", "data": [{"id": "urn:x:1", "type": "SMX", "P": instances}]})
    assert [(r.number, r.observed_at.second) for r in result.readings] == [(Decimal(1), 0), (Decimal(2), 1)]


def test_legacy_batch_gives_one_reading_per_entity():
    """A legacy notification with many contextResponses gives a reading per entity, in order."""
    body = payload("legacy.json")
    element = body["contextResponses"][0]
    body["contextResponses"] = [
        {**element, "contextElement": {**element["contextElement"], "id": f"m{i}"}} for i in range(100)
    ]
    result = parse(body)
    assert [r.entity_id for r in result.readings] == [f"m{i}" for i in range(100)]


@pytest.mark.parametrize(
    ("attr", "unit"),
    [
        ({"name": "P", "type": "W", "value": "1"}, "W"),
        ({"name": "P", "type": "Number", "value": "1"}, None),
        ({"name": "P", "type": "float", "value": "1"}, None),
        (
            {"name": "P", "type": "W", "value": "1", "metadatas": [{"name": "unitCode", "value": "KWT"}]},
            "KWT",
        ),
        ({"name": "P", "value": "1"}, None),
    ],
)
def test_legacy_unit_comes_from_unitcode_or_a_unit_like_type(attr, unit):
    """A legacy attribute's unit is its unitCode metadata, else its type unless that names a data type."""
    body = {"contextResponses": [{"contextElement": {"id": "m1", "type": "SMX", "attributes": [attr]}}]}
    assert parse(body).readings[0].unit == unit


def test_normalized_unitcode_metadata_is_the_unit():
    """A normalized attribute's unitCode metadata becomes the reading's unit."""
    attr = {"type": "Number", "value": 5, "metadata": {"unitCode": {"type": "Text", "value": "WTT"}}}
    assert parse({"data": [{"id": "m1", "type": "SMX", "P": attr}]}, "normalized").readings[0].unit == "WTT"
