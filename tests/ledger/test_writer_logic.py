"""The writer's decisions (order, retries, dead rows, resends) against a recording fake ledger."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from structlog.testing import capture_logs

from connector.ledger.outbox import enqueue_create, enqueue_transfer
from connector.ledger.testing import FakeLedger, http_error
from connector.ledger.transactions import spent_tx_id
from connector.store.db import Store
from connector.store.models import LedgerOutbox, Meter

from .helpers import add_meter, add_window

T0 = datetime(2019, 3, 18, 16, 0, tzinfo=UTC)


def seed(store: Store, clock, meters: int, windows: int) -> list[int]:
    """Meters with queued CREATEs and `windows` closed windows each, queued as TRANSFERs."""
    ids = []
    for m in range(meters):
        meter_id = add_meter(store, f"urn:ngsi-ld:SMX:{m}", clock.now())
        with store.begin() as conn:
            enqueue_create(conn, meter_id, clock.now())
        for w in range(windows):
            start = T0 + timedelta(minutes=15 * w)
            window_id = add_window(store, meter_id, start, clock.now())
            with store.begin() as conn:
                enqueue_transfer(conn, meter_id, window_id, int(start.timestamp()), clock.now())
        ids.append(meter_id)
    return ids


def rows(store: Store) -> list:
    with store.reading() as conn:
        return list(conn.execute(select(LedgerOutbox).order_by(LedgerOutbox.meter_id, LedgerOutbox.seq)))


def test_chain_per_meter(store, clock, make_writer) -> None:
    """Every meter gets a CREATE and its windows as a chain of TRANSFERs, each spending the one before."""
    fake = FakeLedger()
    seed(store, clock, meters=2, windows=3)
    counts = make_writer(client_factory=lambda: fake).dispatch_once()
    assert counts["confirmed"] == 8 and len(fake.committed) == 8
    by_meter: dict[int, list] = {}
    for row in rows(store):
        assert row.status == "confirmed" and row.attempts == 1 and row.block_height
        by_meter.setdefault(row.meter_id, []).append(json.loads(row.tx_json))
    for txs in by_meter.values():
        assert [t["operation"] for t in txs] == ["CREATE"] + ["TRANSFER"] * 3
        for prev, tx in zip(txs, txs[1:], strict=False):
            assert spent_tx_id(tx) == prev["id"] and tx["asset"]["id"] == txs[0]["id"]
    with store.reading() as conn:
        for meter in conn.execute(select(Meter)):
            assert meter.ledger_head_tx == by_meter[meter.id][-1]["id"]
            assert meter.asset_id == by_meter[meter.id][0]["id"]


def test_ledger_down_then_back(store, clock, make_writer) -> None:
    """While the ledger is down nothing is lost; on its return the backlog goes out in order, once."""
    fake = FakeLedger()
    seed(store, clock, meters=1, windows=2)
    writer = make_writer(client_factory=lambda: fake)
    fake.down = True
    assert writer.dispatch_once()["retried"] == 1
    (first, *_) = rows(store)
    assert first.attempts == 1 and first.next_attempt_at == clock.now() + timedelta(seconds=1)
    assert "connection" in first.last_error
    assert writer.dispatch_once().get("retried", 0) == 0  # not due yet: backoff holds
    clock.advance(1)
    writer.dispatch_once()
    assert rows(store)[0].next_attempt_at == clock.now() + timedelta(seconds=2)
    fake.down = False
    clock.advance(2)
    assert writer.dispatch_once()["confirmed"] == 3
    assert [fake.committed[t]["operation"] for t in fake.order] == ["CREATE", "TRANSFER", "TRANSFER"]


def test_out_of_tries_is_stuck_not_skipped(store, clock, make_writer, ledger_settings) -> None:
    """A ledger away for longer than max_attempts allows: no row dies, no window is skipped, the rows are
    reported stuck, and on the ledger's return the meter's whole chain goes out in order."""
    fake = FakeLedger()
    seed(store, clock, meters=1, windows=2)
    ledger = dataclasses.replace(ledger_settings.ledger, max_attempts=3, backoff_cap=1.0)
    writer = make_writer(settings=ledger_settings.replace(ledger=ledger), client_factory=lambda: fake)
    fake.down = True
    for _ in range(6):
        counts = writer.dispatch_once()
        assert counts.get("dead", 0) == 0
        clock.advance(1)
    (first, *_) = rows(store)
    assert first.status == "pending" and first.attempts == 6
    assert writer.metrics.stuck.labels("CREATE")._value.get() == 3
    fake.down = False
    assert writer.dispatch_once()["confirmed"] == 3
    assert [r.status for r in rows(store)] == ["confirmed"] * 3
    txs = [fake.committed[t] for t in fake.order]
    assert spent_tx_id(txs[2]) == txs[1]["id"] and spent_tx_id(txs[1]) == txs[0]["id"]


def test_permanent_rejection_is_dead_and_kept(store, clock, make_writer) -> None:
    """A 400 marks the row dead with the reason and a metric; later windows still go out."""
    fake = FakeLedger()
    seed(store, clock, meters=1, windows=2)
    writer = make_writer(client_factory=lambda: fake)
    writer.dispatch_once()  # CREATE + 2 TRANSFERs
    window_id = add_window(store, 1, T0 + timedelta(hours=1), clock.now())
    window2 = add_window(store, 1, T0 + timedelta(hours=2), clock.now())
    with store.begin() as conn:
        enqueue_transfer(conn, 1, window_id, int((T0 + timedelta(hours=1)).timestamp()), clock.now())
        enqueue_transfer(conn, 1, window2, int((T0 + timedelta(hours=2)).timestamp()), clock.now())
    invalid = "Invalid transaction (InvalidSignature): Transaction signature is invalid."
    fake.fail_next = [http_error(400, invalid)]
    counts = writer.dispatch_once()
    assert counts["dead"] == 1 and counts["confirmed"] == 1
    dead = [r for r in rows(store) if r.status == "dead"]
    assert len(dead) == 1 and "InvalidSignature" in dead[0].last_error
    assert writer.metrics.dead.labels("TRANSFER")._value.get() == 1
    last = json.loads(rows(store)[-1].tx_json)
    assert spent_tx_id(last) == json.loads(rows(store)[2].tx_json)["id"]  # skips the dead one


def test_server_errors_are_retried(store, clock, make_writer) -> None:
    """500 (commit timeout), 503 and 504 are retried; the resend is byte-identical."""
    fake = FakeLedger()
    seed(store, clock, meters=1, windows=0)
    writer = make_writer(client_factory=lambda: fake)
    fake.fail_next = [http_error(500), http_error(503), http_error(504)]
    tx_json = None
    for _ in range(3):
        assert writer.dispatch_once()["retried"] == 1
        row = rows(store)[0]
        assert tx_json in (None, row.tx_json)
        tx_json = row.tx_json
        clock.advance(3600)
    assert writer.dispatch_once()["confirmed"] == 1
    assert rows(store)[0].tx_json == tx_json and rows(store)[0].attempts == 4


def test_accepted_but_dropped_is_resent(store, clock, make_writer) -> None:
    """A 202 whose tx never lands stays `sent`; the next round resends it and confirms it."""
    fake = FakeLedger()
    fake.drop_next = 1
    seed(store, clock, meters=1, windows=0)
    writer = make_writer(client_factory=lambda: fake)
    assert writer.dispatch_once()["sent"] == 1 and rows(store)[0].status == "sent"
    clock.advance(1)
    assert writer.dispatch_once()["confirmed"] == 1 and len(fake.committed) == 1


def test_resend_of_committed_tx_counts_as_success(store, clock, make_writer) -> None:
    """A tx committed before the writer crashed is confirmed on resend (DuplicateTransaction/DoubleSpend)."""
    fake = FakeLedger()
    seed(store, clock, meters=1, windows=1)
    writer = make_writer(client_factory=lambda: fake)
    writer.dispatch_once()
    with store.begin() as conn:  # as if the process died before recording the confirmations
        conn.execute(LedgerOutbox.__table__.update().values(status="pending", confirmed_at=None))
    clock.advance(5)
    assert writer.dispatch_once()["confirmed"] == 2
    assert len(fake.committed) == 2 and all(r.status == "confirmed" for r in rows(store))


def test_unknown_error_is_dead_and_alerted_not_retried(store, clock, make_writer) -> None:
    """An error without evidence (a TypeError from the send) ends the row dead at once, logged at error
    and counted; it is not retried on later rounds."""
    fake = FakeLedger()
    seed(store, clock, meters=1, windows=0)
    writer = make_writer(client_factory=lambda: fake)
    fake.fail_next = [TypeError("Object of type Decimal is not JSON serializable")]
    with capture_logs() as logs:
        counts = writer.dispatch_once()
    assert counts["dead"] == 1 and counts.get("retried", 0) == 0
    (row,) = rows(store)
    assert row.status == "dead" and row.last_error.startswith("unknown error: TypeError")
    assert writer.metrics.dead.labels("CREATE")._value.get() == 1
    alert = [e for e in logs if e["event"] == "ledger.dead"]
    assert alert and alert[0]["log_level"] == "error" and "TypeError" in alert[0]["reason"]
    clock.advance(3600)
    sends = sum(1 for call, _ in fake.calls if call == "send")
    assert writer.dispatch_once().get("meters", 0) == 0
    assert sum(1 for call, _ in fake.calls if call == "send") == sends
