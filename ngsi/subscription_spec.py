"""What the connector's Orion subscription should look like, and how an existing one differs (pure).

One subscription per entity type and tenant, recognised by its description. NGSIv2 bodies follow
reference/orion.md; NGSI-LD bodies use `watchedAttributes` and `notification.endpoint.uri`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.settings import Settings
from ngsi.orion import LD_CORE_CONTEXT

DESCRIPTION_PREFIX = "smartmeter-connector: "
V2_FORMATS = ("normalized", "keyValues", "simplifiedNormalized", "simplifiedKeyValues", "legacy")
LD_FORMATS = ("normalized", "keyValues", "concise")
ACTIVE = "active"


class SubscriptionSpecError(ValueError):
    """The orion settings cannot make a valid subscription; the message names the setting."""


@dataclass(frozen=True)
class Desired:
    """The subscription body the connector wants for one entity type, and the fields it compares."""

    entity_type: str
    body: dict[str, Any]
    ld: bool

    @property
    def description(self) -> str:
        return str(self.body["description"])


def description(entity_type: str) -> str:
    """The description that marks a subscription as this connector's for `entity_type`."""
    return DESCRIPTION_PREFIX + entity_type


def desired(settings: Settings, entity_type: str) -> Desired:
    """The subscription this connector wants for `entity_type`, in NGSIv2 or NGSI-LD form."""
    o = settings.orion
    if not o.notify_url:
        raise SubscriptionSpecError("orion.notify_url: must be set to the URL Orion reaches /notify at")
    formats = LD_FORMATS if o.ld else V2_FORMATS
    if o.attrs_format not in formats:
        raise SubscriptionSpecError(f"orion.attrs_format: must be one of {', '.join(formats)}")
    watched, notified = _attrs(settings, entity_type)
    body = (
        _ld_body(settings, entity_type, watched, notified)
        if o.ld
        else _v2_body(settings, entity_type, watched, notified)
    )
    return Desired(entity_type, body, o.ld)


def _attrs(settings: Settings, entity_type: str) -> tuple[list[str], list[str]]:
    """(attributes whose change triggers a notification, attributes sent); empty lists mean all."""
    et = settings.entity_types.get(entity_type)
    wanted = list(et.subscribe_attrs) if et else []
    if et is None or not wanted:
        return [], []
    watched = [a for a in wanted if a != "TimeInstant"]
    # The meter's identity facts must reach the connector even when only measurements are configured.
    extra = [a for a in (et.serial_number_attr, et.manufacturer_attr) if a and a not in wanted]
    return watched, wanted + extra


def _v2_body(settings: Settings, entity_type: str, watched: list[str], notified: list[str]) -> dict[str, Any]:
    o = settings.orion
    body: dict[str, Any] = {
        "description": description(entity_type),
        "subject": {"entities": [{"idPattern": ".*", "type": entity_type}], "condition": {"attrs": watched}},
        "notification": {
            "http": {"url": o.notify_url, "timeout": o.timeout_ms},
            "attrs": notified,
            "attrsFormat": o.attrs_format,
            "metadata": ["TimeInstant"],
            "onlyChangedAttrs": False,
            "maxFailsLimit": o.max_fails_limit,
        },
        "status": ACTIVE,
        "throttling": 0,
    }
    if o.expires:
        body["expires"] = o.expires
    return body


def _ld_body(settings: Settings, entity_type: str, watched: list[str], notified: list[str]) -> dict[str, Any]:
    o = settings.orion
    notification: dict[str, Any] = {
        "format": o.attrs_format,
        "endpoint": {"uri": o.notify_url, "accept": "application/json"},
    }
    if notified:
        notification["attributes"] = [a for a in notified if a != "TimeInstant"]
    body: dict[str, Any] = {
        "type": "Subscription",
        "description": description(entity_type),
        "entities": [{"type": entity_type}],
        "notification": notification,
        "isActive": True,
        "@context": LD_CORE_CONTEXT,
    }
    if watched:
        body["watchedAttributes"] = watched
    if o.expires:
        body["expiresAt"] = o.expires
    return body


def url_of(sub: dict[str, Any], ld: bool) -> str:
    """The notification URL of a subscription as Orion lists it."""
    n = sub.get("notification") or {}
    if ld:
        return str((n.get("endpoint") or {}).get("uri", ""))
    return str((n.get("http") or n.get("httpCustom") or {}).get("url", ""))


def status_of(sub: dict[str, Any], ld: bool, now: datetime) -> str:
    """Orion's status of a subscription, `expired` also when its expiry time has passed."""
    status = str(sub.get("status") or ACTIVE)
    if ld and sub.get("isActive") is False and status == ACTIVE:
        status = "paused"
    expires = parse_time(sub.get("expiresAt" if ld else "expires"))
    if expires is not None and expires <= now:
        return "expired"
    return status


def check_expiry(settings: Settings, now: datetime) -> None:
    """Refuse an `orion.expires` already in the past: Orion would expire the subscription at once."""
    when = parse_time(settings.orion.expires)
    if settings.orion.expires and when is None:
        raise SubscriptionSpecError(f"orion.expires: not an ISO 8601 time: {settings.orion.expires!r}")
    if when is not None and when <= now:
        raise SubscriptionSpecError(f"orion.expires: {settings.orion.expires} is in the past")


def differences(existing: dict[str, Any], want: Desired) -> list[str]:
    """Names of the top-level fields whose value in Orion differs from what the connector wants."""
    fields = _LD_FIELDS if want.ld else _V2_FIELDS
    # A subscription wanted without expiry keeps whatever expiry Orion has (a PATCH cannot clear one).
    compared = {n: f for n, f in fields.items() if n not in _EXPIRY or n in want.body}
    return [name for name, norm in compared.items() if norm(existing) != norm(want.body)]


def patch_body(want: Desired, changed: list[str], reactivate: bool) -> dict[str, Any]:
    """The PATCH that makes Orion's copy equal to `want` for the `changed` fields (and re-activates)."""
    body = {name: want.body[name] for name in changed if name in want.body}
    expiry_field = "expiresAt" if want.ld else "expires"
    if reactivate:
        if want.ld:
            body["isActive"] = True
        else:
            body["status"] = ACTIVE
        if expiry_field in want.body:
            body[expiry_field] = want.body[expiry_field]
    if want.ld:
        body["@context"] = LD_CORE_CONTEXT
    return body


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as timezone-aware UTC, or None when absent or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _get(doc: dict[str, Any], *path: str, default: Any = None) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


_EXPIRY = ("expires", "expiresAt")
# Each compared field, normalised the way Orion echoes it back (absent lists are [], absent numbers 0,
# expiry times as instants), so that an unchanged subscription compares equal and ensure() is idempotent.
_V2_FIELDS = {
    "subject": lambda d: (
        _get(d, "subject", "entities", default=[]),
        _get(d, "subject", "condition", "attrs", default=[]),
    ),
    "notification": lambda d: (
        _get(d, "notification", "http", "url", default=""),
        _get(d, "notification", "http", "timeout", default=0),
        _get(d, "notification", "attrs", default=[]),
        _get(d, "notification", "attrsFormat", default="normalized"),
        _get(d, "notification", "metadata", default=[]),
        bool(_get(d, "notification", "onlyChangedAttrs", default=False)),
        _get(d, "notification", "maxFailsLimit", default=0),
    ),
    "expires": lambda d: parse_time(d.get("expires")),
    "throttling": lambda d: d.get("throttling") or 0,
}
_LD_FIELDS = {
    "entities": lambda d: [e.get("type") for e in d.get("entities") or []],
    "watchedAttributes": lambda d: d.get("watchedAttributes") or [],
    "notification": lambda d: (
        _get(d, "notification", "endpoint", "uri", default=""),
        _get(d, "notification", "endpoint", "accept", default="application/json"),
        _get(d, "notification", "attributes", default=[]),
        _get(d, "notification", "format", default="normalized"),
    ),
    "expiresAt": lambda d: parse_time(d.get("expiresAt")),
}
