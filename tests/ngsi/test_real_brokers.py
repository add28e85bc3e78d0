"""Parser rules for what real brokers send (issue 15): service-path lists, typed date-times, time-named
attributes that hold no date, untyped NGSIv1 attributes, non-finite numbers, format detection."""

from __future__ import annotations

import pytest

from ngsi.errors import NotificationError
from ngsi.headers import resolve_headers
from ngsi.model import Headers
from ngsi.parse import detect_format, parse_notification
from ngsi.schemas import parse_time
from tests.ngsi.helpers import RECEIVED, parse, utc


def legacy(*ids: str) -> dict:
    untyped = [{"name": "A", "type": "", "value": "1"}]
    elements = [{"contextElement": {"id": i, "type": "T", "attributes": untyped}} for i in ids]
    return {"subscriptionId": "s", "contextResponses": elements}


def test_service_path_list_gives_each_entity_its_path_and_the_last_one_to_the_rest():
    """ "/a,/b" gives entity 1 /a and entity 2 /b; a third entity takes the last path."""
    headers = resolve_headers({"Fiware-ServicePath": "/a, /b/"})
    assert (headers.service_path, headers.service_paths) == ("/a", ("/a", "/b"))
    readings = parse_notification(legacy("E1", "E2", "E3"), headers, RECEIVED).readings
    assert [(r.entity_id, r.service_path, r.attr_type) for r in readings] == [
        ("E1", "/a", None),
        ("E2", "/b", None),
        ("E3", "/b", None),
    ]
    single = parse_notification(legacy("E1"), resolve_headers({"Fiware-ServicePath": "/a"}), RECEIVED)
    assert single.readings[0].service_path is None  # the header's path applies


def test_a_bad_path_in_a_list_is_still_refused():
    """Every path of the list follows Orion's rules."""
    with pytest.raises(NotificationError, match="Fiware-ServicePath"):
        resolve_headers({"Fiware-ServicePath": "/a,b"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"@type": "DateTime", "@value": "2023-02-08T13:13:14.000Z"}, utc("2023-02-08T13:13:14Z")),
        ({"@type": "Text", "@value": "2023-02-08T13:13:14.000Z"}, None),
        ({"@value": "2023-02-08T13:13:14.000Z"}, None),
    ],
)
def test_typed_date_time_values(raw, expected):
    """Only an NGSI-LD value typed DateTime is a date-time."""
    got = parse_time(raw)
    assert got == expected if expected else isinstance(got, str)


def test_keyvalues_timestamp_number_is_a_reading_and_no_time():
    """keyValues {"timestamp": 37} is stored as a reading; the other attribute is timed by receipt."""
    result = parse({"data": [{"id": "m", "type": "T", "timestamp": 37, "v": 1}]}, "keyValues")
    assert {(r.attr, r.value, r.time_source) for r in result.readings} == {
        ("timestamp", 37, "receipt"),
        ("v", 1, "receipt"),
    }


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), [1, {"x": float("nan")}]])
def test_non_finite_numbers_anywhere_in_a_value_are_rejected(value):
    """NaN and infinities, also nested in arrays and objects, reject the reading with a clear reason."""
    result = parse({"data": [{"id": "m", "type": "T", "v": value, "w": 2}]}, "keyValues")
    assert [r.attr for r in result.readings] == ["w"]
    assert [(r.where, r.reason.split(":")[0]) for r in result.rejected] == [("data[0].v", "not a number")]


@pytest.mark.parametrize(
    ("body", "attrs_format", "fmt"),
    [
        ({"contextResponses": 1}, None, "legacy"),
        ({"notifiedAt": "x", "data": 1}, None, "ld"),
        ({"data": [[1]]}, None, "values"),
        ({"data": []}, "keyValues", "keyValues"),
        ({"id": "x", "type": "T", "A": {"type": "N", "value": 1}}, None, "simplifiedNormalized"),
        ([1], None, "unknown"),
        ({"what": 1}, None, "unknown"),
    ],
)
def test_detect_format(body, attrs_format, fmt):
    """The format a body is counted under when it is refused."""
    assert detect_format(body, Headers("", "/", attrs_format=attrs_format)) == fmt


def test_ld_entity_of_several_types_is_stored_under_their_list():
    """NGSI-LD allows "type": ["A", "B"]: the entity is kept, its type is "A,B"."""
    body = {
        "type": "Notification",
        "data": [{"id": "urn:e:1", "type": ["A", "B"], "v": {"type": "Property", "value": 3}}],
    }
    [reading] = parse(body).readings
    assert (reading.entity_type, reading.value) == ("A,B", 3)
