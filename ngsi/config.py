"""The settings ngsi's subscription management needs, as plain values the connector hands in.

`OrionSettings` is the `orion:` section of config/connector.yaml (the connector's settings loader reads
it into this class); `SubscriptionSettings` adds what a subscription must carry from elsewhere: the
notify secret Orion is to send and, per entity type, the attributes to subscribe to. ngsi reads no
settings file and imports nothing of the connector.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OrionSettings:
    url: str = ""  # e.g. http://orion:1026; empty = no subscription management
    ld: bool = False  # NGSI-LD (Orion-LD) instead of NGSIv2
    notify_url: str = ""  # the connector's notify URL as Orion reaches it
    attrs_format: str = "normalized"
    subscribe_on_run: bool = False
    check_interval: float = 60.0
    expires: str = "2040-01-01T00:00:00.00Z"
    max_fails_limit: int = 10
    timeout_ms: int = 5000
    tenants: list[str] = field(default_factory=lambda: [""])  # "" = default tenant
    service_path: str = "/#"


@dataclass(frozen=True)
class SubscribedType:
    """What a subscription to one entity type asks Orion to send."""

    # Attributes Orion should send for this type (the subscription's notification.attrs); empty = all.
    subscribe_attrs: list[str] = field(default_factory=list)
    serial_number_attr: str = "serialNumber"
    manufacturer_attr: str = "manufacturer"


@dataclass(frozen=True)
class SubscriptionSettings:
    """Everything the subscription manager and its specs read: Orion, the secret, the entity types."""

    orion: OrionSettings = field(default_factory=OrionSettings)
    notify_secret: str = ""  # sent by Orion in `notify_secret_header` with every notification
    notify_secret_header: str = "X-Connector-Secret"
    entity_types: dict[str, SubscribedType] = field(default_factory=dict)
