"""Fixtures of the Orion area: the Orion stand-in served on loopback, settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.settings import Settings, load_settings

from .orion_standin import OrionStandIn, Served

NOTIFY_URL = "http://connector:8668/notify"


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
