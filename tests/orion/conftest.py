"""Fixtures of the Orion area: the Orion stand-in served on loopback, settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry

from connector.settings import Settings, load_settings, subscription_settings
from ngsi.subscriptions import SubscriptionManager

from .orion_standin import OrionStandIn, Served

NOTIFY_URL = "http://connector:8668/notify"
NOW = datetime(2026, 3, 18, 16, 13, 45, tzinfo=UTC)


def manager(
    settings: Settings, registry: CollectorRegistry | None = None, attempts: int = 3
) -> SubscriptionManager:
    """A subscription manager for `settings` on a fresh HTTP session, its clock frozen at NOW and its
    retries without sleeping."""
    return SubscriptionManager(
        subscription_settings(settings),
        requests.Session(),
        clock=lambda: NOW,
        registry=registry,
        attempts=attempts,
        sleep=lambda s: None,
    )


@pytest.fixture
def orion() -> Iterator[OrionStandIn]:
    """A fresh Orion stand-in listening on 127.0.0.1."""
    served = Served()
    yield served.orion
    served.stop()


@pytest.fixture
def make_settings(orion: OrionStandIn) -> Callable[..., Settings]:
    """Build settings from the shipped config with orion.* pointing at the stand-in, plus dotted overrides."""

    def build(**overrides: Any) -> Settings:
        values = {"orion.url": orion.url, "orion.notify_url": NOTIFY_URL}
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_settings(overrides=values)

    return build
