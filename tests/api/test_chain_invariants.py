"""Invariants of a meter's chain whatever a sender sends (issue 15): a window of 1,000 attributes anchors
within BigchainDB's size limit, a window before 1970 cannot stall the meter, conflicts show in verify."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta

from bigchaindb_driver import BigchainDB
from sqlalchemy import select

from connector.closer import close_due_windows
from connector.keystore import Keystore
from connector.ledger.metadata import MAX_METADATA_BYTES, OMITTED_KEY
from connector.ledger.writer import LedgerWriter
from connector.store.models import LedgerOutbox, Meter
from tests.connector import payloads as p

HEADERS = {**p.ORION_HEADERS, "Ngsiv2-AttrsFormat": "normalized"}


def notification(entity: str, when: str, values: dict[str, object]) -> str:
    meta = {"TimeInstant": {"type": "DateTime", "value": when}}
    attrs = {name: {"type": "Number", "value": v, "metadata": meta} for name, v in values.items()}
    return json.dumps({"subscriptionId": "s", "data": [{"id": entity, "type": "SMX", **attrs}]})


def anchor(store, settings, keystore: Keystore, url: str, tenant: str | None = None) -> None:
    """Run the real ledger writer until every outbox row (of `tenant`'s meters) is confirmed: waits on that
    condition (a busy machine makes the writer retry with backoff), fails at once on a dead row."""
    rows = select(LedgerOutbox.status).join(Meter, Meter.id == LedgerOutbox.meter_id)
    if tenant is not None:
        rows = rows.where(Meter.tenant == tenant)
    deadline = time.monotonic() + 120
    with LedgerWriter(settings.ledger, store, keystore, [url], lambda: datetime.now(UTC)) as writer:
        while True:
            writer.dispatch_once()
            with store.reading() as conn:
                statuses = conn.execute(rows).scalars().all()
            assert "dead" not in statuses
            if all(s == "confirmed" for s in statuses):
                return
            assert time.monotonic() < deadline, f"not confirmed: {statuses}"
            time.sleep(0.05)


def close_and_anchor(store, settings, ledger, tmp_path, now: datetime) -> None:
    assert close_due_windows(store, settings, now)
    anchor(store, settings, Keystore(tmp_path / "keys"), ledger.url)


def verify(client, entity: str) -> dict:
    resp = client.get(f"/v1/meters/{entity}/verify")
    assert resp.status_code == 200, resp.data
    return json.loads(resp.data)


def test_window_of_1000_attributes_is_anchored_and_verifies(client, store, api_settings, ledger, tmp_path):
    """1,000 numeric attributes in one window: metadata within the limit, anchored, verify ok."""
    values = {f"attribute_{k:04d}": k * 1.5 for k in range(1000)} | {"P": -84.891}
    resp = client.post("/notify", data=notification("m1000", "2019-03-18T16:01:00Z", values), headers=HEADERS)
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1001
    close_and_anchor(store, api_settings, ledger, tmp_path, datetime(2019, 3, 18, 17, tzinfo=UTC))
    with store.reading() as conn:
        tx_json = conn.execute(
            select(LedgerOutbox.tx_json).where(LedgerOutbox.operation == "TRANSFER")
        ).scalar()
        asset = conn.execute(select(Meter.asset_id)).scalar()
    metadata = json.loads(tx_json)["metadata"]
    assert len(json.dumps(metadata, separators=(",", ":")).encode()) <= MAX_METADATA_BYTES
    assert metadata["attributes"][0]["attr"] == "P"  # the configured power attribute is kept first
    assert metadata[OMITTED_KEY]["count"] == 1001 - len(metadata["attributes"])
    assert len(BigchainDB(ledger.url).transactions.get(asset_id=asset)) == 2
    answer = verify(client, "m1000")
    assert answer["verdict"] == "ok" and answer["counts"]["ok"] == 1


def test_a_window_before_1970_cannot_stall_the_meter(make_client, store, api_settings, ledger, tmp_path):
    """Allowed by ingest.earliest_observation, a 1969 window is anchored after its meter's CREATE."""
    ingest = dataclasses.replace(api_settings.ingest, earliest_observation="1960-01-01T00:00:00Z")
    settings = api_settings.replace(ingest=ingest)
    client = make_client(settings)
    for when in ("1969-12-31T23:50:00Z", "1970-01-01T00:05:00Z"):
        body = notification("old", when, {"P": 5})
        assert client.post("/notify", data=body, headers=HEADERS).get_json()["accepted"] == 1
    close_and_anchor(store, settings, ledger, tmp_path, datetime(1970, 1, 1, 1, tzinfo=UTC))
    answer = verify(client, "old")
    assert answer["verdict"] == "ok" and answer["counts"]["ok"] == 2
    assert answer["windows"][0]["start"].startswith("1969-12-31T23:45:00")


def test_verify_shows_a_windows_conflicts(client, store, api_settings, ledger, tmp_path):
    """The conflicting value is listed under its window; the window still verifies (first value kept)."""
    for value in (1, 2):
        body = notification("mc", "2019-03-18T16:01:00Z", {"P": value})
        assert client.post("/notify", data=body, headers=HEADERS).status_code == 200
    close_and_anchor(store, api_settings, ledger, tmp_path, datetime(2019, 3, 18, 17, tzinfo=UTC))
    answer = verify(client, "mc")
    assert answer["verdict"] == "ok"
    [window] = answer["windows"]
    assert [(c["attr"], c["value"]) for c in window["conflicts"]] == [("P", 2)]
    assert window["start"].startswith("2019-03-18T16:00:00")
    assert timedelta(minutes=15) == datetime.fromisoformat(window["end"]) - datetime.fromisoformat(
        window["start"]
    )


def test_bounded_summary_check_catches_a_changed_omitted_summary():
    """The verifier recomputes the left-out summaries' digest: a changed one no longer matches."""
    from connector.audit import LedgerWindow, summary_matches
    from connector.ledger.metadata import bound_attributes

    summary = [{"attr": f"a{k}", "kind": "stats", "max": str(k)} for k in range(50)]
    kept, omitted = bound_attributes(summary, 300)
    at = datetime(2024, 1, 1, tzinfo=UTC)
    on = LedgerWindow("tx", at, at, kept, "f", "c", "p", omitted)
    assert 0 < len(kept) < 50 and summary_matches(summary, on)
    changed = [*summary[:-1], {"attr": "a49", "kind": "stats", "max": "999"}]
    assert not summary_matches(changed, on)
    assert not summary_matches(summary[:-1], on)


def test_extreme_but_finite_numbers_close_anchor_and_verify(client, store, api_settings, ledger, tmp_path):
    """Doubles near their limits and numeric strings at the exponent bound close, anchor and verify (a
    window's energy ran to 300 digits and PostgreSQL refused VARCHAR(64), stalling the meter)."""
    values = {"P": 1.7e308, "E": "9e399", "stat": 5e-324}
    later = {"P": -1.7e308, "E": "-9e399", "stat": "1e-399"}
    for when, vals in (("2024-02-01T10:01:00Z", values), ("2024-02-01T10:14:00Z", later)):
        resp = client.post("/notify", data=notification("urn:x:extreme", when, vals), headers=HEADERS)
        assert resp.status_code == 200 and resp.get_json()["accepted"] == 3, resp.get_json()
    beyond = notification("urn:x:extreme", "2024-02-01T10:02:00Z", {"P": "1e401"})
    refused = client.post("/notify", data=beyond, headers=HEADERS)
    assert refused.status_code == 200 and refused.get_json()["rejected"], refused.get_json()
    close_and_anchor(store, api_settings, ledger, tmp_path, datetime(2024, 2, 1, 11, tzinfo=UTC))
    assert verify(client, "urn:x:extreme")["verdict"] == "ok"
