"""What the connector's Orion subscription should look like, and how an existing one differs (pure).

One subscription per entity type and tenant, recognised by its description. NGSIv2 bodies follow
reference/orion.md; NGSI-LD bodies use `watchedAttributes` and `notification.endpoint.uri`. With
`ingest.notify_secret` set, Orion must send the secret: NGSIv2 `notification.httpCustom.headers` (Orion 4's
API), NGSI-LD `notification.endpoint.receiverInfo`.

Re-activation follows the failure policies only: Orion v2 turns a subscription `inactive` once
`failsCounter` reaches `maxFailsLimit`, Orion-LD pauses one after 3 consecutive failed deliveries. A
subscription an operator set inactive (or paused) and one whose `expires` has passed are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ngsi.config import SubscriptionSettings
from ngsi.orion import LD_CORE_CONTEXT

DESCRIPTION_PREFIX = "smartmeter-connector: "
# Orion 4 removed `legacy` (settings refuse it); `values` carries no entity id: the connector cannot use it.
V2_FORMATS = ("normalized", "keyValues", "simplifiedNormalized", "simplifiedKeyValues")
LD_FORMATS = ("normalized", "keyValues", "concise")
ACTIVE = "active"
FAILED = "failed"  # Orion v2 lists an active subscription whose last notification failed as `failed`
LD_PAUSE_AFTER = 3  # Orion-LD pauses a subscription after this many consecutive failed deliveries


class SubscriptionSpecError(ValueError):
    """The orion settings cannot make a valid subscription; the message names the setting."""


@dataclass(frozen=True)
class Desired:
    """The subscription body the connector wants for one entity type, and the fields it compares."""

    entity_type: str
    body: dict[str, Any]
    ld: bool
    secret_header: str = ""  # the header carrying ingest.notify_secret; "" when no secret is configured
    secret: str = ""

    @property
    def description(self) -> str:
        return str(self.body["description"])


def description(entity_type: str) -> str:
    """The description that marks a subscription as this connector's for `entity_type`."""
    return DESCRIPTION_PREFIX + entity_type


def desired(settings: SubscriptionSettings, entity_type: str) -> Desired:
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
    secret = settings.notify_secret
    header = settings.notify_secret_header if secret else ""
    return Desired(entity_type, body, o.ld, header, secret)


def _attrs(settings: SubscriptionSettings, entity_type: str) -> tuple[list[str], list[str]]:
    """(attributes whose change triggers a notification, attributes sent); empty lists mean all."""
    et = settings.entity_types.get(entity_type)
    wanted = list(et.subscribe_attrs) if et else []
    if et is None or not wanted:
        return [], []
    watched = [a for a in wanted if a != "TimeInstant"]
    # The meter's identity facts must reach the connector even when only measurements are configured.
    extra = [a for a in (et.serial_number_attr, et.manufacturer_attr) if a and a not in wanted]
    return watched, wanted + extra


def _v2_body(
    settings: SubscriptionSettings, entity_type: str, watched: list[str], notified: list[str]
) -> dict[str, Any]:
    o = settings.orion
    endpoint: dict[str, Any] = {"url": o.notify_url, "timeout": o.timeout_ms}
    secret = settings.notify_secret
    if secret:  # Orion 4: custom headers only through httpCustom
        endpoint = {"url": o.notify_url, "headers": {settings.notify_secret_header: secret}}
        endpoint["timeout"] = o.timeout_ms
    body: dict[str, Any] = {
        "description": description(entity_type),
        "subject": {"entities": [{"idPattern": ".*", "type": entity_type}], "condition": {"attrs": watched}},
        "notification": {
            ("httpCustom" if secret else "http"): endpoint,
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


def _ld_body(
    settings: SubscriptionSettings, entity_type: str, watched: list[str], notified: list[str]
) -> dict[str, Any]:
    o = settings.orion
    notification: dict[str, Any] = {
        "format": o.attrs_format,
        "endpoint": {"uri": o.notify_url, "accept": "application/json"},
    }
    if settings.notify_secret:
        info = [{"key": settings.notify_secret_header, "value": settings.notify_secret}]
        notification["endpoint"]["receiverInfo"] = info
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


def failures_of(sub: dict[str, Any], ld: bool) -> int:
    """Orion's count of consecutive failed deliveries (v2 `failsCounter`, Orion-LD `consecutiveErrors`)."""
    n = sub.get("notification") or {}
    return int((n.get("consecutiveErrors") if ld else n.get("failsCounter")) or 0)


def paused_by_failures(sub: dict[str, Any], ld: bool, now: datetime) -> bool:
    """True when Orion's own failure policy turned the subscription off (and nothing else did): v2
    `inactive` with failsCounter >= maxFailsLimit, Orion-LD paused after 3 consecutive failures."""
    status = status_of(sub, ld, now)
    if ld:
        return status == "paused" and failures_of(sub, ld) >= LD_PAUSE_AFTER
    limit = _get(sub, "notification", "maxFailsLimit", default=0)
    return status == "inactive" and bool(limit) and failures_of(sub, ld) >= int(limit)


def left_alone(sub: dict[str, Any], ld: bool, now: datetime) -> str:
    """Why the connector must not touch the subscription: `expired` (its expiry has passed) or
    `operator_inactive` (turned off by someone, not by a failure policy); "" when it may reconcile it."""
    status = status_of(sub, ld, now)
    if status == "expired":
        return "expired"
    if status in (ACTIVE, FAILED) or paused_by_failures(sub, ld, now):
        return ""
    return "operator_inactive"


def check_expiry(settings: SubscriptionSettings, now: datetime) -> None:
    """Refuse an `orion.expires` already in the past: Orion would expire the subscription at once."""
    when = parse_time(settings.orion.expires)
    if settings.orion.expires and when is None:
        raise SubscriptionSpecError(f"orion.expires: not an ISO 8601 time: {settings.orion.expires!r}")
    if when is not None and when <= now:
        raise SubscriptionSpecError(f"orion.expires: {settings.orion.expires} is in the past")


def differences(existing: dict[str, Any], want: Desired) -> list[str]:
    """Names of the top-level fields whose value in Orion differs from what the connector wants.

    The notification's endpoint is compared by what matters to the connector (URL, timeout, the secret
    header's value when a secret is configured), not by its shape: an operator's httpCustom with headers,
    qs or a custom payload of its own, at the right URL, is equal.
    """
    fields = _LD_FIELDS if want.ld else _V2_FIELDS
    # A subscription wanted without expiry keeps whatever expiry Orion has (a PATCH cannot clear one).
    compared = {n: f for n, f in fields.items() if n not in _EXPIRY or n in want.body}
    found = [name for name, norm in compared.items() if norm(existing) != norm(want.body)]
    if "notification" not in found and _secret_of(existing, want) != want.secret:
        found.append("notification")
    return found


def _secret_of(doc: dict[str, Any], want: Desired) -> str:
    """The value `doc` sends in the secret header ("" when no secret is wanted: then it is not compared)."""
    if not want.secret_header:
        return ""
    header = want.secret_header.lower()
    if want.ld:
        infos = _get(doc, "notification", "endpoint", "receiverInfo", default=[]) or []
        return next((str(i.get("value")) for i in infos if str(i.get("key", "")).lower() == header), "")
    headers = _get(doc, "notification", "httpCustom", "headers", default={}) or {}
    return next((str(v) for k, v in headers.items() if k.lower() == header), "")


def patch_body(
    want: Desired, changed: list[str], reactivate: bool, existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The PATCH that makes Orion's copy equal to `want` for the `changed` fields (and re-activates).

    A changed notification keeps the shape `existing` has: an operator's httpCustom stays httpCustom with
    its own headers, qs, method and payload; an NGSI-LD endpoint keeps its other receiverInfo entries.
    """
    body = {name: want.body[name] for name in changed if name in want.body}
    if "notification" in body and existing is not None:
        merge = _merged_ld_notification if want.ld else _merged_v2_notification
        body["notification"] = merge(existing.get("notification") or {}, want)
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


def _merged_v2_notification(old: dict[str, Any], want: Desired) -> dict[str, Any]:
    new = dict(want.body["notification"])
    custom = old.get("httpCustom")
    if not isinstance(custom, dict):
        return new
    ours = new.pop("httpCustom", None) or new.pop("http")
    merged = {k: v for k, v in custom.items() if k not in ("url", "timeout", "headers")}
    headers = {
        k: v for k, v in (custom.get("headers") or {}).items() if k.lower() != want.secret_header.lower()
    }
    headers.update(ours.get("headers") or {})
    merged.update(url=ours["url"], timeout=ours["timeout"])
    if headers:
        merged["headers"] = headers
    new["httpCustom"] = merged
    return new


def _merged_ld_notification(old: dict[str, Any], want: Desired) -> dict[str, Any]:
    new = dict(want.body["notification"])
    endpoint = dict(new["endpoint"])
    old_endpoint = old.get("endpoint") or {}
    ours = endpoint.get("receiverInfo") or []
    keys = {str(i["key"]).lower() for i in ours} | {want.secret_header.lower()}
    kept = [i for i in old_endpoint.get("receiverInfo") or [] if str(i.get("key", "")).lower() not in keys]
    if kept or ours:
        endpoint["receiverInfo"] = kept + ours
    if old_endpoint.get("notifierInfo"):
        endpoint["notifierInfo"] = old_endpoint["notifierInfo"]
    new["endpoint"] = endpoint
    return new


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


def _v2_endpoint(doc: dict[str, Any]) -> dict[str, Any]:
    n = doc.get("notification") or {}
    endpoint = n.get("httpCustom") or n.get("http") or {}
    return endpoint if isinstance(endpoint, dict) else {}


_EXPIRY = ("expires", "expiresAt")
# Each compared field, normalised the way Orion echoes it back (absent lists are [], absent numbers 0,
# expiry times as instants), so that an unchanged subscription compares equal and ensure() is idempotent.
_V2_FIELDS = {
    "subject": lambda d: (
        _get(d, "subject", "entities", default=[]),
        _get(d, "subject", "condition", "attrs", default=[]),
    ),
    "notification": lambda d: (
        _v2_endpoint(d).get("url", ""),
        _v2_endpoint(d).get("timeout", 0),
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
