"""The services one connector process shares: typed fields, built once by the composition root
(`connector.service.build_services` and `Connector`) and handed to the HTTP app.

Routes reach them with `services()`; nothing else is global.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import current_app
from prometheus_client import CollectorRegistry

from connector.audit_cache import Chain, Sealed, chain_cache, seal_cache
from connector.ingest import IngestWriter
from connector.ledger.client import LedgerReads
from connector.lru import Lru
from connector.metrics import Metrics
from connector.settings import Settings
from connector.store.db import Store

if TYPE_CHECKING:  # only started when their capability is on (web3, Orion client): annotations only
    from connector.api.buckets import Folded  # (and the query API imports this module)
    from connector.ethereum.relay import RelayService
    from ngsi.subscriptions import SubscriptionManager

Clock = Callable[[], datetime]

# Whole hour or day buckets the query API keeps folded (connector/api/buckets.py; about 0.6 kB each,
# measured: at most 12 MB, 55 meter-years of days).
FOLD_CACHE_BUCKETS = 20_000


def utc_now() -> datetime:
    """The real clock: timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Services:
    """What the HTTP app and its routes use; `relay` and `subscriptions` are None when switched off."""

    settings: Settings
    store: Store
    metrics: Metrics
    ingest: IngestWriter
    clock: Clock = utc_now
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # BigchainDB node URLs the connector writes to (the embedded dev ledger's URL when embedded).
    ledger_urls: list[str] = field(default_factory=list)
    # The query API's ledger reads: one bounded pool of connections, closed when the connector stops.
    ledger_reads: LedgerReads = field(default_factory=LedgerReads)
    # The verify route's parsed ledger chains per asset, reused while the asset's last TRANSFER holds.
    chains: Lru[Chain] = field(default_factory=chain_cache)
    # ... and its recomputed windows, memoized on the digest of their stored readings.
    sealed: Lru[Sealed] = field(default_factory=seal_cache)
    # aggregate=hour|day: whole buckets folded from the local index, reused while their windows hold.
    folds: Lru[Folded] = field(default_factory=lambda: Lru(FOLD_CACHE_BUCKETS))
    # server.workers > 1: the folder every process writes its metric values to; /metrics sums them.
    metrics_dir: str | None = None
    relay: RelayService | None = None  # /health probes the Ethereum node the relay uses
    subscriptions: SubscriptionManager | None = None  # /health reports Orion's subscriptions


def services() -> Services:
    """The Services of the running Flask app."""
    return current_app.extensions["connector"]  # type: ignore[no-any-return]
