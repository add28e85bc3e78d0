"""What every notification format's parser shares: the collector of readings and rejections of one
notification, the entities it checked, and the choice of each reading's observation time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ngsi.errors import NotificationError
from ngsi.model import ParsedNotification, Reading, Rejected
from ngsi.schemas import MAX_ID, MAX_UNIT, kind, parse_time, short, text_problem, to_number, value_problem

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the default plausible range of observation times
# The latest time whose window arithmetic cannot overflow (a window of up to a year after it still fits).
LATEST = datetime(9998, 1, 1, tzinfo=UTC)
# Entity-level attributes that carry the observation time: used for time (when they hold a date-time),
# never stored as readings.
TIME_NAMES = ("TimeInstant", "observedAt", "dateObserved", "timestamp", "dateModified")
# Tried after the attribute's TimeInstant metadata and the entity's TimeInstant, in this order.
_LATER_TIMES = ("observedAt", "dateObserved", "timestamp", "dateModified")
NOTHING_TO_STORE = "the entity carries no attribute to store (only its id, type and time attributes)"


@dataclass(frozen=True)
class ParseOptions:
    """What parsing needs besides the body: receipt time, configured time attribute, plausible times."""

    received_at: datetime
    time_attribute: str = ""
    earliest: datetime = EARLIEST
    latest: datetime = LATEST
    service_paths: tuple[str, ...] = ()


@dataclass
class Entity:
    where: str
    id: str
    type: str
    times: dict[str, Any]  # entity-level time attributes by name, plain values
    attrs: dict[str, Any]  # plain values of the other attributes (ParsedNotification.entity_attrs)
    service_path: str | None = None  # set when Fiware-ServicePath lists one path per entity


class Collector:
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

    def entity(self, where: str, obj: Any, times: Mapping[str, Any] | None = None) -> Entity | None:
        """The checked entity `obj`, or None after rejecting it (id and type: non-empty strings)."""
        problem = _entity_problem(obj, self.text_problem)
        if problem:
            self.reject_entity(where, problem)
            return None
        self.entities += 1
        if times is None:
            times = {n: plain(obj[n]) for n in self.time_names if n in obj}
        attrs = self.result.entity_attrs.setdefault(obj["id"], {})
        # A time-named attribute that holds no date-time is no time source: it is an ordinary attribute.
        dated = {n: t for n, t in times.items() if not isinstance(parse_time(t), str)}
        path = self.path_of(self.entities - 1)
        return Entity(where, obj["id"], obj["type"], dated, attrs, path)

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

    def settle(self, entity: Entity, readings_before: int, rejected_before: int) -> None:
        """Note an entity that gave neither a reading nor a rejection (only time attributes, or none)."""
        if len(self.result.readings) == readings_before and len(self.result.rejected) == rejected_before:
            self.result.rejected.append(Rejected(entity.where, entity.id, NOTHING_TO_STORE))

    def marks(self) -> tuple[int, int]:
        """What `settle` compares against: the readings and rejections so far."""
        return len(self.result.readings), len(self.result.rejected)

    def reject(self, where: str, entity: Entity, reason: str) -> None:
        """Record one attribute of `entity` that cannot be stored."""
        self.result.rejected.append(Rejected(where, entity.id, reason))

    def name_ok(self, entity: Entity, name: Any, where: str) -> bool:
        """True when `name` is a usable attribute name; otherwise the attribute is rejected."""
        problem = self.text_problem(name, "attribute name")
        if problem:
            self.reject(f"{where}.{short(name) if isinstance(name, str) else '?'}", entity, problem)
        return problem is None

    def add(self, entity: Entity, where: str, name: str, attr_type: Any, value: Any, unit: Any,
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

    def _observed(self, entity: Entity, meta: Mapping[str, Any]) -> tuple[datetime, str]:
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


def plain(attr: Any) -> Any:
    """The value of a normalized / NGSI-LD attribute; a keyValues value is already plain."""
    return attr.get("value") if isinstance(attr, dict) and "value" in attr else attr
