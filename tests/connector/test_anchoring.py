"""From notifications to BigchainDB: ingest, close, anchor on a live dev ledger, and read it back."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from bigchaindb_driver import BigchainDB
from sqlalchemy import select

from connector.closer import close_due_windows
from connector.keystore import Keystore
from connector.ledger.writer import LedgerWriter
from connector.store.models import LedgerOutbox, Meter, Window
from tests.connector import payloads as p

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_three_meters_four_windows_make_3_creates_and_12_chained_transfers(client, store, settings, ledger):
    """Each TRANSFER spends the one before it and carries the window's fingerprint and chain hash."""
    for meter in range(3):
        for minute in range(0, 60, 5):
            when = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
            body = p.normalized(f"urn:ngsi-ld:SMX:A{meter}", when, 100 * (meter + 1) + minute)
            assert client.post("/notify", data=body, headers=p.ORION_HEADERS).status_code == 200
    assert len(close_due_windows(store, settings, T0 + timedelta(hours=2))) == 12
    keystore = Keystore(settings.keystore.path)
    with LedgerWriter(settings.ledger, store, keystore, [ledger.url], lambda: datetime.now(UTC)) as writer:
        deadline = time.monotonic() + 120  # a hang guard, not a budget: a busy machine only makes it slower
        while True:
            writer.dispatch_once()
            with store.reading() as conn:
                statuses = conn.execute(select(LedgerOutbox.status)).scalars().all()
            if (statuses and all(s == "confirmed" for s in statuses)) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert sorted(statuses) == ["confirmed"] * 15
    bdb = BigchainDB(ledger.url)
    with store.reading() as conn:
        meters = conn.execute(select(Meter)).all()
        for meter in meters:
            history = bdb.transactions.get(asset_id=meter.asset_id)
            windows = conn.execute(
                select(Window).where(Window.meter_id == meter.id).order_by(Window.start)
            ).all()
            assert [tx["operation"] for tx in history] == ["CREATE"] + ["TRANSFER"] * 4
            for prev, tx, window in zip(history[:-1], history[1:], windows, strict=True):
                assert tx["inputs"][0]["fulfills"]["transaction_id"] == prev["id"]
                assert tx["outputs"][0]["public_keys"] == [meter.public_key]
                assert tx["metadata"]["fingerprint"] == window.fingerprint
                assert tx["metadata"]["chain_hash"] == window.chain_hash
                assert tx["metadata"]["attributes"] == json.loads(window.summary_json)
