"""The batched ledger writer (connector/ledger/batch.py) against a live dev ledger."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.dialects import sqlite

from connector.ledger.batch import claim_query
from connector.store.db import Store, migrate, open_store
from connector.store.models import LedgerOutbox, Meter

from .test_live_ledger import assert_linear, history, register, seal_window


@contextmanager
def counted_statements(store: Store) -> Iterator[list[str]]:
    """Every statement sent to the store (an executemany counts once) while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement.split()[0])

    engines = {id(e): e for e in (store.write, store.read)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def test_a_round_costs_the_same_statements_for_5_or_40_meters(store, clock, make_writer, devledger) -> None:
    """Claim, schedule and confirm are batched: a round of 40 CREATEs sends as many statements as one of 5."""
    writer = make_writer([devledger.url])
    assert writer.batched
    writer.dispatch_once()  # its first dispatch also looks once for keys to renew (renew_rejected_keys)
    costs = []
    for size, prefix in ((5, "A"), (40, "B")):
        for i in range(size):
            register(store, f"urn:ngsi-ld:SMX:BATCH{prefix}{i}", clock.now())
        with counted_statements(store) as seen:
            counts = writer.dispatch_once()
        assert counts["confirmed"] == size
        costs.append(len(seen))
    writer.close()
    assert costs[0] == costs[1], costs


def test_windows_chain_in_order_over_rounds(store, clock, make_writer, devledger) -> None:
    """4 meters x 3 windows: every row confirmed with its block height, each meter's history one chain."""
    writer = make_writer([devledger.url])
    meters = [register(store, f"urn:ngsi-ld:SMX:CHAIN{i}", clock.now()) for i in range(4)]
    for meter_id in meters:
        for w in range(3):
            seal_window(store, meter_id, w, clock.now())
    counts = writer.dispatch_once()
    writer.close()
    assert counts["confirmed"] == 16 and counts["meters"] == 4
    with store.reading() as conn:
        rows = conn.execute(select(LedgerOutbox.status, LedgerOutbox.block_height)).all()
    assert {r.status for r in rows} == {"confirmed"} and all(r.block_height for r in rows)
    for meter_id in meters:
        txs = history(devledger, store, meter_id)
        assert len(txs) == 4
        assert_linear(txs)


def test_without_the_stream_rows_are_read_back(store, clock, make_writer, devledger, ledger_settings) -> None:
    """With the event stream away, a round still confirms what it sent, by reading each transaction back.

    The read-back gets the driver's default timeout: the fixtures' quick 1 s was once too short for it on
    a busy 2-core machine (the row stayed `sent`, to be confirmed a round later)."""
    patient = dataclasses.replace(ledger_settings.ledger, timeout=20.0)
    writer = make_writer([devledger.url], settings=ledger_settings.replace(ledger=patient))
    meter_id = register(store, "urn:ngsi-ld:SMX:NOSTREAM", clock.now())
    assert writer.dispatch_once()["confirmed"] == 1
    assert writer._batch is not None
    writer._batch.stream.stop()  # as if the node's websocket port were unreachable
    seal_window(store, meter_id, 0, clock.now())
    assert writer.dispatch_once()["confirmed"] == 1
    writer.close()
    assert len(history(devledger, store, meter_id)) == 2


def test_rows_are_signed_before_the_claim_takes_the_write_lock(store, clock, make_writer, devledger) -> None:
    """No transaction is signed inside the claim's write transaction (on SQLite /notify waits for it): the
    CREATEs and TRANSFERs of a round are signed from a read, and the claim only stores them."""
    writer = make_writer([devledger.url])
    inside: list[bool] = [False]
    signed_inside: list[int] = []
    begin, sign_row = store.begin, writer.sign_row

    @contextmanager
    def watched_begin() -> Iterator[Any]:
        with begin() as conn:
            inside[0] = True
            try:
                yield conn
            finally:
                inside[0] = False

    def watched_sign(*args: Any) -> Any:
        signed_inside.append(inside[0])
        return sign_row(*args)

    store.begin, writer.sign_row = watched_begin, watched_sign  # type: ignore[method-assign]
    meters = [register(store, f"urn:ngsi-ld:SMX:EARLY{i}", clock.now()) for i in range(6)]
    assert writer.dispatch_once()["confirmed"] == 6
    for meter_id in meters:
        seal_window(store, meter_id, 0, clock.now())
    assert writer.dispatch_once()["confirmed"] == 6
    writer.close()
    assert len(signed_inside) == 12 and not any(signed_inside)
    for meter_id in meters:
        assert_linear(history(devledger, store, meter_id))


def test_a_row_signed_early_is_signed_again_if_its_meter_moved(store, clock, make_writer, devledger) -> None:
    """If the meter's chain head changes between the early signing and the claim (another writer, a
    recovery), the claim signs the row again from what it reads under its lock: the TRANSFER spends the
    head the store holds then, not the one it was first signed against."""
    writer = make_writer([devledger.url])
    meter_id = register(store, "urn:ngsi-ld:SMX:MOVED", clock.now())
    assert writer.dispatch_once()["confirmed"] == 1
    seal_window(store, meter_id, 0, clock.now())
    moved = "ab" * 32
    batch = writer._batch
    assert batch is not None
    presign = batch._presign

    def presign_then_move(now: Any) -> Any:
        heads, signed = presign(now)
        assert len(signed) == 1  # the TRANSFER was signed early, against the CREATE
        with store.begin() as conn:
            conn.execute(update(Meter).where(Meter.id == meter_id).values(ledger_head_tx=moved))
        return heads, signed

    batch._presign = presign_then_move  # type: ignore[method-assign]
    (job,) = batch._claim(Counter(), batch._sign_ahead())
    writer.close()
    assert job.tx["inputs"][0]["fulfills"]["transaction_id"] == moved


def test_a_round_writes_the_outbox_at_most_store_chunk_rows_per_transaction(
    store, clock, make_writer, devledger
) -> None:
    """A round of 250 CREATEs is claimed and confirmed in write transactions of at most 100 rows (STORE_CHUNK)
    each (on SQLite /notify's commits wait for every one of them), and every row is confirmed."""
    writer = make_writer([devledger.url])
    for i in range(250):
        register(store, f"urn:ngsi-ld:SMX:CHUNK{i}", clock.now())
    sizes: list[int] = []

    def record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("UPDATE ledger_outbox"):
            sizes.append(len(params) if executemany else 1)

    event.listen(store.write, "before_cursor_execute", record)
    try:
        counts = writer.dispatch_once()
    finally:
        event.remove(store.write, "before_cursor_execute", record)
        writer.close()
    assert counts["confirmed"] == 250
    assert max(sizes) <= 100, sizes  # claimed (scheduled) and confirmed 100, 100 and 50 at a time
    assert sum(sizes) == 2 * 250


def test_a_claim_finds_its_rows_by_primary_key_on_sqlite(tmp_path) -> None:
    """The claim's rows are looked up by id, not by walking ix_ledger_outbox_due's open rows (that cost
    every claim time in proportion to the whole open outbox, under the write lock)."""
    store = open_store(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    try:
        migrate(store)
        query = claim_query(datetime(2026, 12, 7, tzinfo=UTC), [3, 1, 2])
        sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        with store.reading() as conn:
            plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
    finally:
        store.dispose()
    assert "SEARCH ledger_outbox USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
    assert not any("ix_ledger_outbox_due" in step for step in plan), plan
