"""The ledger writer against a live dev ledger: chains, outages, crashes and store roll-backs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from connector.ledger.metadata import transfer_metadata
from connector.ledger.outbox import enqueue_create, enqueue_transfer
from connector.ledger.transactions import signatures_valid, spent_tx_id
from connector.store.db import Store
from connector.store.models import LedgerOutbox, Meter, Window

from .helpers import add_meter, add_window

T0 = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)


def seal_window(store: Store, meter_id: int, index: int, now: datetime) -> int:
    """Close window `index` of a meter and queue its TRANSFER, as the closer does."""
    start = T0 + timedelta(minutes=15 * index)
    window_id = add_window(store, meter_id, start, now)
    with store.begin() as conn:
        enqueue_transfer(conn, meter_id, window_id, int(start.timestamp()), now)
    return window_id


def register(store: Store, name: str, now: datetime) -> int:
    meter_id = add_meter(store, name, now)
    with store.begin() as conn:
        enqueue_create(conn, meter_id, now)
    return meter_id


def history(ledger, store: Store, meter_id: int) -> list[dict]:
    """The meter's asset history as the ledger reports it, CREATE first."""
    with store.reading() as conn:
        asset_id = conn.scalar(select(Meter.asset_id).where(Meter.id == meter_id))
    return ledger.client().transactions.get(asset_id=asset_id)


def assert_linear(txs: list[dict]) -> None:
    """Each TRANSFER spends the one before and every signature verifies."""
    assert txs[0]["operation"] == "CREATE" and signatures_valid(txs[0])
    for prev, tx in zip(txs, txs[1:], strict=False):
        assert tx["operation"] == "TRANSFER" and spent_tx_id(tx) == prev["id"]
        assert tx["asset"]["id"] == txs[0]["id"] and signatures_valid(tx, prev)


def test_three_meters_four_windows(store, clock, make_writer, devledger) -> None:
    """3 meters x 4 windows give 3 CREATEs and 12 TRANSFERs, chained, signed, metadata equal to the store."""
    meters = [register(store, f"urn:ngsi-ld:SMX:BBB609{i}", clock.now()) for i in range(3)]
    for meter_id in meters:
        for w in range(4):
            seal_window(store, meter_id, w, clock.now())
    counts = make_writer([devledger.url]).dispatch_once()
    assert counts["confirmed"] == 15 and counts["meters"] == 3
    with store.reading() as conn:
        windows = {w.id: Window(**w._mapping) for w in conn.execute(select(Window.__table__))}
        meter_rows = {m.id: Meter(**m._mapping) for m in conn.execute(select(Meter.__table__))}
        outbox = list(conn.execute(select(LedgerOutbox).where(LedgerOutbox.window_id.is_not(None))))
    for meter_id in meters:
        txs = history(devledger, store, meter_id)
        assert len(txs) == 5
        assert_linear(txs)
        assert meter_rows[meter_id].ledger_head_tx == txs[-1]["id"]
        unspent = devledger.client().outputs.get(meter_rows[meter_id].public_key, spent=False)
        assert [o["transaction_id"] for o in unspent] == [txs[-1]["id"]]
    for row in outbox:
        tx = devledger.client().transactions.retrieve(row.tx_id)
        assert tx == json.loads(row.tx_json)
        window = windows[row.window_id]
        assert tx["metadata"] == transfer_metadata(meter_rows[row.meter_id], window)
        assert tx["metadata"]["fingerprint"] == window.fingerprint
        assert tx["metadata"]["attributes"] == json.loads(window.summary_json)
        assert row.block_height == devledger.client().blocks.get(txid=row.tx_id)


def test_ledger_down_for_several_windows(store, clock, make_writer, devledger) -> None:
    """Windows closed while the ledger is down are written in order on its return, none lost or doubled."""
    meter_id = register(store, "urn:ngsi-ld:SMX:down", clock.now())
    seal_window(store, meter_id, 0, clock.now())
    writer = make_writer([devledger.url])
    assert writer.dispatch_once()["confirmed"] == 2
    devledger.stop()
    for w in range(1, 4):
        seal_window(store, meter_id, w, clock.now())
        clock.advance(900)
        assert writer.dispatch_once()["retried"] == 1
    with store.reading() as conn:
        pending = conn.execute(select(LedgerOutbox).where(LedgerOutbox.status == "pending")).all()
    assert len(pending) == 3 and {r.attempts for r in pending} == {3, 0}
    devledger.restart()
    clock.advance(900)
    assert writer.dispatch_once()["confirmed"] == 3
    txs = history(devledger, store, meter_id)
    assert_linear(txs)
    starts = [tx["metadata"]["window"]["start"] for tx in txs[1:]]
    assert starts == sorted(starts) and len(set(starts)) == 4
    assert writer.metrics.retried.labels("TRANSFER")._value.get() == 3


def snapshot(store: Store) -> dict:
    """The meters, windows and outbox as they are now: an "older copy" of the store."""
    with store.reading() as conn:
        return {
            "meters": [dict(r._mapping) for r in conn.execute(select(Meter.__table__))],
            "windows": {r.id for r in conn.execute(select(Window.id))},
            "outbox": [dict(r._mapping) for r in conn.execute(select(LedgerOutbox.__table__))],
        }


def roll_back(store: Store, copy: dict) -> None:
    """Put the store back to `copy`, losing everything written since."""
    with store.begin() as conn:
        conn.execute(delete(LedgerOutbox))
        conn.execute(delete(Window).where(Window.id.not_in(copy["windows"])))
        for meter in copy["meters"]:
            conn.execute(update(Meter).where(Meter.id == meter["id"]).values(**meter))
        conn.execute(LedgerOutbox.__table__.insert(), copy["outbox"])


def test_store_rolled_back_recovers_head(store, clock, make_writer, devledger) -> None:
    """After restoring an older store the writer finds the real head and extends it instead of forking."""
    meter_id = register(store, "urn:ngsi-ld:SMX:restored", clock.now())
    for w in range(2):
        seal_window(store, meter_id, w, clock.now())
    writer = make_writer([devledger.url])
    writer.dispatch_once()
    older = snapshot(store)
    seal_window(store, meter_id, 2, clock.now())
    seal_window(store, meter_id, 3, clock.now())
    writer.dispatch_once()
    on_ledger = history(devledger, store, meter_id)
    assert len(on_ledger) == 5
    roll_back(store, older)
    seal_window(store, meter_id, 2, clock.now())  # the same window closed again from the same readings
    seal_window(store, meter_id, 4, clock.now())  # and a new one
    clock.advance(60)
    counts = writer.dispatch_once()
    assert counts["confirmed"] == 2 and counts["recovered"] == 1
    txs = history(devledger, store, meter_id)
    assert_linear(txs)
    assert txs[:5] == on_ledger and len(txs) == 6
    starts = [tx["metadata"]["window"]["start"] for tx in txs[1:]]
    assert len(set(starts)) == 5
    with store.reading() as conn:
        head = conn.scalar(select(Meter.ledger_head_tx).where(Meter.id == meter_id))
        rows = conn.execute(select(LedgerOutbox.status, LedgerOutbox.tx_id)).all()
    assert head == txs[-1]["id"]
    assert {r.status for r in rows} == {"confirmed"} and {r.tx_id for r in rows} <= {t["id"] for t in txs}


def test_sigkill_between_send_and_confirm(store, tmp_path, make_writer, devledger) -> None:
    """A writer killed after every send (before confirming) still ends with exactly one tx per window."""
    now = datetime.now(UTC)
    meter_id = register(store, "urn:ngsi-ld:SMX:killed", now)
    for w in range(3):
        seal_window(store, meter_id, w, now)
    config = {"store": store.url, "keystore": str(tmp_path / "keystore"), "ledger": devledger.url}
    script = Path(__file__).with_name("writer_process.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    codes = []
    for _ in range(12):
        proc = subprocess.run([sys.executable, str(script), json.dumps(config)], env=env, timeout=60)
        codes.append(proc.returncode)
        if proc.returncode == 0:
            break
    assert codes.count(-signal.SIGKILL) == 4 and codes[-1] == 0  # killed once per transaction
    txs = history(devledger, store, meter_id)
    assert len(txs) == 4
    assert_linear(txs)
    with store.reading() as conn:
        rows = conn.execute(select(LedgerOutbox).order_by(LedgerOutbox.seq)).all()
    assert [r.tx_id for r in rows] == [t["id"] for t in txs]
    assert all(r.status == "confirmed" for r in rows)


def test_two_writers_share_one_store(store, ledger_settings, tmp_path, devledger) -> None:
    """Two writer processes' worth of writers on one store write every window once, without forks."""
    from concurrent.futures import ThreadPoolExecutor

    from connector.keystore import Keystore
    from connector.ledger.writer import LedgerWriter
    from connector.store.db import open_store

    now = datetime.now(UTC)
    meters = [register(store, f"urn:ngsi-ld:SMX:shared{i}", now) for i in range(4)]
    for meter_id in meters:
        for w in range(3):
            seal_window(store, meter_id, w, now)
    stores = [open_store(store.url) for _ in range(2)]
    writers = [
        LedgerWriter(
            ledger_settings.ledger,
            s,
            Keystore(tmp_path / "keystore"),
            [devledger.url],
            lambda: datetime.now(UTC),
        )
        for s in stores
    ]
    try:
        with ThreadPoolExecutor(2) as pool:
            for _ in range(10):
                list(pool.map(lambda w: w.dispatch_once(), writers))
                with store.reading() as conn:
                    statuses = set(conn.scalars(select(LedgerOutbox.status)))
                if statuses == {"confirmed"}:
                    break
    finally:
        for w in writers:
            w.close()
        for s in stores:
            s.dispose()
    assert statuses == {"confirmed"}
    for meter_id in meters:
        txs = history(devledger, store, meter_id)
        assert len(txs) == 4
        assert_linear(txs)
