"""Validation of notification bodies: marshmallow schemas for the envelopes, lean checks for the rest.

The envelope of each format (the object around the entities) is validated by a marshmallow schema.
Entities and attributes are checked by the small functions below instead of a schema per attribute,
because a notification can carry hundreds of attributes and a schema load costs tens of microseconds;
their messages follow the same vocabulary so integrators see one consistent style.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from ngsi.errors import NotificationError

MAX_ID = 256  # entity id, entity type, attribute name and type: the store's column widths
MAX_UNIT = 64
MAX_NUMBER_TEXT = 64  # the store keeps numbers as decimal text of at most 64 characters
# |adjusted exponent| beyond this is no meter reading (a double reaches 1e308 and 5e-324); the bound keeps a
# window's sums, differences and trapezoid products well inside the canonical form's 1,000 digits
# (connector/canonical.py MAX_DECIMAL_TEXT), so no reading can make a window unclosable.
MAX_EXPONENT = 400
MAX_TIME_TEXT = 64

# Control characters break logs; unpaired surrogates cannot be encoded as UTF-8 by the store.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
# A JSON number written as a string. Decimal() alone would also take "NaN", "Infinity", "1_000", " 1 ".
_SURROGATES = re.compile("[\ud800-\udfff]")
NOT_FINITE = "not a number: NaN, Infinity or a number beyond a double's range (no JSON form to store)"
_SURROGATE_PROBLEM = "value contains an unpaired surrogate (not valid Unicode)"
_NUMERIC = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def kind(value: Any) -> str:
    """The JSON type of a decoded value, with its article, for messages ("an object", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # not produced by json.loads


def json_kind(value: Any) -> str:
    """Like kind(), naming JSON itself: "a JSON array", "a JSON string", "JSON null"."""
    text = kind(value)
    return "JSON null" if value is None else text.replace("a ", "a JSON ", 1).replace("an ", "a JSON ", 1)


def short(text: str, limit: int = 40) -> str:
    """`text` quoted and escaped for a message, cut after `limit` characters."""
    cut = text[:limit]
    return ascii(cut) + ("..." if len(text) > limit else "")


def text_problem(value: Any, what: str, max_len: int = MAX_ID) -> str | None:
    """None when `value` is a usable identifier, else the reason ("'id' must not be empty")."""
    if not isinstance(value, str):
        return f"{what} must be a string, got {kind(value)}"
    if not value:
        return f"{what} must not be empty"
    if len(value) > max_len:
        return f"{what} is longer than {max_len} characters"
    # isprintable() is False for every control character and surrogate (and for more): a quick pass first.
    if not value.isprintable() and _BAD_CHARS.search(value):
        return f"{what} contains a control character or an unpaired surrogate"
    return None


def parse_time(raw: Any) -> datetime | str:
    """The ISO 8601 date-time `raw` as timezone-aware UTC, or the reason it is not one (see _parse_time).

    An NGSI-LD typed value `{"@type": "DateTime", "@value": "..."}` is the date-time it holds.
    """
    if type(raw) is dict and raw.get("@type") == "DateTime" and "@value" in raw:
        raw = raw["@value"]
    if type(raw) is str:  # a notification repeats its times (one per entity, often the same): remember them
        return _parse_time_text(raw)
    return _parse_time(raw)


@functools.lru_cache(maxsize=4096)
def _parse_time_text(raw: str) -> datetime | str:
    return _parse_time(raw)


def _parse_time(raw: Any) -> datetime | str:
    """The ISO 8601 date-time `raw` as timezone-aware UTC, or the reason it is not one.

    Offsets and fractions of any length are accepted; a time without an offset is UTC, as Orion itself
    interprets DateTime values without a timezone.
    """
    if not isinstance(raw, str):
        return f"expected an ISO 8601 date-time string, got {kind(raw)}"
    if len(raw) > MAX_TIME_TEXT:
        return f"not an ISO 8601 date-time: {short(raw)}"
    try:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return f"not an ISO 8601 date-time: {short(raw)}"


def to_number(value: Any) -> Decimal | None | str:
    """`value` as an exact Decimal when it is a number or a numeric string, None when it is not one.

    Returns a reason (str) for numbers the store cannot keep (too long, absurd exponent) and for NaN,
    Infinity, -Infinity and numbers beyond a double's range (which the JSON decoder turns into infinity):
    they are not numbers and have no JSON form to store. Booleans are not numbers (None).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return NOT_FINITE
    try:
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))  # repr is the shortest text that round-trips the float
        elif isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT and _NUMERIC.fullmatch(value):
            number = Decimal(value)
        else:
            return None
    except (ValueError, ArithmeticError):
        return "number out of range"
    if not number.is_finite():
        return None  # float('nan') when the decoder accepted NaN literals
    if len(str(number)) > MAX_NUMBER_TEXT or abs(number.adjusted()) > MAX_EXPONENT:
        return "number out of range"
    return number


def value_problem(value: Any) -> str | None:
    """None when `value` is valid Unicode and holds only finite numbers all the way down, else the reason.

    json.loads lets unpaired surrogates ("\\ud800") through; such text cannot be encoded as UTF-8, so the
    store could not keep the value. Walks nested arrays and objects without recursion.
    """
    if isinstance(value, str):
        return _SURROGATE_PROBLEM if _SURROGATES.search(value) else None
    if not isinstance(value, list | dict):
        return None if not isinstance(value, float) or math.isfinite(value) else NOT_FINITE
    pending = [value]
    while pending:
        item = pending.pop()
        parts = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        for part in parts:
            if isinstance(part, str) and _SURROGATES.search(part):
                return _SURROGATE_PROBLEM
            if isinstance(part, float) and not math.isfinite(part):
                return NOT_FINITE
            if isinstance(part, list | dict):
                pending.append(part)
    return None


def _identifier(value: str) -> None:
    """marshmallow validator: a non-empty string without control characters."""
    problem = text_problem(value, "value")
    if problem:
        raise ValidationError(problem.removeprefix("value "))


class JsonArray(fields.Field):
    """A JSON array, passed through as the decoded list (its items are checked one by one later)."""

    default_error_messages = {"invalid": "must be an array"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return value


def _text(required: bool = False) -> fields.String:
    messages: dict[str, Any] = {"required": "missing", "invalid": "must be a string"}
    messages["null"] = messages["invalid"]
    return fields.String(required=required, load_default=None, validate=_identifier, error_messages=messages)


def _array() -> JsonArray:
    return JsonArray(required=True, error_messages={"required": "missing", "null": "must be an array"})


class V2NotificationSchema(Schema):
    """NGSIv2 notification: `{"subscriptionId": ..., "data": [entity, ...]}`."""

    class Meta:
        unknown = EXCLUDE  # brokers add fields over time; they must not break ingestion

    subscriptionId = _text()
    data = _array()


class LegacyNotificationSchema(Schema):
    """NGSIv1 notification: `{"subscriptionId", "originator", "contextResponses": [...]}`."""

    class Meta:
        unknown = EXCLUDE

    subscriptionId = _text()
    originator = fields.Raw(load_default=None)
    contextResponses = _array()


class LdNotificationSchema(Schema):
    """NGSI-LD Notification: `{"id", "type": "Notification", "subscriptionId", "notifiedAt", "data"}`."""

    class Meta:
        unknown = EXCLUDE

    id = _text()
    type = fields.String(
        load_default="Notification",
        validate=validate.Equal("Notification", error="must be 'Notification'"),
        error_messages={"invalid": "must be a string", "null": "must be a string"},
    )
    subscriptionId = _text()
    notifiedAt = fields.Raw(load_default=None)
    data = _array()


V2_NOTIFICATION = V2NotificationSchema()
LEGACY_NOTIFICATION = LegacyNotificationSchema()
LD_NOTIFICATION = LdNotificationSchema()


def load_envelope(schema: Schema, body: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope fields of `body` validated by `schema`; NotificationError naming each bad field."""
    fast = _plain_envelope(schema, body)
    if fast is not None:
        return fast
    try:
        return schema.load(body)  # type: ignore[return-value]
    except ValidationError as err:
        raise NotificationError(_flatten(err.messages)) from None


# The envelopes whose fields are only optional identifiers, raw values and one required array: for them a
# well-formed body is checked here directly (a schema load costs more than parsing a one-reading
# notification); anything else goes through marshmallow, which words the error.
_PLAIN_FIELDS: dict[type[Schema], tuple[tuple[str, ...], tuple[str, ...], str]] = {
    V2NotificationSchema: (("subscriptionId",), (), "data"),
    LegacyNotificationSchema: (("subscriptionId",), ("originator",), "contextResponses"),
}


def _plain_envelope(schema: Schema, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """What `schema.load(body)` returns when `body` is valid and the schema is a plain one, else None."""
    fields_ = _PLAIN_FIELDS.get(type(schema))
    if fields_ is None:
        return None
    texts, raws, array = fields_
    loaded: dict[str, Any] = {}
    for name in texts:
        value = body.get(name)
        if value is not None and (type(value) is not str or text_problem(value, "value")):
            return None
        loaded[name] = value
    for name in raws:
        loaded[name] = body.get(name)
    items = body.get(array)
    if type(items) is not list:
        return None
    loaded[array] = items
    return loaded


def _flatten(messages: Any) -> str:
    """marshmallow's {"data": ["missing"]} as "data: missing", fields in name order, joined by "; "."""
    if not isinstance(messages, dict):
        return "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
    parts = []
    for name in sorted(messages, key=str):
        value = messages[name]
        text = "; ".join(map(str, value)) if isinstance(value, list) else _flatten(value)
        parts.append(f"{name}: {text}")
    return "; ".join(parts)
