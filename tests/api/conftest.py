"""Fixtures of the query-API tests: a live dev ledger, the connector's Flask app, anchored histories."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from connector.app import create_app
from connector.context import Services
from connector.keystore import Keystore
from connector.service import build_services
from connector.settings import Settings
from connector.store.db import Store
from devledger.server import LedgerHandle, start_ledger
from tests.api import history as h
from tests.asgi_client import AsgiClient, connector_client


@pytest.fixture(scope="session")
def ledger() -> Iterator[LedgerHandle]:
    """A dev ledger in memory on a free loopback port, shared by the API tests."""
    handle = start_ledger(port=0, ws_port=0, data_dir=None)
    yield handle
    handle.stop()


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The shipped settings with a short ledger timeout."""
    ledger = settings.ledger.__class__(**{**settings.ledger.__dict__, "timeout": 5.0, "concurrency": 1})
    return settings.replace(ledger=ledger)


@pytest.fixture
def make_services(
    api_settings: Settings, store: Store, ledger: LedgerHandle, clock
) -> Callable[..., Services]:
    """Build the connector's services on the test store and ledger, optionally with other settings."""

    def make(settings: Settings | None = None) -> Services:
        return build_services(settings or api_settings, store, clock.now, ledger_urls=[ledger.url])

    return make


@pytest.fixture
def make_client(make_services: Callable[..., Services]) -> Callable[..., AsgiClient]:
    """A client of the production door (the ASGI app) on the test store and ledger, optionally with
    other settings; `client.app.svc` are its services."""

    def make(settings: Settings | None = None) -> AsgiClient:
        return connector_client(make_services(settings))

    return make


@pytest.fixture
def app(make_services: Callable[..., Services]) -> Flask:
    """The connector's Flask app behind the door, no auth (for schemathesis' WSGI runner)."""
    return create_app(make_services())


@pytest.fixture
def client(make_client: Callable[..., AsgiClient]) -> AsgiClient:
    """A client of the production door, no auth."""
    return make_client()


@pytest.fixture
def anchored(
    store: Store, api_settings: Settings, ledger: LedgerHandle, tmp_path, clock
) -> Callable[..., h.MeterHistory]:
    """Create a meter with `n` windows anchored on the dev ledger by the real ledger writer."""
    keystore = Keystore(tmp_path / "keys")

    def make(entity_id: str = "urn:meter:1", n: int = 8, tenant: str = "", path: str = "/") -> h.MeterHistory:
        meter_id = h.add_meter(store, entity_id, tenant, path)
        starts = h.close_windows(store, api_settings, meter_id, n)
        h.anchor(store, api_settings, keystore, [ledger.url])
        return h.MeterHistory(meter_id, entity_id, starts)

    return make
