"""The batched ledger writer (connector/ledger/batch.py) against a live dev ledger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from connector.store.db import Store
from connector.store.models import LedgerOutbox

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


def test_without_the_stream_rows_are_read_back(store, clock, make_writer, devledger) -> None:
    """With the event stream away, a round still confirms what it sent, by reading each transaction back."""
    writer = make_writer([devledger.url])
    meter_id = register(store, "urn:ngsi-ld:SMX:NOSTREAM", clock.now())
    assert writer.dispatch_once()["confirmed"] == 1
    assert writer._batch is not None
    writer._batch.stream.stop()  # as if the node's websocket port were unreachable
    seal_window(store, meter_id, 0, clock.now())
    assert writer.dispatch_once()["confirmed"] == 1
    writer.close()
    assert len(history(devledger, store, meter_id)) == 2
