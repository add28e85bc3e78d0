"""Bodies that are not notifications raise; partly invalid ones keep the valid parts."""

# ruff: noqa: E501  (tables of exact messages read best one case per line)

from __future__ import annotations

import pytest

from ngsi.errors import NotificationError
from tests.ngsi.helpers import parse, payload

GOOD_V2 = {"id": "m1", "type": "SMX", "P": {"type": "Number", "value": 1, "metadata": {}}}

NOT_NOTIFICATIONS = [
    # body, Ngsiv2-AttrsFormat header, exact message
    ([GOOD_V2], None, "body is a JSON array, expected a notification object"),
    ("data", None, "body is a JSON string, expected a notification object"),
    (42, None, "body is a JSON number, expected a notification object"),
    (True, None, "body is a JSON boolean, expected a notification object"),
    (None, None, "body is JSON null, expected a notification object"),
    ({}, None, "body is an empty object, expected a notification"),
    ({"subscriptionId": "s"}, None, "body has none of 'data', 'contextResponses' or an entity 'id'"),
    ({"data": {"id": "m1"}}, None, "data: must be an array"),
    ({"data": None}, None, "data: must be an array"),
    ({"data": []}, None, "data: contains no entity"),
    ({"data": [GOOD_V2], "subscriptionId": 7}, None, "subscriptionId: must be a string"),
    ({"data": [GOOD_V2], "subscriptionId": ""}, None, "subscriptionId: must not be empty"),
    ({"data": [{"type": "SMX"}]}, None, "data[0]: missing 'id'"),
    ({"data": [{"id": "m1"}]}, "normalized", "data[0]: missing 'type'"),
    ({"data": [{"id": "", "type": "SMX"}]}, None, "data[0]: 'id' must not be empty"),
    ({"data": [{"id": 5, "type": "SMX"}]}, None, "data[0]: 'id' must be a string, got a number"),
    ({"data": [{"id": "m" * 257, "type": "SMX"}]}, None, "data[0]: 'id' is longer than 256 characters"),
    ({"data": [{"id": "m\x00", "type": "T"}]}, None, "data[0]: 'id' contains a control character or an unpaired surrogate"),
    ({"data": [{"id": "m\ud800", "type": "T"}]}, None, "data[0]: 'id' contains a control character or an unpaired surrogate"),
    ({"data": [{"id": "m1", "type": ["A", "B"]}]}, None, "data[0]: 'type' must be a string, got an array"),
    ({"data": ["m1", 3]}, None, "data[0]: must be an object (an entity), got a string (and 1 more rejected entities)"),
    ({"data": [[1, 2]]}, "keyValues", "data[0]: attrsFormat 'values' carries no entity id; subscribe with attrsFormat 'normalized'"),
    ({"type": "Notification", "data": "x"}, None, "data: must be an array"),
    ({"type": "Notification", "subscriptionId": 1, "data": []}, None, "subscriptionId: must be a string"),
    ({"type": "Notification", "subscriptionId": 1}, None, "data: missing; subscriptionId: must be a string"),
    ({"type": "Notification", "data": []}, None, "data: contains no entity"),
    ({"notifiedAt": "2024-01-01T00:00:00Z", "type": "Other", "data": [GOOD_V2]}, None, "type: must be 'Notification'"),
    ({"contextResponses": {}}, None, "contextResponses: must be an array"),
    ({"contextResponses": []}, None, "contextResponses: contains no entity"),
    ({"contextResponses": [{"statusCode": {"code": "200"}}]}, None, "contextResponses: contains no entity"),
    ({"contextResponses": [{}]}, None, "contextResponses[0]: missing 'contextElement'"),
    ({"contextResponses": [{"contextElement": []}]}, None, "contextResponses[0].contextElement: must be an object (an entity), got an array"),
    ({"contextResponses": [{"contextElement": {"id": "m", "type": "T", "isPattern": "true"}}]}, None,
     "contextResponses[0].contextElement: isPattern is true: a pattern, not an entity"),
    ({"contextResponses": [{"contextElement": {"id": "m", "type": "T", "attributes": {}}}]}, None,
     "contextResponses[0].contextElement: 'attributes' must be an array, got an object"),
    ({"id": "m1", "type": ""}, "simplifiedKeyValues", "body: 'type' must not be empty"),
    ({"type": "SMX", "data": 1}, "simplifiedNormalized", "body: missing 'id'"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "attrs_format", "message"), NOT_NOTIFICATIONS)
def test_non_notification_raises_naming_what_is_wrong(body, attrs_format, message):
    """A body that is not a notification (or has no valid entity) raises with a precise, stable message."""
    with pytest.raises(NotificationError) as err:
        parse(body, attrs_format)
    assert err.value.message == message


def test_one_bad_entity_among_good_ones_in_a_legacy_batch():
    """In a legacy batch the invalid entity is rejected and the valid ones still give readings."""
    body = payload("legacy_seed003_figure16.json")
    good = body["contextResponses"][0]
    bad = {"contextElement": {"type": "SMX", "isPattern": "false", "attributes": []}}
    body["contextResponses"] = [good, bad, good]
    result = parse(body)
    assert [r.entity_id for r in result.readings] == ["urn:ngsi-ld:SMX:BBB6099"] * 2
    assert [(r.where, r.entity_id, r.reason) for r in result.rejected] == [
        ("contextResponses[1].contextElement", None, "missing 'id'")
    ]


def test_one_bad_entity_among_good_ones_in_an_ld_batch():
    """In an NGSI-LD batch the entity without a type is rejected and the others are kept."""
    body = payload("ld.json")
    good = body["data"][0]
    body["data"] = [good, {"id": "urn:ngsi-ld:SMX:2"}, 17]
    result = parse(body)
    assert [r.attr for r in result.readings] == ["P", "refMeter"]
    assert [(r.where, r.entity_id, r.reason) for r in result.rejected] == [
        ("data[1]", None, "missing 'type'"),
        ("data[2]", None, "must be an object (an entity), got a number"),
    ]


BAD_ATTRIBUTES = [
    # attribute name, normalized attribute, rejected where, reason
    ("P", 5, "data[0].P", "must be an object with 'type' and 'value', got a number"),
    ("P", {"type": "Number"}, "data[0].P", "missing 'value'"),
    ("P", {"type": 3, "value": 1}, "data[0].P", "'type' must be a string, got a number"),
    ("P", {"type": "Number", "value": 1, "metadata": []}, "data[0].P", "'metadata' must be an object, got an array"),
    ("P", {"type": "Number", "value": 1, "metadata": {"unitCode": {"value": "W" * 65}}}, "data[0].P",
     "unitCode is longer than 64 characters"),
    ("P", {"type": "Number", "value": "1e5000"}, "data[0].P", "number out of range"),
    ("", {"type": "Number", "value": 1}, "data[0].''", "attribute name must not be empty"),
    ("a" * 257, {"type": "Number", "value": 1}, "data[0]." + repr("a" * 40) + "...",
     "attribute name is longer than 256 characters"),
    ("P", {"type": "Text", "value": "a\ud800"}, "data[0].P", "value contains an unpaired surrogate (not valid Unicode)"),
    ("P", {"type": "Geo", "value": {"k": ["\udfff"]}}, "data[0].P", "value contains an unpaired surrogate (not valid Unicode)"),
    ("P", {"type": "Geo", "value": {"\udfff": 1}}, "data[0].P", "value contains an unpaired surrogate (not valid Unicode)"),
    ("P\n", {"type": "Number", "value": 1}, "data[0].'P\\n'", "attribute name contains a control character or an unpaired surrogate"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "attr", "where", "reason"), BAD_ATTRIBUTES)
def test_one_bad_attribute_is_rejected_and_the_rest_kept(name, attr, where, reason):
    """An invalid attribute is rejected with its place and reason; the valid one beside it is a reading."""
    entity = {"id": "m1", "type": "SMX", name: attr, "Q": {"type": "Number", "value": 2, "metadata": {}}}
    result = parse({"data": [entity]}, "normalized")
    assert [(r.where, r.entity_id, r.reason) for r in result.rejected] == [(where, "m1", reason)]
    assert [r.attr for r in result.readings] == ["Q"]


LEGACY_BAD_ATTRIBUTES = [
    ("x", "contextResponses[0].contextElement.attributes[0]", "must be an object, got a string"),
    ({"value": "1"}, "contextResponses[0].contextElement.attributes[0]", "missing 'name'"),
    ({"name": "P"}, "contextResponses[0].contextElement.P", "missing 'value'"),
    ({"name": 4, "value": "1"}, "contextResponses[0].contextElement.?", "attribute name must be a string, got a number"),
    ({"name": "P", "value": "1", "metadatas": {}}, "contextResponses[0].contextElement.P",
     "'metadatas' must be an array, got an object"),
]  # fmt: skip


@pytest.mark.parametrize(("attr", "where", "reason"), LEGACY_BAD_ATTRIBUTES)
def test_legacy_bad_attribute_is_rejected_and_the_rest_kept(attr, where, reason):
    """An invalid NGSIv1 attribute is rejected with its place; the valid one is a reading."""
    attributes = [attr, {"name": "Q", "type": "W", "value": "2"}]
    body = {"contextResponses": [{"contextElement": {"id": "m1", "type": "SMX", "attributes": attributes}}]}
    result = parse(body)
    assert [(r.where, r.entity_id, r.reason) for r in result.rejected] == [(where, "m1", reason)]
    assert [r.attr for r in result.readings] == ["Q"]


def test_entity_with_only_rejected_attributes_is_not_an_error():
    """An entity whose every attribute is rejected still parses: the caller answers with the list."""
    result = parse({"data": [{"id": "m1", "type": "SMX", "P": 1}]}, "normalized")
    assert (result.readings, [r.reason for r in result.rejected]) == (
        [],
        ["must be an object with 'type' and 'value', got a number"],
    )


def test_unknown_envelope_fields_are_ignored():
    """Fields a broker adds to the envelope do not break ingestion."""
    body = payload("normalized.json") | {"newField": {"x": 1}}
    assert len(parse(body, "normalized").readings) == 1
