"""Tamper verification against a live dev ledger: seed 004's experiment, single-reading tampering,
missing windows, late readings, a broken chain link, and the `verify` command."""

from __future__ import annotations

import io
import random
from argparse import Namespace
from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from connector.audit import LedgerHistory, verify_meter
from connector.commands.verify import handler
from connector.settings import Settings
from connector.store.models import LedgerOutbox, Reading, Window
from tests.api import history as h
from tests.api import tamper


def _verify(client, entity_id: str, **params: str) -> dict:
    response = client.get(f"/v1/meters/{entity_id}/verify", query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def _flagged(body: dict) -> set[str]:
    return {w["start"] for w in body["windows"] if w["status"] != "ok"}


def test_untouched_history_verifies_ok_and_lists_late_readings(anchored, client, store):
    """Every window of an untouched history is ok; a late reading is listed, not counted as tampering."""
    m = anchored(n=6)
    h.add_late_reading(store, m.meter_id, m.windows[2])
    body = _verify(client, m.entity_id)
    assert body["verdict"] == "ok"
    assert [w["status"] for w in body["windows"]] == ["ok"] * 6
    assert [len(w["lateReadings"]) for w in body["windows"]] == [0, 0, 1, 0, 0, 0]
    assert body["windows"][2]["lateReadings"][0]["late"] is True


def test_late_reading_with_a_huge_integer_value_is_listed_exactly(anchored, client, store):
    """A late reading whose value is an integer beyond 64 bits is listed with its exact value (no 5xx)."""
    m = anchored(n=2)
    huge = str(10**30)
    h.put_reading(
        store, m.meter_id, m.windows[1], timedelta(minutes=3, seconds=31, microseconds=5), huge, late=True
    )
    response = client.get(f"/v1/meters/{m.entity_id}/verify")
    assert response.status_code == 200 and response.mimetype == "application/json"
    (late,) = response.json["windows"][1]["lateReadings"]
    assert late["value"] == 10**30 and late["number"] == huge
    assert late["observedAt"] == (m.windows[1] + timedelta(minutes=3, seconds=31, microseconds=5)).isoformat()


def test_salt_and_pepper_noise_is_flagged_in_exactly_the_altered_windows(anchored, client, store):
    """Seed 004's experiment: noise in 10-40 % of the windows; verify flags exactly those windows."""
    m = anchored(n=30)
    original = tamper.snapshot(store, m.meter_id)
    rng = random.Random(2019)
    for fraction in (0.1, 0.2, 0.3, 0.4):
        altered = tamper.salt_and_pepper(store, m.meter_id, m.windows, fraction, rng)
        body = _verify(client, m.entity_id)
        assert len(altered) == round(30 * fraction)
        assert _flagged(body) == {ws.isoformat() for ws in altered}, fraction
        assert {w["status"] for w in body["windows"] if w["start"] in _flagged(body)} == {"tampered"}
        assert body["verdict"] == "failed"
        assert body["counts"]["tampered"] == len(altered) and body["counts"]["ok"] == 30 - len(altered)
        tamper.restore(store, m.meter_id, original)
    assert _verify(client, m.entity_id)["verdict"] == "ok"


@pytest.mark.parametrize("change", [tamper.delete_reading, tamper.insert_reading, tamper.shift_timestamp])
def test_a_single_changed_reading_is_caught(anchored, client, store, change):
    """Deleting one reading, inserting one, or shifting one timestamp by a second flags that window only."""
    m = anchored(n=5)
    change(store, m.meter_id, m.windows[3])
    body = _verify(client, m.entity_id)
    assert _flagged(body) == {m.windows[3].isoformat()}
    assert "fingerprint differs" in body["windows"][3]["problems"][0]
    assert body["windows"][3]["ledger"]["fingerprint"] != body["windows"][3]["recomputed"]["fingerprint"]


def test_window_not_on_the_ledger_and_window_lost_off_chain(anchored, client, store, api_settings):
    """A closed but unanchored window is missing_on_ledger; an anchored window deleted from the store is
    missing_off_chain."""
    m = anchored(n=4)
    h.close_windows(store, api_settings, m.meter_id, 1, start=m.windows[-1] + h.WINDOW, anchor=False)
    lost = m.windows[1]
    with store.begin() as conn:
        wid = conn.execute(
            select(Window.id).where(Window.meter_id == m.meter_id, Window.start == lost)
        ).scalar()
        conn.execute(delete(LedgerOutbox).where(LedgerOutbox.window_id == wid))
        conn.execute(delete(Reading).where(Reading.meter_id == m.meter_id, Reading.window_start == lost))
        conn.execute(delete(Window).where(Window.id == wid))
    body = _verify(client, m.entity_id)
    statuses = [w["status"] for w in body["windows"]]
    assert statuses == ["ok", "missing_off_chain", "ok", "ok", "missing_on_ledger"]
    assert body["verdict"] == "failed"


def test_range_limits_the_windows_verified(anchored, client, store):
    """from/to select window starts in [from, to); tampering outside the range is not reported."""
    m = anchored(n=6)
    tamper.delete_reading(store, m.meter_id, m.windows[0])
    body = _verify(client, m.entity_id, **{"from": m.windows[2].isoformat(), "to": m.windows[4].isoformat()})
    assert [w["start"] for w in body["windows"]] == [m.windows[2].isoformat(), m.windows[3].isoformat()]
    assert body["verdict"] == "ok"


def test_broken_chain_link_is_reported(settings):
    """A window whose anchored prev_chain_hash is not its predecessor's chain hash is broken_chain."""
    seed, spec, ledger, off = h.chain_of(settings, 3, link_broken_at=2)  # window 2 chained elsewhere
    verdicts = verify_meter(off, LedgerHistory(ledger, from_genesis=True), seed, spec)
    assert [v.status for v in verdicts] == ["ok", "ok", "broken_chain"]
    assert "chain link broken" in verdicts[2].problems[0]


def test_verify_answers_404_400_and_503(anchored, client, make_client, api_settings):
    """Unknown meter: 404; from after to: 400; an unreachable ledger: 503 with a message, not a 500."""
    m = anchored(n=2)
    assert client.get("/v1/meters/nope/verify").status_code == 404
    bad = client.get(
        f"/v1/meters/{m.entity_id}/verify", query_string={"from": "2024-03-02", "to": "2024-03-01"}
    )
    assert bad.status_code == 400 and "from" in bad.json["errors"]
    huge = client.get(
        f"/v1/meters/{m.entity_id}/verify", query_string={"from": "2020-01-01", "to": "2024-01-01"}
    )
    assert huge.status_code == 400 and "narrow from/to" in huge.json["description"]
    ledger = api_settings.ledger.__class__(**{**api_settings.ledger.__dict__, "timeout": 0.5})
    down = make_client(api_settings.replace(ledger=ledger))
    down.app.svc.ledger_urls = ["http://127.0.0.1:9"]
    answer = down.get(f"/v1/meters/{m.entity_id}/verify")
    assert answer.status_code == 503 and "ledger cannot be read" in answer.json["description"]


def _cli(settings: Settings, url: str, **kw: object) -> tuple[int, str]:
    ledger = settings.ledger.__class__(**{**settings.ledger.__dict__, "urls": [url]})
    args = Namespace(meter="urn:meter:1", from_=None, to=None, tenant="", servicepath="/#", all=False)
    for key, value in kw.items():
        setattr(args, key, value)
    out = io.StringIO()
    return handler(args, settings.replace(ledger=ledger), out), out.getvalue()


def test_verify_command_takes_any_tenant_case(anchored, api_settings, ledger):
    """`verify --tenant CityC` checks the meter that ingest filed under tenant cityc."""
    anchored(n=2, tenant="cityc")
    status, text = _cli(api_settings, ledger.url, tenant="CityC")
    assert status == 0 and "OK (2 ok)" in text


def test_verify_command_exit_status_and_table(anchored, store, api_settings, ledger):
    """The command exits 0 on an untouched meter, 1 with a table row for a tampered window."""
    m = anchored(n=4)
    status, text = _cli(api_settings, ledger.url)
    assert status == 0 and "OK (4 ok)" in text
    tamper.shift_timestamp(store, m.meter_id, m.windows[1])
    status, text = _cli(api_settings, ledger.url, from_=(m.windows[0] + timedelta(minutes=1)).isoformat())
    assert status == 1
    assert m.windows[1].isoformat() in text and "tampered" in text and "FAILED (2 ok, 1 tampered)" in text
    assert _cli(api_settings, ledger.url, meter="urn:nope")[0] == 1
    assert _cli(api_settings, ledger.url, tenant="bad tenant")[0] == 1
    assert _cli(api_settings, ledger.url, from_="yesterday")[0] == 2
