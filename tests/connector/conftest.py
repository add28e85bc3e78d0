"""Fixtures for the ingest path: the Flask app on a migrated store with a frozen clock."""

from __future__ import annotations

import pytest

from connector.app import create_app
from connector.context import Services


@pytest.fixture
def services(settings, store, clock):
    """Services on the test store and frozen clock (ledger and Ethereum off)."""
    return Services(settings, store, clock.now)


@pytest.fixture
def client(services):
    """A test client of the connector's WSGI app."""
    return create_app(services).test_client()
