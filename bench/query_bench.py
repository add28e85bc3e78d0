"""Query API benchmark: one meter, a year of 15-minute windows (35,040) and 1-minute readings (525,600).

    .venv/bin/python -m bench.query_bench [--store-url URL] [--runs 30] [--days 365]

The year is bulk-loaded straight into the store (not through /notify): readings of one power attribute,
windows closed with the real fingerprint core (connector.fingerprint.close_window, chained), and a
confirmed outbox row per window whose tx_json holds a TRANSFER-shaped document with the real window
metadata (connector.ledger.metadata.transfer_metadata) but no signature. Latencies are measured in-process
through the Flask test client (routing, parsing, SQL, JSON) for history, and on the verification core with
the ledger side read from the local index (connector.verify.IndexLedger) for verify.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

from flask import Flask
from sqlalchemy import insert, select, update

from connector.api import init_app
from connector.closer import insert_window
from connector.context import Services
from connector.fingerprint import chain_seed, close_window
from connector.ledger.metadata import transfer_metadata
from connector.readings import StoredReading
from connector.settings import Settings, load_settings
from connector.store.db import Store, migrate, open_store
from connector.store.models import LedgerOutbox, Meter, Reading, Window
from connector.verify import IndexLedger, load_off_chain, verify_meter

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
ENTITY = "urn:ngsi-ld:SMX:bench"


def load_year(store: Store, settings: Settings, days: int) -> int:
    """Bulk-load the meter's readings, windows and confirmed outbox rows; returns the meter id."""
    seed = chain_seed("", "/", ENTITY)
    with store.begin() as conn:
        values = dict(tenant="", service_path="/", entity_id=ENTITY, entity_type="SMX", first_seen=T0)
        meter_id = int(
            conn.execute(
                insert(Meter).values(**values, chain_seed=seed, chain_head=seed, late_since_close=0)
            ).inserted_primary_key[0]
        )
        meter = conn.execute(Meter.__table__.select().where(Meter.id == meter_id)).one()
    spec_for = partial(settings.attribute_spec, "SMX")
    head, rng = seed, random.Random(1)
    per_day = 86400 // 900
    for day in range(days):
        readings, windows = [], []
        for w in range(per_day):
            ws = T0 + (day * per_day + w) * WINDOW
            stored = [_reading(ws + timedelta(minutes=m), rng) for m in range(15)]
            cw = close_window(stored, ws, ws + WINDOW, head, spec_for)
            head = cw.chain_hash
            readings += [_reading_row(meter_id, ws, r) for r in stored]
            windows.append(cw)
        _insert_day(store, meter, readings, windows)
    with store.begin() as conn:
        conn.execute(update(Meter).where(Meter.id == meter_id).values(chain_head=head))
    return meter_id


def _reading(at: datetime, rng: random.Random) -> StoredReading:
    p = Decimal(rng.randint(0, 500_000)) / 100
    return StoredReading("P", "Number", at, json.dumps(float(p)), p, "W")


def _reading_row(meter_id: int, ws: datetime, r: StoredReading) -> dict:
    return dict(
        meter_id=meter_id,
        attr=r.attr,
        attr_type=r.attr_type,
        observed_at=r.observed_at,
        received_at=r.observed_at,
        time_source="TimeInstant",
        value_json=r.value_json,
        number=str(r.number),
        unit=r.unit,
        window_start=ws,
        late=False,
    )


def _insert_day(store: Store, meter, readings: list[dict], windows: list) -> None:  # type: ignore[no-untyped-def]
    with store.begin() as conn:
        conn.execute(insert(Reading), readings)
        for cw in windows:
            window_id = insert_window(conn, meter.id, cw, cw.end + timedelta(minutes=2))
            tx = _transfer(meter, conn.execute(select(Window).where(Window.id == window_id)).one())
            conn.execute(insert(LedgerOutbox).values(**_outbox(meter.id, window_id, cw.start, tx)))


def _transfer(meter, window: Window) -> dict:  # type: ignore[no-untyped-def]
    metadata = transfer_metadata(meter, window)
    tx_id = hashlib.sha3_256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()
    return {"id": tx_id, "operation": "TRANSFER", "asset": {"id": "0" * 64}, "metadata": metadata}


def _outbox(meter_id: int, window_id: int, start: datetime, tx: dict) -> dict:
    return dict(
        idempotency_key=f"window:{window_id}",
        meter_id=meter_id,
        window_id=window_id,
        operation="TRANSFER",
        seq=int(start.timestamp()),
        status="confirmed",
        attempts=1,
        next_attempt_at=start,
        tx_id=tx["id"],
        tx_json=json.dumps(tx, sort_keys=True, separators=(",", ":")),
        block_height=window_id,
        created_at=start,
        updated_at=start,
        confirmed_at=start,
    )


def p95(samples: list[float]) -> float:
    """The 95th percentile in milliseconds."""
    return statistics.quantiles(samples, n=20)[-1] * 1000 if len(samples) > 1 else samples[0] * 1000


def timed(fn, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="query-bench-")
    url = args.store_url or f"sqlite:///{tmp}/store.sqlite3"
    settings = load_settings(overrides={"store.url": url, "ledger.embedded": False})
    store = open_store(url)
    migrate(store)
    started = time.perf_counter()
    meter_id = load_year(store, settings, args.days)
    print(f"store {store.dialect}: loaded {args.days} days in {time.perf_counter() - started:.1f} s")
    app = Flask("bench")
    app.extensions["connector"] = Services(settings, store)
    init_app(app)
    client = app.test_client()
    report(client, store, settings, meter_id, args.runs, args.days)


def report(client, store: Store, settings: Settings, meter_id: int, runs: int, days: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(2)
    total = days * 96
    base = f"/v1/meters/{ENTITY}/history"

    def page() -> None:
        answer = client.get(f"{base}?limit=1000&offset={rng.randrange(0, max(1, total - 1000))}")
        assert answer.status_code == 200 and len(answer.json["windows"]) == min(1000, total)

    def daily() -> None:
        answer = client.get(f"{base}?aggregate=day&limit=1000")
        assert answer.status_code == 200 and answer.json["total"] == days

    def verify(span: timedelta) -> None:
        start = T0 + timedelta(days=rng.randrange(0, max(1, days - span.days)))
        with store.reading() as conn:
            off = load_off_chain(conn, meter_id, start, start + span)
            history = IndexLedger(conn, meter_id).window_transfers("", start, start + span)
        seed = chain_seed("", "/", ENTITY)
        verdicts = verify_meter(
            off, history, seed, partial(settings.attribute_spec, "SMX"), start, start + span
        )
        assert all(v.status == "ok" for v in verdicts) and len(verdicts) == span / WINDOW

    rows = [
        ("history page, limit=1000 (random offset)", timed(page, runs)),
        ("history aggregate=day over the year", timed(daily, max(5, runs // 3))),
        ("verify one day (96 windows)", timed(lambda: verify(timedelta(days=1)), runs)),
        (
            "verify one month (30 days, 2,880 windows)",
            timed(lambda: verify(timedelta(days=30)), max(5, runs // 3)),
        ),
    ]
    print("| measurement | runs | median ms | p95 ms |\n|---|---|---|---|")
    for name, samples in rows:
        print(f"| {name} | {len(samples)} | {statistics.median(samples) * 1000:.1f} | {p95(samples):.1f} |")


if __name__ == "__main__":
    main()
