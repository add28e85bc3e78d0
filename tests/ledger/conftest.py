"""Fixtures of the ledger tests: a keystore, the writer's settings, and a writer factory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connector.keystore import Keystore
from connector.ledger.writer import LedgerWriter
from connector.settings import Settings
from connector.store.db import Store


@pytest.fixture
def keystore(tmp_path) -> Keystore:
    """An unencrypted keystore in the test's folder."""
    return Keystore(tmp_path / "keystore")


@pytest.fixture
def ledger_settings(settings: Settings) -> Settings:
    """Settings with a short driver timeout and a quick backoff, so failures show up fast."""
    quick = {"timeout": 1.0, "backoff_base": 1.0, "backoff_cap": 8.0, "concurrency": 4}
    ledger = dataclasses.replace(settings.ledger, **quick)
    return settings.replace(ledger=ledger)


@pytest.fixture
def make_writer(
    ledger_settings: Settings, store: Store, keystore: Keystore, clock
) -> Iterator[Callable[..., LedgerWriter]]:
    """Build a LedgerWriter on the test store with its own metrics registry."""

    made: list[LedgerWriter] = []

    def make(urls: list[str] | None = None, settings: Settings | None = None, **kw: Any) -> LedgerWriter:
        kw.setdefault("registry", CollectorRegistry())
        made.append(
            LedgerWriter((settings or ledger_settings).ledger, store, keystore, urls or [], clock, **kw)
        )
        return made[-1]

    yield make
    for writer in made:  # stop their event-stream threads
        writer.close()


class DevLedger:
    """A live dev ledger on loopback whose data survives `restart()` (same port, same data folder)."""

    def __init__(self, data_dir) -> None:  # type: ignore[no-untyped-def]
        from devledger.server import start_ledger

        self._start = start_ledger
        self.data_dir = data_dir
        self.handle = start_ledger(host="127.0.0.1", port=0, ws_port=0, data_dir=data_dir)
        self.port = self.handle.port
        self.url = self.handle.url

    def stop(self) -> None:
        self.handle.stop()

    def restart(self) -> None:
        self.handle = self._start(host="127.0.0.1", port=self.port, ws_port=0, data_dir=self.data_dir)

    def client(self):  # type: ignore[no-untyped-def]
        """A bigchaindb-driver client for checks made by the test itself."""
        from bigchaindb_driver import BigchainDB

        return BigchainDB(self.url, timeout=5)


@pytest.fixture
def devledger(tmp_path):  # type: ignore[no-untyped-def]
    """A live dev ledger with its data in the test's folder."""
    ledger = DevLedger(tmp_path / "devledger")
    yield ledger
    ledger.stop()
