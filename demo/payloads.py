"""Builders of Orion's exact notification bodies and headers (reference/orion.md).

Formats: `normalized` and `keyValues` (NGSIv2, one entity per notification), `legacy` (NGSIv1 as in
seed 003 Figure 16, values as strings, may carry several entities), `ld` (Orion-LD NGSI-LD notification).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FORMATS = ("normalized", "keyValues", "legacy", "ld")
LD_CORE_CONTEXT_LINK = (
    '<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld>; rel="http://www.w3.org/ns/json-ld#context";'
    ' type="application/ld+json"'
)
USER_AGENTS = {
    "normalized": "orion/4.0.0 libcurl/7.88.1",
    "keyValues": "orion/4.0.0 libcurl/7.88.1",
    "legacy": "orion/3.10.1 libcurl/7.74.0",  # legacy notifications are gone since Orion 4.0
    "ld": "orionld/1.10.0",  # Orion-LD's own User-Agent: orionld/<version>, nothing after it
}
# Orion-LD names the attribute format of every notification it sends (it sends no Fiware-Correlator).
LD_ATTRIBUTE_FORMAT = "Normalized"


@dataclass(frozen=True)
class MeterSample:
    """One meter's state at one observation time: power P (W, + import / - export) and register E (kWh)."""

    entity_id: str
    entity_type: str
    serial: str
    manufacturer: str
    observed_at: datetime
    power_w: float
    energy_kwh: float


def orion_time(when: datetime) -> str:
    """Orion's time format: UTC with milliseconds and Z, e.g. 2019-03-18T16:13:45.275Z."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _num(value: float) -> float:
    return round(value, 3)


def normalized_entity(s: MeterSample) -> dict[str, Any]:
    """The entity as Orion renders it in a normalized notification."""
    ts = orion_time(s.observed_at)
    meta = {"TimeInstant": {"type": "DateTime", "value": ts}}
    return {
        "id": s.entity_id,
        "type": s.entity_type,
        "P": {"type": "Number", "value": _num(s.power_w), "metadata": meta},
        "E": {"type": "Number", "value": _num(s.energy_kwh), "metadata": meta},
        "TimeInstant": {"type": "DateTime", "value": ts, "metadata": {}},
        "serialNumber": {"type": "Text", "value": s.serial, "metadata": {}},
        "manufacturer": {"type": "Text", "value": s.manufacturer, "metadata": {}},
    }


def key_values_entity(s: MeterSample) -> dict[str, Any]:
    """The entity as Orion renders it with attrsFormat keyValues (metadata are dropped)."""
    return {
        "id": s.entity_id,
        "type": s.entity_type,
        "P": _num(s.power_w),
        "E": _num(s.energy_kwh),
        "TimeInstant": orion_time(s.observed_at),
        "serialNumber": s.serial,
        "manufacturer": s.manufacturer,
    }


def legacy_context_response(s: MeterSample) -> dict[str, Any]:
    """One NGSIv1 contextResponses element: string values, time in TimeInstant metadatas (Figure 16)."""
    ts = orion_time(s.observed_at)
    metadatas = [{"name": "TimeInstant", "type": "ISO8601", "value": ts}]
    attributes = [
        {"name": "P", "type": "W", "value": f"{_num(s.power_w)}", "metadatas": metadatas},
        {"name": "E", "type": "kWh", "value": f"{_num(s.energy_kwh)}", "metadatas": metadatas},
        {"name": "TimeInstant", "type": "ISO8601", "value": ts},
        {"name": "serialNumber", "type": "Text", "value": s.serial},
        {"name": "manufacturer", "type": "Text", "value": s.manufacturer},
    ]
    element = {"type": s.entity_type, "isPattern": "false", "id": s.entity_id, "attributes": attributes}
    return {"contextElement": element, "statusCode": {"code": "200", "reasonPhrase": "OK"}}


def ld_entity(s: MeterSample) -> dict[str, Any]:
    """The entity as Orion-LD renders it: Properties with unitCode and observedAt."""
    ts = orion_time(s.observed_at)
    return {
        "id": s.entity_id,
        "type": s.entity_type,
        "P": {"type": "Property", "value": _num(s.power_w), "unitCode": "WTT", "observedAt": ts},
        "E": {"type": "Property", "value": _num(s.energy_kwh), "unitCode": "KWH", "observedAt": ts},
        "serialNumber": {"type": "Property", "value": s.serial},
        "manufacturer": {"type": "Property", "value": s.manufacturer},
    }


def notification_body(
    fmt: str,
    samples: list[MeterSample],
    subscription_id: str,
    notified_at: datetime,
    notification_id: str = "",
) -> dict[str, Any]:
    """A whole notification body in `fmt`; NGSIv2 and LD formats take exactly one sample."""
    if fmt == "legacy":
        return {
            "subscriptionId": subscription_id,
            "originator": "localhost",
            "contextResponses": [legacy_context_response(s) for s in samples],
        }
    if len(samples) != 1:
        raise ValueError(f"{fmt} notifications carry exactly one entity, got {len(samples)}")
    if fmt == "normalized":
        return {"subscriptionId": subscription_id, "data": [normalized_entity(samples[0])]}
    if fmt == "keyValues":
        return {"subscriptionId": subscription_id, "data": [key_values_entity(samples[0])]}
    if fmt == "ld":
        return {
            "id": notification_id,
            "type": "Notification",
            "subscriptionId": subscription_id,
            "notifiedAt": orion_time(notified_at),
            "data": [ld_entity(samples[0])],
        }
    raise ValueError(f"unknown notification format {fmt!r}; expected one of {', '.join(FORMATS)}")


def notification_headers(fmt: str, *, tenant: str, service_path: str, correlator: str) -> dict[str, str]:
    """The headers Orion (or Orion-LD for `ld`) sends with a notification, in Orion's spelling."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENTS[fmt]}
    if fmt == "ld":
        headers["Content-Type"] = "application/json"
        headers["Link"] = LD_CORE_CONTEXT_LINK
        headers["Ngsild-Attribute-Format"] = LD_ATTRIBUTE_FORMAT
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        return headers
    headers["Content-Type"] = "application/json; charset=utf-8"
    if tenant:  # Orion sends no Fiware-Service at all for the default tenant
        headers["Fiware-Service"] = tenant
    headers["Fiware-ServicePath"] = service_path
    if fmt != "legacy":
        headers["Ngsiv2-AttrsFormat"] = fmt
    headers["Fiware-Correlator"] = f"{correlator}; cbnotif=1"
    return headers


def notification_url(target: str, fmt: str, subscription_id: str) -> str:
    """Where the notification goes: Orion-LD appends ?subscriptionId=... to the endpoint URI."""
    if fmt != "ld":
        return target
    sep = "&" if "?" in target else "?"
    return f"{target}{sep}subscriptionId={subscription_id}"
