"""The query API's per-process caches (aggregate buckets, the ledger chain, recomputed windows) give the
answers of a fresh process, and never hide a change: a window anchored later, a tampered reading, a forged
TRANSFER."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from connector.audit import LedgerHistory, verify_meter
from connector.audit_cache import CachedLedger, _chain, chain_cache
from connector.keystore import Keystore
from connector.ledger.client import DriverClient
from connector.ledger.metadata import meter_ref
from connector.ledger.transactions import sign_transfer
from connector.lru import Lru
from connector.store.models import Meter
from tests.api import history as h
from tests.api import tamper


def _get(client, path: str, **params: str) -> dict:
    response = client.get(path, query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def _aggregates(client, entity_id: str) -> list[dict]:
    url = f"/v1/meters/{entity_id}/history"
    edge = {"from": (h.T0 + timedelta(minutes=30)).isoformat(), "to": (h.T0 + timedelta(hours=2)).isoformat()}
    return [
        _get(client, url, aggregate="day"),
        _get(client, url, aggregate="hour"),
        _get(client, url, aggregate="hour", order="desc", offset="1", limit="2"),
        _get(client, url, aggregate="hour", **edge),
        _get(client, url, aggregate="day", **edge),
    ]


def test_aggregate_from_kept_buckets_equals_a_fresh_fold(
    anchored, client, make_client, store, api_settings, ledger, tmp_path
):
    """Kept buckets answer as a fresh process does; a window anchored later into a kept hour and day
    changes the answer there, as the ledger's own fold does."""
    m = anchored(n=10)  # 2.5 hours from T0
    first = _aggregates(client, m.entity_id)
    assert _aggregates(client, m.entity_id) == first  # from the kept buckets
    assert (
        first[0]["buckets"]
        == _get(client, f"/v1/meters/{m.entity_id}/history", aggregate="day", source="ledger")["buckets"]
    )
    assert first[3]["total"] == 2 and first[3]["buckets"][0]["windows"] == 2  # 00:30-01:00 only, cut by from
    h.close_windows(store, api_settings, m.meter_id, 2, start=m.windows[-1] + h.WINDOW)
    h.anchor(store, api_settings, Keystore(tmp_path / "keys"), [ledger.url])
    again = _aggregates(client, m.entity_id)
    assert again == _aggregates(make_client(), m.entity_id)  # a fresh process: nothing kept
    assert again[0]["buckets"][0]["windows"] == 12 and again != first
    assert (
        again[0]["buckets"]
        == _get(client, f"/v1/meters/{m.entity_id}/history", aggregate="day", source="ledger")["buckets"]
    )


def test_reading_tampered_after_a_cached_verify_is_caught(anchored, client, store):
    """Verify (caches warm), change one reading, verify again: that window is tampered; put it back: ok."""
    m = anchored(n=5)
    original = tamper.snapshot(store, m.meter_id)
    assert _get(client, f"/v1/meters/{m.entity_id}/verify")["verdict"] == "ok"
    assert len(client.app.svc.sealed) == 5 and len(client.app.svc.chains) == 1
    for change in (tamper.shift_timestamp, tamper.delete_reading, tamper.insert_reading):
        change(store, m.meter_id, m.windows[2])
        body = _get(client, f"/v1/meters/{m.entity_id}/verify")
        assert [w["status"] for w in body["windows"]] == ["ok", "ok", "tampered", "ok", "ok"], change
        assert "fingerprint differs" in body["windows"][2]["problems"][0]
        tamper.restore(store, m.meter_id, original)
        assert _get(client, f"/v1/meters/{m.entity_id}/verify")["verdict"] == "ok"


def test_forged_transfer_after_a_cached_verify_is_seen(anchored, client, store, ledger, tmp_path):
    """A TRANSFER added to the asset after a cached verify (here a forged window the store never had) is
    read: the chain's head moved."""
    m = anchored(n=3)
    assert _get(client, f"/v1/meters/{m.entity_id}/verify")["verdict"] == "ok"
    with store.reading() as conn:
        meter = conn.execute(select(Meter).where(Meter.id == m.meter_id)).one()
    keys = Keystore(tmp_path / "keys").keypair_for(meter_ref(meter), meter.public_key)
    ledger_client = DriverClient([ledger.url], client.app.svc.settings.ledger)
    last = ledger_client.last_transfer(meter.asset_id)
    forged = dict(last["metadata"])
    start = m.windows[-1] + h.WINDOW
    forged["window"] = {"start": start.isoformat(), "end": (start + h.WINDOW).isoformat()}
    forged["fingerprint"] = "0" * 64
    ledger_client.send(sign_transfer(keys, meter.asset_id, last["id"], forged), "commit")
    body = _get(client, f"/v1/meters/{m.entity_id}/verify")
    assert [w["status"] for w in body["windows"]] == ["ok", "ok", "ok", "missing_off_chain"]


@pytest.mark.parametrize("max_follow", [200, 1])
def test_chain_followed_or_read_again_equals_a_fresh_read(
    anchored, store, api_settings, ledger, tmp_path, max_follow
):
    """After windows are anchored, the cached chain (followed back from the new head, or read in full when
    that is too far) equals the chain a fresh cache reads."""
    m = anchored(n=3)
    with store.reading() as conn:
        asset_id = conn.execute(select(Meter.asset_id).where(Meter.id == m.meter_id)).scalar_one()
    client = DriverClient([ledger.url], api_settings.ledger)
    reader = CachedLedger(client, chain_cache(), max_follow=max_follow)
    before = reader.chain(asset_id)
    h.close_windows(store, api_settings, m.meter_id, 3, start=m.windows[-1] + h.WINDOW)
    h.anchor(store, api_settings, Keystore(tmp_path / "keys"), [ledger.url])
    after = reader.chain(asset_id)
    fresh = CachedLedger(client, chain_cache()).chain(asset_id)
    assert after == fresh and after.head != before.head and len(after.entries) == 6
    assert after.entries[:3] == before.entries and after.ordered


@pytest.mark.parametrize("lo", [0, 1, 3, 5])
@pytest.mark.parametrize("hi", [2, 4, 6])
def test_a_range_of_the_cached_chain_verifies_as_the_whole_chain(settings, lo, hi):
    """The part of a cached chain handed out for [from, to) (with the window before it) gives the same
    verdicts, broken links included, as the whole chain."""
    seed, spec, ledger, off = h.chain_of(settings, 6, link_broken_at=3)
    chain = _chain("head", None, ledger)
    start, end = h.T0 + lo * h.WINDOW, h.T0 + hi * h.WINDOW
    whole = verify_meter(off, LedgerHistory(ledger, from_genesis=True), seed, spec, start, end)
    part = verify_meter(off, chain.history(start, end), seed, spec, start, end)
    assert [(v.start, v.status, v.problems) for v in part] == [(v.start, v.status, v.problems) for v in whole]
    assert len(chain.history(start, end).windows) == max(hi - max(lo - 1, 0), 0)


def test_lru_keeps_the_most_recent_within_its_weight():
    """Past its capacity the least recently used entries go; a value heavier than the whole is not kept."""
    lru: Lru[str] = Lru(5, weigh=len)
    lru.put("a", "xx")
    lru.put("b", "yy")
    assert lru.get("a") == "xx"  # now b is the least recent
    lru.put("c", "zz")
    assert lru.get("b") is None and lru.get("a") == "xx" and lru.get("c") == "zz" and lru.weight == 4
    lru.put("d", "toolong")
    assert lru.get("d") is None and len(lru) == 2


def test_lru_shared_by_threads_stays_within_its_capacity():
    """Eight threads putting and getting at once leave a consistent, bounded cache."""
    lru: Lru[int] = Lru(100)

    def work(k: int) -> None:
        for i in range(2000):
            lru.put((k, i % 150), i)
            lru.get((k, (i * 7) % 150))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lru) == lru.weight == 100
