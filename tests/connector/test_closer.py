"""Closing windows: due windows close in order, chained, with their TRANSFER queued; late readings never
change a closed window."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from connector.closer import (
    close_batches,
    close_due_windows,
    due_pairs,
    seal_batch,
    stored_reading,
    write_batch,
)
from connector.core.fingerprint import chain_seed, seal_window
from connector.ingest import IngestConfig
from connector.ingest import write_batch as ingest_batch
from connector.store.models import LedgerOutbox, Meter, PendingWindow, Reading, Window
from tests.connector import payloads as p
from tests.connector.test_ingest_writer import incoming

METER = "urn:ngsi-ld:SMX:M1"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def send(client, minutes: float, power: float, entity: str = METER):
    resp = client.post("/notify", data=p.normalized(entity, at(minutes), power), headers=p.ORION_HEADERS)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def windows(store):
    with store.reading() as conn:
        return conn.execute(select(Window).order_by(Window.start)).all()


def test_window_closes_only_after_end_plus_grace(client, store, settings):
    """A 15-minute window closes at end + 120 s, not before."""
    send(client, 1, 100)
    end = T0 + timedelta(minutes=15)
    assert close_due_windows(store, settings, end + timedelta(seconds=119)) == []
    closed = close_due_windows(store, settings, end + timedelta(seconds=120))
    assert [c.start for c in closed] == [T0]
    assert close_due_windows(store, settings, end + timedelta(hours=1)) == []  # closed once


def test_closed_window_has_summary_fingerprint_chain_and_queued_transfer(client, store, settings):
    """Closing writes the window, moves the meter's chain head and queues its TRANSFER together."""
    for minute, watts in ((0, 1000), (5, 2000), (10, 3000)):
        send(client, minute, watts)
    close_due_windows(store, settings, T0 + timedelta(hours=1))
    (w,) = windows(store)
    summary = json.loads(w.summary_json)
    (power,) = [a for a in summary if a["attr"] == "P"]
    assert power["count"] == 3 and power["min"] == "1000" and power["max"] == "3000"
    assert w.reading_count == 3
    assert w.prev_chain_hash == chain_seed("", "/", METER)
    with store.reading() as conn:
        meter = conn.execute(select(Meter)).one()
        transfer = conn.execute(select(LedgerOutbox).where(LedgerOutbox.operation == "TRANSFER")).one()
        assert conn.execute(select(PendingWindow)).all() == []
    assert meter.chain_head == w.chain_hash and meter.last_window_start == T0
    assert transfer.window_id == w.id and transfer.status == "pending"


def test_windows_chain_in_time_order_across_a_leap(client, store, settings):
    """Readings in windows 0, 1 and 5 give three windows, each linked to the one before."""
    for minute in (1, 16, 76, 2):
        send(client, minute, 50)
    close_due_windows(store, settings, T0 + timedelta(hours=3))
    ws = windows(store)
    assert [w.start for w in ws] == [T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=75)]
    assert ws[0].reading_count == 2
    assert ws[1].prev_chain_hash == ws[0].chain_hash and ws[2].prev_chain_hash == ws[1].chain_hash


def test_late_reading_is_stored_flagged_and_never_changes_a_closed_window(client, store, settings):
    """A reading for a closed window is stored as late, counted in the next window, not in the closed one."""
    send(client, 1, 100)
    close_due_windows(store, settings, T0 + timedelta(minutes=20))
    before = windows(store)[0]
    answer = send(client, 3, 999)
    assert answer["late"] == 1
    send(client, 16, 200)
    close_due_windows(store, settings, T0 + timedelta(minutes=40))
    first, second = windows(store)
    assert first == before
    assert second.late_count == 1
    with store.reading() as conn:
        late = conn.execute(select(Reading).where(Reading.late.is_(True))).all()
    assert [r.number for r in late] == ["999"]


def test_duplicates_are_counted_in_their_window(client, store, settings):
    """Duplicates received before the close are reported in the window's duplicate count."""
    send(client, 1, 100)
    send(client, 1, 100)
    send(client, 2, 100)
    close_due_windows(store, settings, T0 + timedelta(hours=1))
    (w,) = windows(store)
    assert (w.reading_count, w.duplicate_count) == (2, 1)


def test_each_meter_has_its_own_chain(client, store, settings):
    """Two meters closing the same window get separate windows seeded by their own chain seeds."""
    send(client, 1, 100, "urn:ngsi-ld:SMX:A")
    send(client, 1, 100, "urn:ngsi-ld:SMX:B")
    close_due_windows(store, settings, T0 + timedelta(hours=1))
    a, b = sorted(windows(store), key=lambda w: w.meter_id)
    assert a.prev_chain_hash == chain_seed("", "/", "urn:ngsi-ld:SMX:A")
    assert b.prev_chain_hash == chain_seed("", "/", "urn:ngsi-ld:SMX:B")
    assert a.fingerprint != b.fingerprint


# -- batches (issue 18): many windows per transaction, sealed outside it -------------------------------------


def expected_windows(store, settings) -> list[tuple]:
    """Every meter's windows as closing them one by one from its stored on-time readings gives them:
    (meter, start, readings, summary, fingerprint, previous and own chain hash), chained from the seed."""
    with store.reading() as conn:
        meters = conn.execute(select(Meter.__table__).order_by(Meter.id)).all()
        rows = conn.execute(select(Reading.__table__).where(Reading.late.is_(False))).all()
        closed = conn.execute(select(Window.meter_id, Window.start)).all()
    by_window: dict[tuple[int, datetime], list] = {}
    for r in rows:
        by_window.setdefault((r.meter_id, r.window_start), []).append(
            stored_reading(r.attr, r.attr_type, r.observed_at, r.value_json, r.number, r.unit)
        )
    expected = []
    for m in meters:
        head = m.chain_seed
        for start in sorted(s for mid, s in closed if mid == m.id):
            cw = seal_window(
                by_window.get((m.id, start), []),
                start,
                start + timedelta(seconds=settings.window.length),
                head,
                lambda attr, t=m.entity_type: settings.attribute_spec(t, attr),
            )
            expected.append(
                (m.id, start, cw.reading_count, cw.summary_json, cw.fingerprint, head, cw.chain_hash)
            )
            head = cw.chain_hash
    return expected


def stored_windows(store) -> list[tuple]:
    with store.reading() as conn:
        ws = conn.execute(select(Window.__table__).order_by(Window.meter_id, Window.start)).all()
    return [
        (w.meter_id, w.start, w.reading_count, w.summary_json, w.fingerprint, w.prev_chain_hash, w.chain_hash)
        for w in ws
    ]


def transfers(store) -> list[tuple]:
    """The TRANSFER rows as (meter, window start, idempotency key, seq, status), by meter and window."""
    with store.reading() as conn:
        rows = conn.execute(
            select(
                LedgerOutbox.meter_id,
                Window.start,
                LedgerOutbox.idempotency_key,
                LedgerOutbox.seq,
                LedgerOutbox.status,
            )
            .join(Window, Window.id == LedgerOutbox.window_id)
            .order_by(LedgerOutbox.meter_id, Window.start)
        ).all()
    return [tuple(r) for r in rows]


def counts(store) -> list[tuple]:
    with store.reading() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(Window.meter_id, Window.start, Window.duplicate_count, Window.late_count).order_by(
                    Window.meter_id, Window.start
                )
            )
        ]


def pending(store) -> list[tuple]:
    with store.reading() as conn:
        return [tuple(r) for r in conn.execute(select(PendingWindow.meter_id, PendingWindow.window_start))]


@pytest.mark.parametrize("batch", [1, 3, 200])
def test_a_batch_of_many_meters_closes_like_one_by_one(client, store, settings, batch):
    """Windows of 12 meters, one of them with 4 due windows (one after a gap, one with a duplicate, its
    first after a late reading): whatever the batch, every window is what closing one at a time gives."""
    send(client, 1, 100)
    close_due_windows(store, settings, T0 + timedelta(minutes=20))
    send(client, 2, 7)  # late: counted in the meter's next window
    for minute, watts in ((16, 10), (17, 20), (17, 20), (31, 30), (95, 40)):
        send(client, minute, watts)
    for i in range(11):
        send(client, 16 + i % 3, 500 + i, f"urn:ngsi-ld:SMX:N{i}")
    closed = close_due_windows(store, settings, T0 + timedelta(hours=3), batch=batch)
    assert len(closed) == 3 + 11
    assert stored_windows(store) == expected_windows(store, settings)
    first, second, third, fourth = [w for w in counts(store) if w[0] == 1]
    assert (second[2:], third[2:], fourth[2:]) == ((1, 1), (0, 0), (0, 0))  # duplicates, late
    keys = [
        (m, s, f"window:{i}", int(s.timestamp()), "pending")
        for i, (m, s, *_rest) in enumerate(counts(store), 1)
    ]
    assert transfers(store) == keys
    assert pending(store) == []


def test_a_batch_costs_the_same_statements_for_40_meters_as_for_5(client, store, settings):
    """Closing is set-based: one write transaction and a fixed number of statements per batch, whatever
    the number of windows in it (one by one it was seven statements a window)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(store.write, "before_cursor_execute", record)
    try:
        statements = []
        for first, n in ((0, 5), (5, 40)):
            for i in range(first, first + n):
                send(client, 1 + 15 * (first > 0), 100, f"urn:ngsi-ld:SMX:S{i}")
            seen.clear()
            closed = close_due_windows(
                store, settings, T0 + timedelta(hours=1) * (1 + (first > 0)), batch=100
            )
            assert len(closed) == n
            statements.append(len(seen))
    finally:
        event.remove(store.write, "before_cursor_execute", record)
    assert statements[0] == statements[1]


def test_a_reading_arriving_while_a_batch_is_sealed_holds_its_meter_for_the_next_run(client, store, settings):
    """A reading stored between sealing and writing: its meter is left (no window without it), the other
    meters close, and the next run closes the window with the reading in it."""
    send(client, 1, 100, "urn:ngsi-ld:SMX:A")
    send(client, 2, 100, "urn:ngsi-ld:SMX:B")
    now = T0 + timedelta(hours=1)
    with store.reading() as conn:
        work = seal_batch(conn, settings, due_pairs(conn, T0, None, 100), now)
    send(client, 3, 300, "urn:ngsi-ld:SMX:A")  # the window is due but not closed: on time
    with store.begin() as conn:
        closed, waiting = write_batch(conn, work, now)
    assert ([c.entity_id for c in closed], waiting) == (["urn:ngsi-ld:SMX:B"], 1)
    (again,) = close_due_windows(store, settings, now)
    assert (again.entity_id, again.reading_count) == ("urn:ngsi-ld:SMX:A", 2)
    assert stored_windows(store) == expected_windows(store, settings)


def test_an_earlier_window_appearing_while_a_batch_is_sealed_closes_first(client, store, settings):
    """A meter's first reading of an earlier window stored between sealing and writing: the later window
    is not written ahead of it; the next run closes both, in time order."""
    send(client, 16, 100)
    now = T0 + timedelta(hours=1)
    with store.reading() as conn:
        work = seal_batch(conn, settings, due_pairs(conn, T0 + timedelta(minutes=15), None, 100), now)
    send(client, 1, 50)  # not late: the meter has no closed window yet
    with store.begin() as conn:
        assert write_batch(conn, work, now) == ([], 1)
    assert [c.start for c in close_due_windows(store, settings, now)] == [T0, T0 + timedelta(minutes=15)]
    assert stored_windows(store) == expected_windows(store, settings)


def test_a_window_another_closer_wrote_first_is_skipped(client, store, settings):
    """Two closers sealed the same batch: the second one's write closes nothing and queues nothing."""
    send(client, 1, 100, "urn:ngsi-ld:SMX:A")
    send(client, 16, 100, "urn:ngsi-ld:SMX:A")
    send(client, 1, 100, "urn:ngsi-ld:SMX:B")
    now = T0 + timedelta(hours=1)
    with store.reading() as conn:
        due = due_pairs(conn, T0 + timedelta(minutes=15), None, 100)
        first, second = seal_batch(conn, settings, due, now), seal_batch(conn, settings, due, now)
    with store.begin() as conn:
        assert len(write_batch(conn, first, now)[0]) == 3
    with store.begin() as conn:
        assert write_batch(conn, second, now) == ([], 3)
    assert len(transfers(store)) == 3 and stored_windows(store) == expected_windows(store, settings)


def test_a_meter_locked_by_ingest_is_passed_over_not_waited_for(client, store, settings):
    """PostgreSQL: a meter another transaction holds (ingest reads meters FOR SHARE) waits for the next
    run; the closer neither blocks on it nor can deadlock with it."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite serializes write transactions: nothing to pass over")
    send(client, 1, 100, "urn:ngsi-ld:SMX:A")
    send(client, 1, 100, "urn:ngsi-ld:SMX:B")
    now = T0 + timedelta(hours=1)
    result: list = []
    with store.begin() as conn:
        conn.execute(
            select(Meter.id).where(Meter.entity_id == "urn:ngsi-ld:SMX:A").with_for_update(read=True)
        )
        closer = threading.Thread(target=lambda: result.append(close_due_windows(store, settings, now)))
        closer.start()
        closer.join(timeout=120)  # a hang guard: a closer that waits for the lock never returns
        assert not closer.is_alive(), "the closer waited for a meter ingest holds"
    assert [c.entity_id for c in result[0]] == ["urn:ngsi-ld:SMX:B"]
    assert [c.entity_id for c in close_due_windows(store, settings, now)] == ["urn:ngsi-ld:SMX:A"]


def test_closing_while_readings_arrive_keeps_every_chain_whole(store, settings, clock):
    """Ingest and the closer run at once (readings of 20 meters over 6 windows, in shuffled order, while
    the closer runs in small batches): every window equals its on-time readings chained from the seed,
    each later reading is stored late and counted once, and nothing is left pending."""
    config = IngestConfig.of(settings)
    plan = [(f"urn:ngsi-ld:SMX:R{m}", minute) for m in range(20) for minute in range(0, 90, 4)]
    random.Random(18).shuffle(plan)
    done = threading.Event()

    def ingest() -> None:
        for i in range(0, len(plan), 7):
            items = [incoming(p.normalized(e, at(minute), minute), clock) for e, minute in plan[i : i + 7]]
            with store.begin() as conn:
                ingest_batch(conn, items, config)
        done.set()

    sender = threading.Thread(target=ingest)
    sender.start()
    now = T0 + timedelta(hours=3)
    while not done.is_set():
        close_due_windows(store, settings, now, batch=5)
    sender.join()
    close_due_windows(store, settings, now, batch=5)
    assert pending(store) == []
    assert stored_windows(store) == expected_windows(store, settings)
    with store.reading() as conn:
        late = conn.execute(select(func.count()).where(Reading.late.is_(True))).scalar_one()
        counted = conn.execute(select(func.sum(Window.late_count))).scalar_one()
        left = conn.execute(select(func.sum(Meter.late_since_close))).scalar_one()
    assert late == counted + left


def test_a_run_stops_between_batches_once_asked(client, store, settings):
    """A stopping connector ends the closer's run after the batch in hand; the next run closes the rest."""
    for i in range(5):
        send(client, 1, 100, f"urn:ngsi-ld:SMX:Q{i}")
    batches: list[int] = []
    now = T0 + timedelta(hours=1)
    for infos in close_batches(store, settings, now, batch=2, stopping=lambda: bool(batches)):
        batches.append(len(infos))
    assert batches == [2]
    assert len(close_due_windows(store, settings, now, batch=2)) == 3
