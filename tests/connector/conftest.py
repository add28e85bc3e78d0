"""Fixtures for the ingest path: the connector's HTTP door on a migrated store with a frozen clock."""

from __future__ import annotations

import pytest

from connector.service import build_services
from tests.asgi_client import connector_client


@pytest.fixture
def services(settings, store, clock):
    """Services on the test store and frozen clock (ledger and Ethereum off)."""
    return build_services(settings, store, clock.now)


@pytest.fixture
def client(services):
    """A test client of the ASGI app production serves (notify door in front of the Flask app)."""
    return connector_client(services)
