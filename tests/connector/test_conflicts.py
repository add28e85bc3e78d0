"""Conflicts: a different value at the same meter, attribute and observation time is kept as evidence,
counted and shown, never silently dropped; the first value stays the fingerprinted one (issue 15)."""

from __future__ import annotations

import json

from sqlalchemy import select

from connector.ingest import Incoming, IngestConfig, write_batch
from connector.store.models import Reading, ReadingConflict
from ngsi.model import Headers
from ngsi.parse import parse_notification
from tests.connector import payloads as p
from tests.connector.test_real_traffic import metric

WHEN = "2019-03-18T16:01:00.000Z"


def body(*values: object, entity: str = "m1") -> str:
    """One normalized notification listing entity `entity` once per value, all at WHEN (a batch upsert)."""
    meta = {"TimeInstant": {"type": "DateTime", "value": WHEN}}
    data = [
        {"id": entity, "type": "SMX", "P": {"type": "Number", "value": v, "metadata": meta}} for v in values
    ]
    return json.dumps({"subscriptionId": "s", "data": data})


def post(client, text):
    headers = {**p.ORION_HEADERS, "Ngsiv2-AttrsFormat": "normalized"}
    return client.post("/notify", data=text, headers=headers)


def table(store, model):
    with store.reading() as conn:
        return conn.execute(select(model).order_by(model.id)).all()


def test_a_later_different_value_is_a_conflict_and_an_identical_one_a_duplicate(client, store):
    """1 then 2 then 1 then 2 at one time: 2 is a conflict (kept once), the re-sent 1 a duplicate."""
    assert post(client, body(1)).get_json()["accepted"] == 1
    second = post(client, body(2)).get_json()
    assert (second["accepted"], second["duplicates"]) == (0, 0)
    assert second["conflicts"] == [
        {"id": "m1", "attr": "P", "observedAt": "2019-03-18T16:01:00Z", "value": 2, "stored": 1}
    ]
    third = post(client, body(1)).get_json()
    assert (third["accepted"], third["duplicates"], third["conflicts"]) == (0, 1, [])
    assert len(post(client, body(2)).get_json()["conflicts"]) == 1
    assert [r.value_json for r in table(store, Reading)] == ["1"]
    assert [c.value_json for c in table(store, ReadingConflict)] == ["2"]
    assert metric(client, "connector_readings_total", outcome="conflict") == 2
    assert metric(client, "connector_readings_total", outcome="duplicate") == 1


def test_one_notification_listing_an_entity_twice_keeps_the_first(client, store):
    """An Orion-LD batch upsert lists one entity twice: the first value is stored, the second conflicts."""
    answer = post(client, body(5, 6, 5)).get_json()
    assert (answer["accepted"], answer["duplicates"], len(answer["conflicts"])) == (1, 1, 1)
    assert [r.value_json for r in table(store, Reading)] == ["5"]
    assert [c.value_json for c in table(store, ReadingConflict)] == ["6"]


def test_group_commit_tells_conflicts_from_duplicates(store, settings, clock):
    """In one batched transaction, later items repeating a key are duplicates or conflicts by content."""

    def item(value: object) -> Incoming:
        parsed = parse_notification(json.loads(body(value)), Headers("", "/"), clock.now())
        return Incoming(parsed, Headers("", "/", "c"), clock.now())

    with store.begin() as conn:
        write_batch(conn, [item(1)], IngestConfig.of(settings))
    with store.begin() as conn:
        results = write_batch(
            conn, [item(1), item(3), item(4), item(4), item("1")], IngestConfig.of(settings)
        )
    outcome = [(r.accepted, r.duplicates, [c["value"] for c in r.conflicts]) for r in results]
    assert outcome == [(0, 1, []), (0, 0, [3]), (0, 0, [4]), (0, 0, [4]), (0, 0, ["1"])]
    assert sorted(c.value_json for c in table(store, ReadingConflict)) == ['"1"', "3", "4"]


def test_readings_route_shows_conflicts_of_the_range(client, store):
    """GET readings lists the stored reading and, apart, the conflicting value of its time."""
    post(client, body(1))
    post(client, body(2))
    answer = json.loads(client.get("/v1/meters/m1/readings").data)
    assert [r["value"] for r in answer["readings"]] == [1]
    assert [(c["value"], c["attr"]) for c in answer["conflicts"]] == [(2, "P")]
    later = json.loads(client.get("/v1/meters/m1/readings?from=2019-03-18T16:02:00Z").data)
    assert later["conflicts"] == []


def test_running_writer_groups_concurrent_conflicts(store, settings, clock):
    """Twenty senders post different values of one key at once through the group-commit thread: one is
    stored, the nineteen others are conflicts, none is lost or counted twice."""
    from concurrent.futures import ThreadPoolExecutor

    from connector.ingest import IngestWriter

    writer = IngestWriter(store, IngestConfig.of(settings), max_batch=8)
    writer.start()
    try:

        def send(value: int):
            parsed = parse_notification(json.loads(body(value)), Headers("", "/"), clock.now())
            return writer.submit(Incoming(parsed, Headers("", "/"), clock.now()))

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(send, range(20)))
    finally:
        writer.stop()
    assert sum(r.accepted for r in results) == 1
    assert sum(len(r.conflicts) for r in results) == 19
    assert sum(r.duplicates for r in results) == 0
    [stored] = table(store, Reading)
    assert sorted(int(c.value_json) for c in table(store, ReadingConflict)) == sorted(
        set(range(20)) - {int(stored.value_json)}
    )
