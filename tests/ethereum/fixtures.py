"""Store fixtures for the bridge tests: meters and windows whose BigchainDB TRANSFER is confirmed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert

from connector.store.db import Store
from connector.store.models import LedgerOutbox, Meter, Window

START = datetime.fromisoformat("2019-03-18T16:00:00+00:00")


@dataclass(frozen=True)
class WindowFixture:
    window_id: int
    meter_id: int
    tenant: str
    service_path: str
    entity_id: str
    start: datetime
    energy_wh: str
    fingerprint: str


def add_meter(store: Store, entity_id: str, tenant: str = "t1", service_path: str = "/a") -> int:
    """Insert a meter and return its id."""
    with store.begin() as conn:
        return int(
            conn.execute(
                insert(Meter)
                .values(
                    tenant=tenant,
                    service_path=service_path,
                    entity_id=entity_id,
                    entity_type="SmartMeter",
                    first_seen=START,
                    chain_seed="00" * 32,
                    chain_head="00" * 32,
                    late_since_close=0,
                )
                .returning(Meter.id)
            ).scalar_one()
        )


def add_window(
    store: Store, meter_id: int, entity_id: str, index: int, energy: str, status: str = "confirmed"
) -> WindowFixture:
    """Insert window `index` (15 minutes each from START) of a meter and its TRANSFER outbox row."""
    start = START + timedelta(minutes=15 * index)
    fp = hashlib.sha256(f"{entity_id}|{index}|{energy}".encode()).hexdigest()
    with store.begin() as conn:
        window_id = int(
            conn.execute(
                insert(Window)
                .values(
                    meter_id=meter_id,
                    start=start,
                    end=start + timedelta(minutes=15),
                    closed_at=start + timedelta(minutes=17),
                    reading_count=15,
                    duplicate_count=0,
                    late_count=0,
                    summary_json="{}",
                    energy_wh=energy,
                    fingerprint=fp,
                    prev_chain_hash="00" * 32,
                    chain_hash=hashlib.sha256(fp.encode()).hexdigest(),
                )
                .returning(Window.id)
            ).scalar_one()
        )
        conn.execute(
            insert(LedgerOutbox).values(
                idempotency_key=f"window:{window_id}",
                meter_id=meter_id,
                window_id=window_id,
                operation="TRANSFER",
                seq=index + 1,
                status=status,
                attempts=1,
                next_attempt_at=start,
                tx_id=hashlib.sha256(f"tx{window_id}".encode()).hexdigest(),
                created_at=start,
                updated_at=start,
            )
        )
    return WindowFixture(window_id, meter_id, "t1", "/a", entity_id, start, energy, fp)


def add_grid(store: Store, meters: int, intervals: int, first: int = 0) -> dict[str, list[WindowFixture]]:
    """`meters` meters with `intervals` confirmed windows each; energies vary per meter and interval."""
    grid: dict[str, list[WindowFixture]] = {}
    for m in range(meters):
        entity = f"urn:ngsi-ld:SmartMeter:{m:03d}"
        meter_id = add_meter(store, entity)
        grid[entity] = [
            add_window(store, meter_id, entity, i, f"{100 + 10 * m + i}.4")
            for i in range(first, first + intervals)
        ]
    return grid
