"""The services one connector process shares, built once at start-up and handed to the Flask app.

Routes reach them with `services()`; nothing else is global.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from prometheus_client import CollectorRegistry

from connector.ledger.client import LedgerReads
from connector.settings import Settings
from connector.store.db import Store

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock: timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    store: Store
    clock: Clock = utc_now
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # BigchainDB node URLs the connector writes to (the embedded dev ledger's URL when embedded).
    ledger_urls: list[str] = field(default_factory=list)
    # The query API's ledger reads: one bounded pool of connections, closed when the connector stops.
    ledger_reads: LedgerReads = field(default_factory=LedgerReads)
    # Parts started by later capabilities (metrics, keystore, ledger writer, relay) hang here by name.
    extras: dict[str, Any] = field(default_factory=dict)


def services() -> Services:
    """The Services of the running Flask app."""
    return current_app.extensions["connector"]  # type: ignore[no-any-return]
