"""Orion's checks of a subscription body (NGSIv2 and Orion-LD), used by the stand-in (orion_standin.py).

Each refusal is a `Bad` carrying Orion's status, error name and description.
"""

from __future__ import annotations

import re
from typing import Any

V2_FORMATS = {"normalized", "keyValues", "values", "simplifiedNormalized", "simplifiedKeyValues"}  # 4.x
LD_FORMATS = {"normalized", "keyValues", "concise"}
V2_TOP = {"description", "subject", "notification", "expires", "status", "throttling"}
V2_NOTIFICATION = {
    "http",
    "httpCustom",
    "attrs",
    "exceptAttrs",
    "attrsFormat",
    "metadata",
    "onlyChangedAttrs",
}
V2_NOTIFICATION |= {"maxFailsLimit", "covered"}
V2_HTTP_CUSTOM = {"url", "headers", "qs", "method", "payload", "json", "ngsi", "timeout"}
LD_TOP = {"id", "type", "description", "entities", "watchedAttributes", "notification", "expiresAt"}
LD_TOP |= {"isActive", "throttling", "q", "@context", "subscriptionName", "timeInterval"}
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


class Bad(Exception):
    """A request Orion would refuse: status, error name, description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _need(cond: bool, description: str) -> None:
    if not cond:
        raise Bad(400, "BadRequest", description)


def _strs(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _check_v2(body: dict[str, Any], partial: bool) -> None:
    unknown = sorted(set(body) - V2_TOP)
    _need(not unknown, f"invalid JSON field: /{unknown[0]}/" if unknown else "")
    _need(partial or "subject" in body, "no subject for subscription specified")
    _need(partial or "notification" in body, "no notification for subscription specified")
    if "subject" in body:
        _check_v2_subject(body["subject"])
    if "notification" in body:
        _check_v2_notification(body["notification"])
    if "expires" in body:
        _need(
            isinstance(body["expires"], str) and bool(ISO.match(body["expires"])),
            "expires has an invalid format",
        )
    if "status" in body:
        _need(
            body["status"] in ("active", "inactive", "oneshot"),
            "status is not valid: it has to be active, inactive or oneshot",
        )
    if "throttling" in body:
        _need(
            isinstance(body["throttling"], int | float) and body["throttling"] >= 0,
            "throttling is not a positive number",
        )
    if "description" in body:
        _need(
            isinstance(body["description"], str) and len(body["description"]) <= 1024,
            "description is not a string or is too long",
        )


def _check_v2_subject(subject: Any) -> None:
    _need(isinstance(subject, dict), "subject is not an object")
    entities = subject.get("entities")
    _need(isinstance(entities, list) and len(entities) > 0, "no subject entities specified")
    for e in entities:
        _need(
            isinstance(e, dict) and ("id" in e or "idPattern" in e), "subject entities: no id nor idPattern"
        )
        if "idPattern" in e:
            try:
                re.compile(e["idPattern"])
            except re.error:
                raise Bad(400, "BadRequest", "Invalid regex for entity idPattern") from None
    cond = subject.get("condition", {})
    _need(isinstance(cond, dict), "condition is not an object")
    _need(
        _strs(cond.get("attrs", [])) or cond.get("attrs") == [], "condition attrs is not an array of strings"
    )


def _check_v2_notification(n: Any) -> None:
    _need(isinstance(n, dict), "notification is not an object")
    unknown = sorted(set(n) - V2_NOTIFICATION)
    _need(not unknown, f"invalid JSON field: /{unknown[0]}/" if unknown else "")
    _need(("http" in n) != ("httpCustom" in n), "one of http or httpCustom must be present")
    http = n.get("http", n.get("httpCustom"))
    _need(isinstance(http, dict), "http notification is missing")
    if "httpCustom" in n:
        unknown = sorted(set(http) - V2_HTTP_CUSTOM)
        _need(not unknown, f"invalid JSON field: /{unknown[0]}/" if unknown else "")
        headers = http.get("headers", {})
        _need(
            isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values()),
            "headers is not an object of strings",
        )
    else:
        _need(set(http) <= {"url", "timeout"}, "invalid JSON field in http")
    url = http.get("url")
    _need(
        isinstance(url, str) and re.match(r"^https?://[^/\s]+", url) is not None,
        "Invalid URL parsing notification url",
    )
    _need(
        isinstance(http.get("timeout", 0), int) and http.get("timeout", 0) >= 0,
        "http timeout is not a positive integer",
    )
    _need(_strs(n.get("attrs", [])) or n.get("attrs") == [], "notification attrs is not an array of strings")
    _need(_strs(n.get("metadata", [])) or n.get("metadata") == [], "metadata is not an array of strings")
    _need(n.get("attrsFormat", "normalized") in V2_FORMATS, "invalid attrsFormat")
    _need(isinstance(n.get("onlyChangedAttrs", False), bool), "onlyChangedAttrs is not a bool")
    mfl = n.get("maxFailsLimit", 1)
    _need(
        isinstance(mfl, int) and not isinstance(mfl, bool) and mfl > 0,
        "maxFailsLimit must be greater than zero",
    )


def _check_ld(body: dict[str, Any], partial: bool) -> None:
    unknown = sorted(set(body) - LD_TOP)
    _need(not unknown, f"Unknown field in Subscription: {unknown[0]}" if unknown else "")
    _need(partial or body.get("type") == "Subscription", "Mandatory field missing: Subscription::type")
    if "entities" in body:
        ents = body["entities"]
        _need(
            isinstance(ents, list) and all(isinstance(e, dict) and "type" in e for e in ents),
            "entities: no type",
        )
    _need(
        partial or "entities" in body or "watchedAttributes" in body,
        "At least one of 'entities' and 'watchedAttributes' must be present",
    )
    if "watchedAttributes" in body:
        _need(
            _strs(body["watchedAttributes"]) and body["watchedAttributes"] != [],
            "watchedAttributes: empty array",
        )
    if "notification" in body:
        n = body["notification"]
        uri = (n.get("endpoint") or {}).get("uri") if isinstance(n, dict) else None
        _need(isinstance(uri, str) and re.match(r"^https?://", uri) is not None, "Invalid Endpoint::uri")
        _need(n.get("format", "normalized") in LD_FORMATS, "Invalid value for Notification::format")
        _need(_strs(n.get("attributes", [])), "Notification::attributes: not an array of strings")
        for info in ("receiverInfo", "notifierInfo"):
            items = n["endpoint"].get(info, [])
            _need(
                isinstance(items, list)
                and all(isinstance(i, dict) and set(i) == {"key", "value"} for i in items),
                f"Endpoint::{info}: not an array of key-value pairs",
            )
    else:
        _need(partial, "Mandatory field missing: Subscription::notification")
    if "isActive" in body:
        _need(isinstance(body["isActive"], bool), "Subscription::isActive: not a boolean")
    if "expiresAt" in body:
        _need(bool(ISO.match(str(body["expiresAt"]))), "Subscription::expiresAt: invalid DateTime")
