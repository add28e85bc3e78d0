"""Property-based: no JSON body or header set makes the parser fail except with NotificationError."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi.errors import NotificationError
from ngsi.headers import resolve_headers
from ngsi.model import TIME_SOURCES, ParsedNotification
from ngsi.schemas import text_problem
from tests.ngsi.helpers import parse, payload

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Keys the parser looks at, so random objects reach deep code paths, plus arbitrary text.
VOCABULARY = [
    "id", "type", "data", "value", "metadata", "metadatas", "TimeInstant", "observedAt", "dateObserved",
    "timestamp", "dateModified", "unitCode", "object", "contextResponses", "contextElement", "attributes",
    "name", "statusCode", "isPattern", "subscriptionId", "notifiedAt", "Notification", "measuredAt",
]  # fmt: skip
TIMES = ["2019-03-18T16:13:45.275Z", "2024-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00", "9999-12-31"]
keys = st.sampled_from(VOCABULARY) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from([*VOCABULARY, *TIMES, "-84.891", "1e5000", "NaN", "true", "\ud800", "a\x00"])
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)
formats = st.sampled_from([None, "normalized", "keyValues", "values", "simplifiedNormalized",
                           "simplifiedKeyValues", "custom", "legacy"])  # fmt: skip


def check(result: ParsedNotification) -> None:
    """Invariants of every successful parse: storable identifiers, aware UTC times, exact numbers."""
    for reading in result.readings:
        assert text_problem(reading.entity_id, "id") is None
        assert text_problem(reading.attr, "attr") is None
        assert reading.observed_at.utcoffset() == timedelta(0)
        assert reading.time_source in TIME_SOURCES
        assert reading.number is None or (isinstance(reading.number, Decimal) and reading.number.is_finite())
        assert reading.number is None or len(str(reading.number)) <= 64
        assert reading.unit is None or len(reading.unit) <= 64
        json.dumps(reading.value, ensure_ascii=False).encode("utf-8")  # the store's encoding succeeds


def parse_or_refuse(body, attrs_format, time_attribute="") -> None:
    """Parse; a NotificationError is an allowed outcome, anything else fails the test."""
    try:
        result = parse(body, attrs_format, time_attribute)
    except NotificationError as err:
        assert err.message
        return
    check(result)


@FUZZ
@given(body=json_values, attrs_format=formats)
def test_arbitrary_json_raises_only_notification_error(body, attrs_format):
    """Any decoded JSON body either parses or raises NotificationError with a message."""
    parse_or_refuse(body, attrs_format)


def _wrapped(entity):
    return st.sampled_from(["v2", "ld", "legacy"]).map(
        lambda kind: (
            {"data": [entity]}
            if kind == "v2"
            else {"type": "Notification", "data": [entity]}
            if kind == "ld"
            else {"contextResponses": [{"contextElement": entity}]}
        )
    )


entities = st.fixed_dictionaries(
    {"id": st.sampled_from(["m1", "urn:ngsi-ld:SMX:1"]) | scalars, "type": st.just("SMX") | scalars},
    optional={
        "P": json_values,
        "TimeInstant": json_values,
        "measuredAt": json_values,
        "attributes": json_values,
    },
)


@FUZZ
@given(
    body=entities.flatmap(_wrapped), attrs_format=formats, time_attribute=st.sampled_from(["", "measuredAt"])
)
def test_arbitrary_entities_in_valid_envelopes_raise_only_notification_error(
    body, attrs_format, time_attribute
):
    """Random entities inside each valid envelope never make the parser fail another way."""
    parse_or_refuse(body, attrs_format, time_attribute)


@FUZZ
@given(attr=json_values, name=st.sampled_from(["P", "TimeInstant", "unitCode"]) | st.text(max_size=5))
def test_arbitrary_attribute_in_reference_payloads_raises_only_notification_error(attr, name):
    """Replacing an attribute of the verbatim normalized and NGSI-LD payloads with any JSON stays safe."""
    for file, attrs_format in (("normalized.json", "normalized"), ("ld.json", None)):
        body = payload(file)
        body["data"][0][name] = attr
        parse_or_refuse(body, attrs_format)


@FUZZ
@given(raw=st.dictionaries(st.sampled_from(["Fiware-Service", "fiware-servicepath", "NGSILD-Tenant",
                                            "Fiware-Correlator", "Ngsiv2-AttrsFormat"]) | st.text(max_size=8),
                           st.text(max_size=60), max_size=5))  # fmt: skip
def test_arbitrary_headers_raise_only_notification_error(raw):
    """Any header set resolves or raises NotificationError; a resolved tenant is always storable."""
    try:
        resolved = resolve_headers(raw)
    except NotificationError:
        return
    assert len(resolved.tenant) <= 50 and resolved.service_path.startswith("/")
    if len({k.lower() for k in raw}) == len(raw):  # names differing only by case: either may win
        assert resolve_headers({k.upper(): v for k, v in raw.items()}) == resolved


times = st.sampled_from(TIMES) | scalars
metadata_names = st.sampled_from(VOCABULARY) | json_values
near_valid_v2 = st.fixed_dictionaries(
    {"type": st.just("Number") | scalars, "value": scalars},
    optional={"metadata": st.dictionaries(keys, st.fixed_dictionaries({"value": times}))},
)
near_valid_legacy = st.fixed_dictionaries(
    {"name": st.just("P") | json_values, "value": scalars},
    optional={
        "type": st.just("W") | scalars,
        "metadatas": st.lists(st.fixed_dictionaries({"name": metadata_names, "value": times})),
    },
)


@FUZZ
@given(attr=near_valid_v2, legacy_attr=near_valid_legacy, entity_time=times)
def test_near_valid_attributes_raise_only_notification_error(attr, legacy_attr, entity_time):
    """Well-formed attributes with random values, types, units and times never fail another way."""
    v2 = {"data": [{"id": "m1", "type": "SMX", "P": attr, "TimeInstant": {"value": entity_time}}]}
    legacy = {
        "contextResponses": [{"contextElement": {"id": "m1", "type": "SMX", "attributes": [legacy_attr]}}]
    }
    parse_or_refuse(v2, "normalized")
    parse_or_refuse(legacy, None)
