"""Fixtures of the query-API tests: a live dev ledger, the connector's Flask app, anchored histories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from connector.app import create_app
from connector.context import Services
from connector.keystore import Keystore
from connector.settings import Settings
from connector.store.db import Store
from devledger.server import LedgerHandle, start_ledger
from tests.api import history as h


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
def make_app(api_settings: Settings, store: Store, ledger: LedgerHandle, clock) -> Callable[..., Flask]:
    """Build the connector's app on the test store and ledger, optionally with other settings."""

    def make(settings: Settings | None = None, **kw: Any) -> Flask:
        svc = Services(settings or api_settings, store, clock=clock.now, ledger_urls=[ledger.url], **kw)
        app = create_app(svc)
        app.testing = True
        return app

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The connector's app, no auth."""
    return make_app()


@pytest.fixture
def client(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_client()


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
