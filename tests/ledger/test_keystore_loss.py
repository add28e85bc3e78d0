"""Issue 19: a lost keystore never makes new keys for meters that already have an asset; the writer holds
their ledger work with a clear reason, `keys restore` of the backup wins over keys made since for meters
whose asset is owned by the backup's key, and every meter's chain continues (live dev ledger, both stores)."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from connector.api import queries
from connector.cli import main as cli_main
from connector.keystore import KEY_MISSING, Keystore, KeystoreError
from connector.store.models import LedgerOutbox, Meter

from .test_live_ledger import assert_linear, history, register, seal_window


def meter_refs(store) -> dict[int, str]:
    with store.reading() as conn:
        rows = conn.execute(select(Meter.id, Meter.tenant, Meter.service_path, Meter.entity_id)).all()
    return {m.id: f"{m.tenant}|{m.service_path}|{m.entity_id}" for m in rows}


def open_rows(store, meter_id: int) -> list:
    with store.reading() as conn:
        query = select(LedgerOutbox).where(
            LedgerOutbox.meter_id == meter_id, LedgerOutbox.status != "confirmed"
        )
        return list(conn.execute(query))


def test_lost_keystore_is_held_then_restored_and_chains_continue(
    store, store_url, clock, make_writer, keystore, devledger, tmp_path, monkeypatch, capsys
) -> None:
    """Lose the keystore, run, restore the backup: no silent new key, held work, every chain continues."""
    a, b = (register(store, f"urn:ngsi-ld:SMX:{n}", clock.now()) for n in ("A", "B"))
    for meter_id in (a, b):
        for w in (0, 1):
            seal_window(store, meter_id, w, clock.now())
    assert make_writer([devledger.url]).dispatch_once()["confirmed"] == 6
    keystore.backup(tmp_path / "backup.json")
    old = {m: keystore.public_key(ref) for m, ref in meter_refs(store).items()}

    shutil.rmtree(keystore.path)  # the keystore is lost; the connector starts again on an empty one
    lost = Keystore(keystore.path)
    for meter_id in (a, b):
        seal_window(store, meter_id, 2, clock.now())
    c = register(store, "urn:ngsi-ld:SMX:C", clock.now())  # a new meter: it may get a new key
    seal_window(store, c, 0, clock.now())
    writer = make_writer([devledger.url])
    writer.keystore = lost
    counts = writer.dispatch_once()
    refs = meter_refs(store)
    assert counts["confirmed"] == 2 and counts["blocked"] == 2, counts
    assert lost.public_key(refs[a]) is None and lost.public_key(refs[b]) is None
    for meter_id in (a, b):
        (held,) = open_rows(store, meter_id)
        assert held.last_error.startswith(KEY_MISSING) and old[meter_id] in held.last_error
        with store.reading() as conn:
            assert queries.meter_counts(conn, meter_id)["ledgerHeld"] == held.last_error

    made_since = lost.meter_keypair(refs[b])  # a key made for B after the loss (as earlier versions did)
    monkeypatch.setenv("CONNECTOR_KEYSTORE_PATH", str(keystore.path))
    monkeypatch.setenv("CONNECTOR_STORE_URL", store_url)
    assert cli_main(["keys", "restore", str(tmp_path / "backup.json")]) == 0
    out = capsys.readouterr().out
    assert "restored 1 entries" in out
    assert f"replaced the key of {refs[b]} ({made_since.public_key} -> {old[b]})" in out

    clock.advance(60)  # past the held rows' backoff
    counts = writer.dispatch_once()
    assert counts["confirmed"] == 2 and "blocked" not in counts, counts
    for meter_id, n in ((a, 4), (b, 4), (c, 2)):
        txs = history(devledger, store, meter_id)
        assert len(txs) == n and open_rows(store, meter_id) == []
        assert_linear(txs)
    assert lost.public_key(refs[a]) == old[a] and lost.public_key(refs[b]) == old[b]


def test_restore_still_refuses_a_conflict_it_cannot_decide(tmp_path) -> None:
    """A different key for a meter the store does not tie to the backup's key still stops the restore."""
    ks = Keystore(tmp_path / "ks")
    ks.meter_keypair("t|/|m")
    ks.backup(tmp_path / "b.json")
    other = Keystore(tmp_path / "other")
    mine = other.meter_keypair("t|/|m")
    with pytest.raises(KeystoreError, match="restore conflict"):
        other.restore(tmp_path / "b.json", lambda name, key: False)
    assert other.public_key("t|/|m") == mine.public_key
