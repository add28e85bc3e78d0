"""Rows for ledger tests: meters and closed windows written straight into the store."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy import insert

from connector.store.db import Store
from connector.store.models import Meter, Window


def add_meter(
    store: Store, entity_id: str, now: datetime, tenant: str = "edream", path: str = "/meters"
) -> int:
    """Insert a meter row and return its id."""
    seed = hashlib.sha256(entity_id.encode()).hexdigest()
    with store.begin() as conn:
        result = conn.execute(
            insert(Meter).values(
                tenant=tenant,
                service_path=path,
                entity_id=entity_id,
                entity_type="SMX",
                serial_number=None,
                manufacturer=None,
                first_seen=now,
                chain_seed=seed,
                chain_head=seed,
                late_since_close=0,
            )
        )
        return int(result.inserted_primary_key[0])


def summary(start: datetime, n_attrs: int = 1) -> list[dict[str, object]]:
    """A per-attribute summary list as the closer writes it (decimals as strings)."""
    out = []
    for i in range(n_attrs):
        out.append(
            {
                "attr": "P" if i == 0 else f"attr_{i}",
                "type": "W",
                "kind": "power",
                "count": 3,
                "min": "-84.891",
                "max": "12.5",
                "mean": "-20.1",
                "first": "-84.891",
                "first_at": (start + timedelta(seconds=5)).isoformat(),
                "last": "12.5",
                "last_at": (start + timedelta(seconds=600)).isoformat(),
                "energy_wh": "-5.025",
            }
        )
    return out


def add_window(store: Store, meter_id: int, start: datetime, now: datetime, n_attrs: int = 1) -> int:
    """Insert a closed 15-minute window row for `meter_id` and return its id."""
    text = json.dumps(summary(start, n_attrs), sort_keys=True, separators=(",", ":"))
    fp = hashlib.sha256(f"{meter_id}{start}".encode()).hexdigest()
    with store.begin() as conn:
        result = conn.execute(
            insert(Window).values(
                meter_id=meter_id,
                start=start,
                end=start + timedelta(minutes=15),
                closed_at=now,
                reading_count=3,
                duplicate_count=1,
                late_count=0,
                summary_json=text,
                energy_wh="-5.025",
                fingerprint=fp,
                prev_chain_hash=hashlib.sha256(fp.encode()).hexdigest(),
                chain_hash=hashlib.sha256((fp + "x").encode()).hexdigest(),
            )
        )
        return int(result.inserted_primary_key[0])
