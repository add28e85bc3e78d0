"""A tenant's portfolio for the period-tree tests: meters in several service paths, windows across a UTC
midnight closed with the real fingerprint core, anchored by the real ledger writer; then the period trees
built by connector.periods and their roots anchored by the real root writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from connector.keystore import Keystore
from connector.ledger.root_writer import RootWriter
from connector.periods import Built, build_due_periods
from connector.settings import Settings
from connector.store.db import Store
from connector.store.tree_models import RootOutbox
from tests.api import history as h

START = datetime(2024, 3, 1, 23, 0, tzinfo=UTC)  # 4 windows on March 1st, 4 on March 2nd
METERS = [("urn:m:hq", "/"), ("urn:m:001", "/north/g1"), ("urn:m:002", "/north/g1"), ("urn:m:004", "/south")]
LATER = datetime(2024, 3, 3, 1, 0, tzinfo=UTC)  # both days complete


@dataclass
class Portfolio:
    tenant: str
    meters: dict[str, int]  # entity id -> meter id
    starts: list[datetime]


def add_portfolio(store: Store, settings: Settings, tenant: str = "t1", n: int = 8) -> Portfolio:
    """The meters of METERS with `n` windows each from START, queued for the ledger."""
    meters = {}
    starts: list[datetime] = []
    for entity_id, path in METERS:
        meter_id = h.add_meter(store, entity_id, tenant, path)
        starts = h.close_windows(store, settings, meter_id, n, start=START)
        meters[entity_id] = meter_id
    return Portfolio(tenant, meters, starts)


def build(store: Store, settings: Settings, now: datetime = LATER) -> list[Built]:
    """Build every due period (several rounds, until none is left)."""
    built: list[Built] = []
    for _ in range(10):
        step = build_due_periods(store, settings, now)
        if not step:
            return built
        built += step
    return built


def anchor_roots(store: Store, settings: Settings, keystore: Keystore, urls: list[str]) -> None:
    """Run the real root writer until every root row is confirmed (asserts it)."""
    writer = RootWriter(settings, store, keystore, urls, lambda: datetime.now(UTC))
    for _ in range(10):
        writer.dispatch_once()
        with store.reading() as conn:
            rows = conn.execute(select(RootOutbox.id, RootOutbox.status, RootOutbox.last_error)).all()
        if all(r.status == "confirmed" for r in rows):
            return
    raise AssertionError(f"root rows not confirmed: {rows}")
