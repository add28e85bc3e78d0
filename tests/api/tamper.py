"""Tampering with stored readings, after seed 004 section 4.2: salt-and-pepper noise Z(t_k) added to M(t_k),
Z = NoiseMAX * PD(Z) when PD(Z) <= SP, else 0 (PD uniform here)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete, insert, select, update

from connector.store.db import Store
from connector.store.models import Reading
from tests.api.history import put_reading


def salt_and_pepper(
    store: Store,
    meter_id: int,
    starts: list[datetime],
    fraction: float,
    rng: random.Random,
    sp: float = 0.3,
    noise_max: Decimal = Decimal(500),
) -> set[datetime]:
    """Add noise to readings of round(fraction * len(starts)) random windows; returns the windows changed.

    Every chosen window gets at least one altered reading, so "altered" is exactly the returned set.
    """
    chosen = rng.sample(starts, round(fraction * len(starts)))
    with store.begin() as conn:
        for ws in chosen:
            rows = conn.execute(
                select(Reading.id, Reading.number).where(
                    Reading.meter_id == meter_id, Reading.window_start == ws
                )
            ).all()
            hits = [r for r in rows if rng.random() <= sp] or [rows[0]]
            for r in hits:
                noisy = Decimal(r.number) + noise_max * Decimal(str(round(rng.uniform(0.01, 1), 4)))
                conn.execute(
                    update(Reading)
                    .where(Reading.id == r.id)
                    .values(number=str(noisy), value_json=json.dumps(float(noisy)))
                )
    return set(chosen)


def snapshot(store: Store, meter_id: int) -> list[dict]:
    """Every reading row of a meter (to put them back after a tamper)."""
    with store.reading() as conn:
        return [dict(r._mapping) for r in conn.execute(select(Reading).where(Reading.meter_id == meter_id))]


def restore(store: Store, meter_id: int, rows: list[dict]) -> None:
    """Replace a meter's readings with `rows`."""
    with store.begin() as conn:
        conn.execute(delete(Reading).where(Reading.meter_id == meter_id))
        conn.execute(insert(Reading), rows)


def delete_reading(store: Store, meter_id: int, ws: datetime) -> None:
    """Remove one reading of window `ws`."""
    with store.begin() as conn:
        rid = conn.execute(select(func_min_id(meter_id, ws))).scalar_one()
        conn.execute(delete(Reading).where(Reading.id == rid))


def insert_reading(store: Store, meter_id: int, ws: datetime) -> None:
    """Add a forged on-time reading to window `ws`."""
    put_reading(store, meter_id, ws, timedelta(minutes=7, seconds=30), "510.0", late=False)


def shift_timestamp(store: Store, meter_id: int, ws: datetime, seconds: int = 1) -> None:
    """Move one reading of window `ws` by `seconds`, staying inside the window."""
    with store.begin() as conn:
        rid = conn.execute(select(func_min_id(meter_id, ws))).scalar_one()
        at = conn.execute(select(Reading.observed_at).where(Reading.id == rid)).scalar_one()
        conn.execute(
            update(Reading).where(Reading.id == rid).values(observed_at=at + timedelta(seconds=seconds))
        )


def func_min_id(meter_id: int, ws: datetime):  # type: ignore[no-untyped-def]
    """SQL for the smallest reading id of a window."""
    from sqlalchemy import func

    return (
        select(func.min(Reading.id))
        .where(Reading.meter_id == meter_id, Reading.window_start == ws)
        .scalar_subquery()
    )
