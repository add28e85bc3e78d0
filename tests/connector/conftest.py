"""Fixtures for the ingest path: the connector's HTTP door on a migrated store with a frozen clock, and a
live dev ledger for the anchoring tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.service import build_services
from devledger.server import LedgerHandle, start_ledger
from tests.asgi_client import connector_client


@pytest.fixture
def services(settings, store, clock):
    """Services on the test store and frozen clock (ledger and Ethereum off)."""
    return build_services(settings, store, clock.now)


@pytest.fixture
def client(services):
    """A test client of the ASGI app production serves (notify door in front of the Flask app)."""
    return connector_client(services)


@pytest.fixture
def ledger() -> Iterator[LedgerHandle]:
    """A dev ledger on free ports, stopped after the test."""
    handle = start_ledger(port=0, ws_port=0)
    yield handle
    handle.stop()
