"""Meter keys BigchainDB's schema rejects (a public key of 42 base58 characters, about one in 50,000): never
made now, and a store whose meter got one before (its CREATE dead) is mended with a new key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from bigchaindb_driver.crypto import generate_keypair
from bigchaindb_driver.exceptions import BadRequest
from sqlalchemy import select, update

from connector.keystore import KeyPair, Keystore, _generate_meter_keypair, ledger_accepts
from connector.ledger.metadata import create_metadata, meter_ref
from connector.ledger.transactions import sign_create
from connector.store.db import Store
from connector.store.models import LedgerOutbox, Meter

from .test_live_ledger import assert_linear, history, register, seal_window

# generate_keypair(REJECTED_SEED) gives a public key of 42 characters (found trying sha256(str(i)) in turn).
REJECTED_SEED = hashlib.sha256(b"602048").digest()
SCHEMA_ERROR = "HTTP 400: Invalid transaction schema: '...' does not match '[1-9a-zA-Z^OIl]{43,44}'"


def test_the_seed_gives_a_key_the_ledger_rejects(devledger) -> None:
    """The premise, on the dev ledger (BigchainDB 2.2.2's schema): a CREATE signed with the key is refused."""
    pair = generate_keypair(REJECTED_SEED)
    assert len(pair.public_key) == 42 and not ledger_accepts(pair.public_key)
    tx = sign_create(
        KeyPair(pair.public_key, pair.private_key), {"data": {"meter": {"id": "urn:x"}}}, {"x": 1}
    )
    with pytest.raises(BadRequest, match="43,44"):
        devledger.client().transactions.send_commit(tx)


def test_a_new_key_the_ledger_would_reject_is_drawn_again() -> None:
    seeds: Iterator[bytes] = iter([REJECTED_SEED, hashlib.sha256(b"1").digest()])
    pair = _generate_meter_keypair(lambda: next(seeds))
    assert ledger_accepts(pair.public_key)
    assert pair.public_key == generate_keypair(hashlib.sha256(b"1").digest()).public_key


def _keep_rejected_key(keystore: Keystore, ref: str) -> str:
    """Put a key the ledger rejects in the keystore for `ref`, as a connector before the check made it."""
    bad = generate_keypair(REJECTED_SEED)
    keystore._open()
    keystore._overwrite("meter", ref, bad.public_key, bad.private_key.encode())
    return str(bad.public_key)


def test_an_unused_rejected_key_is_replaced_when_first_used(tmp_path) -> None:
    keystore = Keystore(tmp_path / "keystore")
    bad = _keep_rejected_key(keystore, "edream|/meters|urn:a")
    pair = keystore.meter_keypair("edream|/meters|urn:a")
    assert pair.public_key != bad and ledger_accepts(pair.public_key)
    assert Keystore(tmp_path / "keystore").meter_keypair("edream|/meters|urn:a") == pair  # kept on disk


def test_a_meter_whose_create_died_of_its_key_is_anchored_with_a_new_one(
    store: Store, clock, make_writer, keystore, devledger
) -> None:
    """A store as one made before the check left it: the meter's key rejected, its CREATE dead with the
    ledger's schema error, two windows waiting. The writer gives it a new key and anchors the whole chain."""
    meter_id = register(store, "urn:ngsi-ld:SMX:rejected", clock.now())
    other = register(store, "urn:ngsi-ld:SMX:fine", clock.now())
    for index in range(2):
        seal_window(store, meter_id, index, clock.now())
        seal_window(store, other, index, clock.now())
    with store.reading() as conn:
        meter = conn.execute(select(Meter.__table__).where(Meter.id == meter_id)).one()
    bad = _keep_rejected_key(keystore, meter_ref(meter))  # type: ignore[arg-type]
    bad_tx = sign_create(keystore.keypair_for(meter_ref(meter), bad), {"data": {}}, create_metadata(meter))  # type: ignore[arg-type]
    with store.begin() as conn:
        conn.execute(update(Meter).where(Meter.id == meter_id).values(public_key=bad))
        conn.execute(
            update(LedgerOutbox)
            .where(LedgerOutbox.meter_id == meter_id, LedgerOutbox.operation == "CREATE")
            .values(status="dead", attempts=1, tx_id=bad_tx["id"], last_error=SCHEMA_ERROR)
        )
    counts = make_writer([devledger.url]).dispatch_once()
    assert counts["confirmed"] == 6, counts
    with store.reading() as conn:
        renewed = conn.execute(select(Meter.public_key).where(Meter.id == meter_id)).scalar_one()
        create = conn.execute(
            select(LedgerOutbox.status, LedgerOutbox.last_error).where(
                LedgerOutbox.meter_id == meter_id, LedgerOutbox.operation == "CREATE"
            )
        ).one()
    assert renewed != bad and ledger_accepts(renewed)
    assert create.status == "confirmed"
    txs = history(devledger, store, meter_id)
    assert len(txs) == 3 and txs[0]["outputs"][0]["public_keys"] == [renewed]
    assert_linear(txs)
    assert keystore.keypair_for(meter_ref(meter), renewed).public_key == renewed  # type: ignore[arg-type]


def test_two_processes_replacing_a_rejected_key_at_once_get_one_pair(tmp_path, monkeypatch) -> None:
    """Two connector processes on one keystore (two Keystore objects: no lock in common) both find the
    meter's unused key rejected and replace it at once: both must sign with the same new key, the one on
    disk, or the meter's asset would be owned by a key the keystore no longer has."""
    import connector.keystore as ks

    ref = "edream|/meters|urn:race"
    first, second = Keystore(tmp_path / "keystore"), Keystore(tmp_path / "keystore")
    _keep_rejected_key(first, ref)
    draw = ks._generate_meter_keypair
    got: dict[str, object] = {}

    def interleaved(*args: object) -> object:
        if not got:  # the first process has read the rejected key; the second runs meanwhile
            got["second"] = None
            got["second"] = second.meter_keypair(ref)
        return draw(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ks, "_generate_meter_keypair", interleaved)
    pair = first.meter_keypair(ref)
    assert pair == got["second"]
    assert ledger_accepts(pair.public_key)
    assert Keystore(tmp_path / "keystore").meter_keypair(ref) == pair  # the pair on disk
    assert [e.name for e in Keystore(tmp_path / "keystore").list()] == [ref]  # the successor is no entry
