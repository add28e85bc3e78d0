"""Group commit: many notifications in one transaction, each answered with its own outcome."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from connector.ingest import Incoming, IngestWriter, write_batch
from connector.store.models import LedgerOutbox, Meter, PendingWindow, Reading
from ngsi.headers import resolve_headers
from ngsi.parse import parse_notification
from tests.connector import payloads as p


def incoming(body: str, clock, tenant: str = "") -> Incoming:
    headers = resolve_headers({**p.ORION_HEADERS, **({"Fiware-Service": tenant} if tenant else {})})
    return Incoming(parse_notification(json.loads(body), headers, clock.now()), headers, clock.now())


def count(store, model) -> int:
    with store.reading() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_one_group_gives_each_notification_its_own_outcome(store, settings, clock):
    """Duplicates inside a group are counted against the later notification; meters register once."""
    a = p.normalized("urn:ngsi-ld:SMX:A", "2026-01-01T00:00:01Z", 1)
    b = p.normalized("urn:ngsi-ld:SMX:B", "2026-01-01T00:00:01Z", 2)
    items = [incoming(a, clock), incoming(b, clock), incoming(a, clock), incoming(a, clock, tenant="t2")]
    with store.begin() as conn:
        results = write_batch(conn, items, settings)
    assert [(r.accepted, r.duplicates) for r in results] == [(1, 0), (1, 0), (0, 1), (1, 0)]
    assert [r.new_meters for r in results] == [
        ["urn:ngsi-ld:SMX:A"],
        ["urn:ngsi-ld:SMX:B"],
        [],
        ["urn:ngsi-ld:SMX:A"],
    ]
    assert count(store, Meter) == 3 and count(store, Reading) == 3
    assert count(store, LedgerOutbox) == 3  # one CREATE per meter
    with store.reading() as conn:
        dups = conn.execute(select(func.sum(PendingWindow.duplicates))).scalar_one()
    assert dups == 1


def test_writer_thread_commits_concurrent_submissions(store, settings, clock):
    """Forty threads submitting at once: every reading committed, every caller told its own result."""
    writer = IngestWriter(store, settings)
    writer.start()
    try:
        bodies = [
            p.normalized(f"urn:ngsi-ld:SMX:W{i % 5}", f"2026-01-01T00:00:{i:02d}Z", i) for i in range(40)
        ]
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda b: writer.submit(incoming(b, clock)), bodies))
    finally:
        writer.stop()
    assert all(r.accepted == 1 and r.duplicates == 0 for r in results)
    assert count(store, Reading) == 40 and count(store, Meter) == 5
