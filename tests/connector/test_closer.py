"""Closing windows: due windows close in order, chained, with their TRANSFER queued; late readings never
change a closed window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connector.closer import close_due_windows
from connector.core.fingerprint import chain_seed
from connector.store.models import LedgerOutbox, Meter, PendingWindow, Reading, Window
from tests.connector import payloads as p

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
