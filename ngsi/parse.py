"""Orion notification bodies in every format -> Readings. Pure: no I/O, no clock, no settings.

Formats (reference/orion.md): NGSIv2 normalized / keyValues (entities in `data`), simplifiedNormalized /
simplifiedKeyValues (the bare entity), legacy NGSIv1 (`contextResponses`, seed 003 Figure 16) and the
NGSI-LD Notification. `values` carries no entity id and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ngsi.collector import (
    EARLIEST,
    LATEST,
    TIME_NAMES,
    Collector,
    Entity,
    ParseOptions,
    plain,
)
from ngsi.errors import NotificationError
from ngsi.model import Headers, ParsedNotification, Rejected
from ngsi.schemas import (
    LD_NOTIFICATION,
    LEGACY_NOTIFICATION,
    MAX_UNIT,
    V2_NOTIFICATION,
    json_kind,
    kind,
    load_envelope,
)

_META_NAMES = frozenset((*TIME_NAMES, "unitCode"))
_NO_META: Mapping[str, Any] = {}
# NGSI-LD entity members that are not attributes.
_LD_MEMBERS = frozenset(("id", "type", "@context", "scope", "createdAt", "modifiedAt", "deletedAt"))
# The member that holds the value, per NGSI-LD attribute kind (Property, Relationship, LanguageProperty...).
_LD_VALUE_KEYS = ("value", "object", "languageMap", "vocab", "valueList", "objectList", "json")
# NGSIv1 attribute types that name a data type, not a unit ("W" is a unit, "Number" is not).
_GENERIC_TYPES = frozenset(
    t.lower()
    for t in (
        "Number", "Text", "String", "Float", "Double", "Integer", "Int", "Boolean", "Bool", "DateTime",
        "ISO8601", "StructuredValue", "Property", "Relationship", "geo:json", "geo:point", "Object",
        "Array", "None", "Null",
    )
)  # fmt: skip
DELETED = "the entity was deleted (deletedAt): nothing to store"
_VALUES_ERROR = "attrsFormat 'values' carries no entity id; subscribe with attrsFormat 'normalized'"


def _looks_normalized(entity: Any) -> bool:
    """Without a header: normalized when some attribute is an object with 'type' and 'value'."""
    if not isinstance(entity, dict):
        return False
    return any(isinstance(v, dict) and "value" in v and "type" in v for v in entity.values())


# --- NGSIv2 -------------------------------------------------------------------------------------------


def _v2_normalized(col: Collector, entity: Entity, obj: dict[str, Any]) -> None:
    for name, attr in obj.items():
        if name == "id" or name == "type" or name in entity.times:
            continue
        where = f"{entity.where}.{name}"
        if not col.name_ok(entity, name, entity.where):
            continue
        if not isinstance(attr, dict):
            col.reject(where, entity, f"must be an object with 'type' and 'value', got {kind(attr)}")
            continue
        if "value" not in attr:
            col.reject(where, entity, "missing 'value'")
            continue
        metadata = attr.get("metadata")
        metadata = _NO_META if metadata is None else metadata
        if not isinstance(metadata, dict):
            col.reject(where, entity, f"'metadata' must be an object, got {kind(metadata)}")
            continue
        meta = {k: plain(m) for k, m in metadata.items() if k in _META_NAMES} if metadata else _NO_META
        unit = meta.get("unitCode")
        col.add(entity, where, name, attr.get("type"), attr["value"], unit, meta)


def _v2_key_values(col: Collector, entity: Entity, obj: dict[str, Any]) -> None:
    for name, value in obj.items():
        if name == "id" or name == "type" or name in entity.times:
            continue
        if col.name_ok(entity, name, entity.where):
            col.add(entity, f"{entity.where}.{name}", name, None, value, None, _NO_META)


def _parse_v2(body: dict[str, Any], headers: Headers, opts: ParseOptions) -> ParsedNotification:
    envelope = load_envelope(V2_NOTIFICATION, body)
    data = envelope["data"]
    if headers.attrs_format == "values" or (data and all(isinstance(e, list) for e in data)):
        raise NotificationError(f"data[0]: {_VALUES_ERROR}")
    # Without a header each entity is judged by its own shape: an attribute-less entity must not decide
    # how the others are read (found by the fuzzer, tests/reliability/test_findings.py).
    shapes = [_shape_is_normalized(headers.attrs_format, obj) for obj in data]
    col = Collector("normalized" if any(shapes) else "keyValues", envelope["subscriptionId"], opts)
    for i, (obj, normalized) in enumerate(zip(data, shapes, strict=True)):
        entity = col.entity(f"data[{i}]", obj)
        if entity:
            marks = col.marks()
            (_v2_normalized if normalized else _v2_key_values)(col, entity, obj)
            col.settle(entity, *marks)
    return col.finish("data")


def _parse_simplified(body: dict[str, Any], headers: Headers, opts: ParseOptions) -> ParsedNotification:
    normalized = _shape_is_normalized(headers.attrs_format, body)
    fmt = "simplifiedNormalized" if normalized else "simplifiedKeyValues"
    col = Collector(fmt, None, opts)
    entity = col.entity("body", body)
    if entity:
        marks = col.marks()
        (_v2_normalized if normalized else _v2_key_values)(col, entity, body)
        col.settle(entity, *marks)
    return col.finish("body")


def _shape_is_normalized(attrs_format: str | None, sample: Any) -> bool:
    if attrs_format in ("normalized", "simplifiedNormalized"):
        return True
    if attrs_format in ("keyValues", "simplifiedKeyValues"):
        return False
    return _looks_normalized(sample)


# --- legacy NGSIv1 ------------------------------------------------------------------------------------


def _parse_legacy(body: dict[str, Any], opts: ParseOptions) -> ParsedNotification:
    envelope = load_envelope(LEGACY_NOTIFICATION, body)
    col = Collector("legacy", envelope["subscriptionId"], opts)
    for i, element in enumerate(envelope["contextResponses"]):
        where = f"contextResponses[{i}]"
        if isinstance(element, dict) and "contextElement" not in element and "statusCode" in element:
            continue  # a status-only element, as seed 003 Figure 16 shows: no entity in it
        element = element.get("contextElement", _MISSING) if isinstance(element, dict) else element
        if element is _MISSING:
            col.reject_entity(where, "missing 'contextElement'")
            continue
        _legacy_element(col, f"{where}.contextElement", element)
    return col.finish("contextResponses")


_MISSING: Any = object()


def _legacy_element(col: Collector, where: str, element: Any) -> None:
    attributes = element.get("attributes", []) if isinstance(element, dict) else []
    problem = None
    if isinstance(element, dict) and _is_true(element.get("isPattern")):
        problem = "isPattern is true: a pattern, not an entity"
    elif not isinstance(attributes, list):
        problem = f"'attributes' must be an array, got {kind(attributes)}"
    if problem:
        col.reject_entity(where, problem)
        return
    times = {
        a["name"]: a.get("value")
        for a in attributes
        if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"] in col.time_names
    }
    entity = col.entity(where, element, times)
    if entity:
        marks = col.marks()
        for j, attr in enumerate(attributes):
            _legacy_attribute(col, entity, j, attr)
        col.settle(entity, *marks)


def _is_true(flag: Any) -> bool:
    """NGSIv1 booleans arrive as strings ("true"/"false") or as JSON booleans."""
    return flag is True or (isinstance(flag, str) and flag.lower() == "true")


def _legacy_attribute(col: Collector, entity: Entity, j: int, attr: Any) -> None:
    if not isinstance(attr, dict):
        col.reject(f"{entity.where}.attributes[{j}]", entity, f"must be an object, got {kind(attr)}")
        return
    name = attr.get("name")
    if "name" not in attr:
        col.reject(f"{entity.where}.attributes[{j}]", entity, "missing 'name'")
        return
    if not col.name_ok(entity, name, entity.where) or name in entity.times:
        return
    where = f"{entity.where}.{name}"
    if "value" not in attr:
        col.reject(where, entity, "missing 'value'")
        return
    metadatas = attr.get("metadatas")
    metadatas = [] if metadatas is None else metadatas
    if not isinstance(metadatas, list):
        col.reject(where, entity, f"'metadatas' must be an array, got {kind(metadatas)}")
        return
    meta = {
        m["name"]: m.get("value")
        for m in metadatas
        if isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"] in _META_NAMES
    }
    attr_type = attr.get("type")
    unit = meta.get("unitCode")
    if unit is None and isinstance(attr_type, str) and attr_type and attr_type.lower() not in _GENERIC_TYPES:
        unit = attr_type if len(attr_type) <= MAX_UNIT else None  # NGSIv1 habit: the type is the unit
    col.add(entity, where, str(name), attr_type, attr["value"], unit, meta)


# --- NGSI-LD ------------------------------------------------------------------------------------------


def _parse_ld(body: dict[str, Any], opts: ParseOptions) -> ParsedNotification:
    data = body.get("data")
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        body = {**body, "data": _features(data)}
    envelope = load_envelope(LD_NOTIFICATION, body)
    col = Collector("ld", envelope["subscriptionId"], opts)
    for i, obj in enumerate(envelope["data"]):
        entity = col.entity(f"data[{i}]", _one_type(obj))
        if entity and "deletedAt" in obj:  # Orion-LD's deletion notification: the entity is gone
            col.result.rejected.append(Rejected(entity.where, entity.id, DELETED))
        elif entity:
            marks = col.marks()
            _ld_entity(col, entity, obj)
            col.settle(entity, *marks)
    return col.finish("data")


def _one_type(obj: Any) -> Any:
    """An NGSI-LD entity of several types (`"type": ["A", "B"]`) as one of type "A,B"."""
    types = obj.get("type") if isinstance(obj, dict) else None
    if isinstance(types, list) and types and all(isinstance(t, str) for t in types):
        return {**obj, "type": ",".join(types)}
    return obj


def _features(collection: dict[str, Any]) -> Any:
    """The entities of a GeoJSON FeatureCollection (Orion-LD's application/geo+json notifications): each
    Feature's id, and its properties (the entity's type among them); the geometry repeats `location`."""
    features = collection.get("features")
    if not isinstance(features, list):
        return features  # the envelope check names what is wrong
    return [_feature_entity(f) for f in features]


def _feature_entity(feature: Any) -> Any:
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        return feature  # rejected as an entity, with the reason
    return {**feature["properties"], "id": feature.get("id")}


def _ld_entity(col: Collector, entity: Entity, obj: dict[str, Any]) -> None:
    for name, attr in obj.items():
        if name in _LD_MEMBERS or name in entity.times or not col.name_ok(entity, name, entity.where):
            continue
        where = f"{entity.where}.{name}"
        if isinstance(attr, list) and attr and all(_is_ld_attribute(a) for a in attr):
            for k, instance in enumerate(attr):  # multi-attribute: one instance per datasetId
                _ld_attribute(col, entity, f"{where}[{k}]", name, instance)
        else:
            _ld_attribute(col, entity, where, name, attr)


def _is_ld_attribute(attr: Any) -> bool:
    return isinstance(attr, dict) and any(key in attr for key in _LD_VALUE_KEYS)


def _ld_attribute(col: Collector, entity: Entity, where: str, name: str, attr: Any) -> None:
    if not _is_ld_attribute(attr):
        col.add(entity, where, name, None, attr, None, _NO_META)  # concise form: the value itself
        return
    value = next(attr[key] for key in _LD_VALUE_KEYS if key in attr)
    meta = {n: plain(attr[n]) for n in TIME_NAMES if n in attr}
    col.add(entity, where, name, attr.get("type"), value, attr.get("unitCode"), meta)


# --- entry point --------------------------------------------------------------------------------------


def parse_notification(
    body: Any,
    headers: Headers,
    received_at: datetime,
    time_attribute: str = "",
    earliest: datetime = EARLIEST,
    latest: datetime = LATEST,
) -> ParsedNotification:
    """The readings and rejected parts of one decoded notification body.

    Format: a simplified* header means the bare entity; otherwise `contextResponses` is legacy, type
    "Notification" (or `notifiedAt`) NGSI-LD, `data` without `id` NGSIv2 and a bare `id` a simplified
    entity. Normalized vs keyValues follows the header, else the shape (some attribute is an object
    with 'type' and 'value'). Raises NotificationError
    (message naming the place, e.g. "data[0]: missing 'id'") when the body is not a notification, uses
    attrsFormat 'values', or all of its entities are invalid. Otherwise invalid entities and attributes
    are listed in `rejected` and every valid attribute value becomes one Reading, timed by the first of:
    `time_attribute`, TimeInstant metadata, the entity's TimeInstant, observedAt, dateObserved,
    timestamp, dateModified, else `received_at` (time_source "receipt"); a source that holds no
    date-time is passed over. A reading observed before `earliest` or after `latest` is rejected.
    When `headers.service_paths` lists several paths (legacy multi-entity notifications), the n-th entity's
    readings carry the n-th path. Raises NotificationError with `.format` set to the detected format.
    """
    if not isinstance(body, dict):
        raise NotificationError(f"body is {json_kind(body)}, expected a notification object")
    if not body:
        raise NotificationError("body is an empty object, expected a notification")
    opts = ParseOptions(received_at, time_attribute, earliest, latest, headers.service_paths)
    try:
        return _dispatch(body, headers, opts)
    except NotificationError as exc:
        exc.format = exc.format or detect_format(body, headers)
        raise


def detect_format(body: Any, headers: Headers) -> str:
    """The format a body is written in, as far as its shape tells ("unknown" when it is no notification)."""
    if not isinstance(body, dict) or not body:
        return "unknown"
    if headers.attrs_format in ("simplifiedNormalized", "simplifiedKeyValues"):
        return headers.attrs_format
    if "contextResponses" in body:
        return "legacy"
    if body.get("type") == "Notification" or "notifiedAt" in body:
        return "ld"
    if "data" in body and "id" not in body:
        data = body["data"]
        if headers.attrs_format == "values" or (
            isinstance(data, list) and data and all(isinstance(e, list) for e in data)
        ):
            return "values"
        return headers.attrs_format if headers.attrs_format in ("normalized", "keyValues") else "normalized"
    if "id" in body:
        return "simplifiedNormalized" if _looks_normalized(body) else "simplifiedKeyValues"
    return "unknown"


def _dispatch(body: dict[str, Any], headers: Headers, opts: ParseOptions) -> ParsedNotification:
    if headers.attrs_format in ("simplifiedNormalized", "simplifiedKeyValues"):
        return _parse_simplified(body, headers, opts)
    if "contextResponses" in body:
        return _parse_legacy(body, opts)
    if body.get("type") == "Notification" or "notifiedAt" in body:
        return _parse_ld(body, opts)
    if "data" in body and "id" not in body:
        return _parse_v2(body, headers, opts)
    if "id" in body:
        return _parse_simplified(body, headers, opts)
    raise NotificationError("body has none of 'data', 'contextResponses' or an entity 'id'")
