"""Orion notification bodies in every format -> Readings. Pure: no I/O, no clock, no settings.

Formats (reference/orion.md): NGSIv2 normalized / keyValues (entities in `data`), simplifiedNormalized /
simplifiedKeyValues (the bare entity), legacy NGSIv1 (`contextResponses`, seed 003 Figure 16) and the
NGSI-LD Notification. `values` carries no entity id and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ngsi.errors import NotificationError
from ngsi.model import Headers, ParsedNotification, Reading, Rejected
from ngsi.schemas import (
    LD_NOTIFICATION,
    LEGACY_NOTIFICATION,
    MAX_ID,
    MAX_UNIT,
    V2_NOTIFICATION,
    json_kind,
    kind,
    load_envelope,
    parse_time,
    short,
    text_problem,
    to_number,
    value_problem,
)

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the default plausible range of observation times
# The latest time whose window arithmetic cannot overflow (a window of up to a year after it still fits).
LATEST = datetime(9998, 1, 1, tzinfo=UTC)

# Entity-level attributes that only carry the observation time: used for time, never stored as readings.
TIME_NAMES = ("TimeInstant", "observedAt", "dateObserved", "timestamp", "dateModified")
# Tried after the attribute's TimeInstant metadata and the entity's TimeInstant, in this order.
_LATER_TIMES = ("observedAt", "dateObserved", "timestamp", "dateModified")
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
NOTHING_TO_STORE = "the entity carries no attribute to store (only its id, type and time attributes)"
DELETED = "the entity was deleted (deletedAt): nothing to store"
_VALUES_ERROR = "attrsFormat 'values' carries no entity id; subscribe with attrsFormat 'normalized'"


@dataclass
class _Entity:
    where: str
    id: str
    type: str
    times: dict[str, Any]  # entity-level time attributes by name, plain values
    attrs: dict[str, Any]  # plain values of the other attributes (ParsedNotification.entity_attrs)
    service_path: str | None = None  # set when Fiware-ServicePath lists one path per entity


class _Collector:
    """Accumulates readings and rejections of one notification."""

    def __init__(self, fmt: str, subscription_id: str | None, opts: ParseOptions) -> None:
        self.result = ParsedNotification(format=fmt, subscription_id=subscription_id)
        self.received_at = opts.received_at
        self.time_attr = time_attr = opts.time_attribute
        self.earliest, self.latest = opts.earliest, opts.latest
        self.paths = opts.service_paths
        self.time_names = frozenset(TIME_NAMES) | ({time_attr} if time_attr else set())
        self.entities = 0
        self.bad_entities: list[Rejected] = []
        # Names, types and units already found valid in this notification: 100 entities repeat the same
        # few, and the checks ran five times per reading.
        self.good_text: set[str] = set()

    def text_problem(self, value: Any, what: str, max_len: int = MAX_ID) -> str | None:
        """`text_problem`, remembering texts found valid (only short ones, so valid for every limit)."""
        if value.__class__ is str and value in self.good_text:
            return None
        problem = text_problem(value, what, max_len)
        if problem is None and len(value) <= MAX_UNIT:
            self.good_text.add(value)
        return problem

    def entity(self, where: str, obj: Any, times: Mapping[str, Any] | None = None) -> _Entity | None:
        """The checked entity `obj`, or None after rejecting it (id and type: non-empty strings)."""
        problem = _entity_problem(obj, self.text_problem)
        if problem:
            self.reject_entity(where, problem)
            return None
        self.entities += 1
        if times is None:
            times = {n: _plain(obj[n]) for n in self.time_names if n in obj}
        attrs = self.result.entity_attrs.setdefault(obj["id"], {})
        # A time-named attribute that holds no date-time is no time source: it is an ordinary attribute.
        dated = {n: t for n, t in times.items() if not isinstance(parse_time(t), str)}
        path = self.path_of(self.entities - 1)
        return _Entity(where, obj["id"], obj["type"], dated, attrs, path)

    def path_of(self, index: int) -> str | None:
        """The service path of the `index`-th entity when the header listed one per entity, else None."""
        if len(self.paths) < 2:
            return None
        return self.paths[index] if index < len(self.paths) else self.paths[-1]

    def reject_entity(self, where: str, reason: str) -> None:
        """Record an entity that cannot be stored at all."""
        self.entities += 1
        self.bad_entities.append(Rejected(where, None, reason))
        self.result.rejected.append(self.bad_entities[-1])

    def settle(self, entity: _Entity, readings_before: int, rejected_before: int) -> None:
        """Note an entity that gave neither a reading nor a rejection (only time attributes, or none)."""
        if len(self.result.readings) == readings_before and len(self.result.rejected) == rejected_before:
            self.result.rejected.append(Rejected(entity.where, entity.id, NOTHING_TO_STORE))

    def marks(self) -> tuple[int, int]:
        """What `settle` compares against: the readings and rejections so far."""
        return len(self.result.readings), len(self.result.rejected)

    def reject(self, where: str, entity: _Entity, reason: str) -> None:
        """Record one attribute of `entity` that cannot be stored."""
        self.result.rejected.append(Rejected(where, entity.id, reason))

    def name_ok(self, entity: _Entity, name: Any, where: str) -> bool:
        """True when `name` is a usable attribute name; otherwise the attribute is rejected."""
        problem = self.text_problem(name, "attribute name")
        if problem:
            self.reject(f"{where}.{short(name) if isinstance(name, str) else '?'}", entity, problem)
        return problem is None

    def add(self, entity: _Entity, where: str, name: str, attr_type: Any, value: Any, unit: Any,
            meta: Mapping[str, Any]) -> None:  # fmt: skip
        """One attribute value -> a Reading, or a Rejected saying why it cannot be stored."""
        number = to_number(value)
        problem = self.type_unit_problem(attr_type, unit) or value_problem(value)
        if problem or isinstance(number, str):
            self.reject(where, entity, problem or str(number))
            return
        observed = self._observed(entity, meta)
        at, source = observed
        if not self.earliest <= at <= self.latest:
            self.reject(where, entity, _range_reason(at, self.earliest, self.latest))
            return
        entity.attrs[name] = value
        self.result.readings.append(
            Reading(entity.id, entity.type, name, attr_type or None, value, number, at, source, unit,
                    entity.service_path)
        )  # fmt: skip

    def _observed(self, entity: _Entity, meta: Mapping[str, Any]) -> tuple[datetime, str]:
        """(observation time, time source): the first source holding a date-time wins; a source that holds
        anything else (a number, a non-date text) is passed over for the next one."""
        times = entity.times  # only the entity's time attributes that hold date-times
        if self.time_attr and self.time_attr in times:
            return _as_time(times[self.time_attr]), "configured"
        if "TimeInstant" in meta and isinstance(at := parse_time(meta["TimeInstant"]), datetime):
            return at, "metadata"
        if "TimeInstant" in times:
            return _as_time(times["TimeInstant"]), "entity"
        for name in _LATER_TIMES:
            if name in meta and isinstance(at := parse_time(meta[name]), datetime):
                return at, name
            if name in times:
                return _as_time(times[name]), name
        return self.received_at, "receipt"

    def type_unit_problem(self, attr_type: Any, unit: Any) -> str | None:
        # NGSIv1 sends "type": "" for an untyped attribute: no type, like an absent one.
        if attr_type is not None and attr_type != "" and (problem := self.text_problem(attr_type, "'type'")):
            return problem
        return None if unit is None else self.text_problem(unit, "unitCode", MAX_UNIT)

    def finish(self, container: str) -> ParsedNotification:
        """The result; NotificationError when the body held no entity or only rejected ones."""
        if not self.entities:
            raise NotificationError(f"{container}: contains no entity")
        if len(self.bad_entities) == self.entities:
            first = self.bad_entities[0]
            more = len(self.bad_entities) - 1
            tail = f" (and {more} more rejected entities)" if more else ""
            raise NotificationError(f"{first.where}: {first.reason}{tail}")
        return self.result


def _as_time(raw: Any) -> datetime:
    parsed = parse_time(raw)
    assert isinstance(parsed, datetime)  # only date-times are kept as the entity's times
    return parsed


def _range_reason(at: datetime, earliest: datetime, latest: datetime) -> str:
    side = f"before {earliest.isoformat()}" if at < earliest else f"after {latest.isoformat()}"
    return (
        f"observation time {at.isoformat()} is {side}: not a plausible meter time "
        "(ingest.earliest_observation, ingest.max_future)"
    )


def _entity_problem(obj: Any, check: Callable[[Any, str], str | None]) -> str | None:
    if not isinstance(obj, dict):
        return f"must be an object (an entity), got {kind(obj)}"
    if "id" not in obj:
        return "missing 'id'"
    if problem := text_problem(obj["id"], "'id'"):  # ids differ entity to entity: not remembered
        return problem
    if "type" not in obj:
        return "missing 'type'"
    return check(obj["type"], "'type'")


def _plain(attr: Any) -> Any:
    """The value of a normalized / NGSI-LD attribute; a keyValues value is already plain."""
    return attr.get("value") if isinstance(attr, dict) and "value" in attr else attr


def _looks_normalized(entity: Any) -> bool:
    """Without a header: normalized when some attribute is an object with 'type' and 'value'."""
    if not isinstance(entity, dict):
        return False
    return any(isinstance(v, dict) and "value" in v and "type" in v for v in entity.values())


# --- NGSIv2 -------------------------------------------------------------------------------------------


def _v2_normalized(col: _Collector, entity: _Entity, obj: dict[str, Any]) -> None:
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
        meta = {k: _plain(m) for k, m in metadata.items() if k in _META_NAMES} if metadata else _NO_META
        unit = meta.get("unitCode")
        col.add(entity, where, name, attr.get("type"), attr["value"], unit, meta)


def _v2_key_values(col: _Collector, entity: _Entity, obj: dict[str, Any]) -> None:
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
    col = _Collector("normalized" if any(shapes) else "keyValues", envelope["subscriptionId"], opts)
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
    col = _Collector(fmt, None, opts)
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
    col = _Collector("legacy", envelope["subscriptionId"], opts)
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


def _legacy_element(col: _Collector, where: str, element: Any) -> None:
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


def _legacy_attribute(col: _Collector, entity: _Entity, j: int, attr: Any) -> None:
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
    col = _Collector("ld", envelope["subscriptionId"], opts)
    for i, obj in enumerate(envelope["data"]):
        entity = col.entity(f"data[{i}]", obj)
        if entity and "deletedAt" in obj:  # Orion-LD's deletion notification: the entity is gone
            col.result.rejected.append(Rejected(entity.where, entity.id, DELETED))
        elif entity:
            marks = col.marks()
            _ld_entity(col, entity, obj)
            col.settle(entity, *marks)
    return col.finish("data")


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


def _ld_entity(col: _Collector, entity: _Entity, obj: dict[str, Any]) -> None:
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


def _ld_attribute(col: _Collector, entity: _Entity, where: str, name: str, attr: Any) -> None:
    if not _is_ld_attribute(attr):
        col.add(entity, where, name, None, attr, None, _NO_META)  # concise form: the value itself
        return
    value = next(attr[key] for key in _LD_VALUE_KEYS if key in attr)
    meta = {n: _plain(attr[n]) for n in TIME_NAMES if n in attr}
    col.add(entity, where, name, attr.get("type"), value, attr.get("unitCode"), meta)


# --- entry point --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParseOptions:
    """What parsing needs besides the body: receipt time, configured time attribute, plausible times."""

    received_at: datetime
    time_attribute: str = ""
    earliest: datetime = EARLIEST
    latest: datetime = LATEST
    service_paths: tuple[str, ...] = ()


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
        if headers.attrs_format == "values":
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
