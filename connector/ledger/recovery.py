"""Re-discovering a meter's chain head from the ledger when the store's view is stale, and finding a meter's
key after the keystore was lost.

This happens when the store is restored from an older copy: the ledger already holds TRANSFERs the store
does not know about, so the next TRANSFER signed from the local head is a double spend. Instead of forking,
the writer reads the asset's history and the meter key's unspent outputs, marks the store's windows that
are already on the ledger as confirmed, moves the head to the real unspent output, and re-signs the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, and_, func, select, update

from connector.keystore import LEDGER_KEY_LENGTHS, KeyPair, Keystore
from connector.ledger.client import LedgerClient
from connector.ledger.metadata import WINDOW_SCHEMA, iso, meter_ref
from connector.ledger.outbox import CREATE, OPEN, update_row
from connector.ledger.transactions import serialize
from connector.store.db import Store
from connector.store.models import LedgerOutbox, Meter, Window

log = structlog.get_logger("connector.ledger")


class HeadUnknown(Exception):
    """The ledger does not (yet) show a usable head for this meter's asset."""


@dataclass(frozen=True)
class Recovered:
    """The outcome of a recovery: the real head, and how many rows were found on the ledger or re-based."""

    head: str
    adopted: int
    rebased: int


def find_head(client: LedgerClient, asset_id: str, public_key: str) -> tuple[str, list[dict[str, Any]]]:
    """The id of the asset's transaction whose output is unspent, and the asset's history."""
    history = client.asset_history(asset_id)
    if not history:
        raise HeadUnknown(f"asset {asset_id} is not on the ledger")
    ids = {tx["id"] for tx in history}
    unspent = [o["transaction_id"] for o in client.unspent(public_key) if o["transaction_id"] in ids]
    if len(unspent) != 1:
        raise HeadUnknown(f"asset {asset_id} has {len(unspent)} unspent outputs for its key, expected 1")
    return unspent[0], history


def recover(store: Store, client: LedgerClient, meter_id: int, now: datetime) -> Recovered:
    """Align the store with the ledger for one meter; see the module docstring. Raises HeadUnknown."""
    with store.reading() as conn:
        meter = conn.execute(select(Meter.asset_id, Meter.public_key).where(Meter.id == meter_id)).one()
    if meter.asset_id is None or meter.public_key is None:
        raise HeadUnknown("the meter's asset is not confirmed yet")
    head, history = find_head(client, meter.asset_id, meter.public_key)
    on_ledger = {tx["id"]: tx for tx in history}
    by_window = {
        (tx["metadata"]["window"]["start"], tx["metadata"]["chain_hash"]): tx
        for tx in history
        if tx["operation"] == "TRANSFER" and (tx.get("metadata") or {}).get("schema") == WINDOW_SCHEMA
    }
    adopted = rebased = 0
    with store.begin() as conn:
        for row in _open_rows(conn, meter_id):
            tx = on_ledger.get(row.tx_id) if row.tx_id else None
            if tx is None and row.start is not None:  # signed differently, but this window is on the ledger
                tx = by_window.get((iso(row.start), row.chain_hash))
            if tx is not None:
                _adopt(conn, row.id, tx, client.block_height(tx["id"]), now)
                adopted += 1
            elif row.tx_id is not None:
                update_row(conn, row.id, now, tx_id=None, tx_json=None, status="pending", next_attempt_at=now)
                rebased += 1
        conn.execute(update(Meter).where(Meter.id == meter_id).values(ledger_head_tx=head))
    log.warning("ledger.head_recovered", meter_id=meter_id, head=head, adopted=adopted, rebased=rebased)
    return Recovered(head, adopted, rebased)


def _open_rows(conn: Connection, meter_id: int) -> list[Any]:
    query = (
        select(LedgerOutbox.id, LedgerOutbox.tx_id, Window.start, Window.chain_hash)
        .outerjoin(Window, Window.id == LedgerOutbox.window_id)
        .where(LedgerOutbox.meter_id == meter_id, LedgerOutbox.status.in_(OPEN))
        .order_by(LedgerOutbox.seq)
    )
    return list(conn.execute(query))


def _adopt(conn: Connection, row_id: int, tx: dict[str, Any], height: int | None, now: datetime) -> None:
    update_row(
        conn,
        row_id,
        now,
        status="confirmed",
        tx_id=tx["id"],
        tx_json=serialize(tx),
        block_height=height,
        confirmed_at=now,
        last_error=None,
    )


# -- keys after a lost keystore ------------------------------------------------------------------------------


def signing_keys(keystore: Keystore, meter: Any) -> KeyPair:
    """The key pair to sign `meter`'s next transaction with.

    A meter without a public key in the store has no asset yet: its key is made on first use. A meter
    with one (its CREATE was signed with that key) is only ever signed for with that very key: when the
    keystore lacks it (lost, not yet restored) this raises KeyMissing, and the writer holds the meter's
    ledger work with that reason instead of making a new key its asset would never accept.
    """
    ref = meter_ref(meter)
    if meter.public_key is None:
        return keystore.meter_keypair(ref)
    return keystore.keypair_for(ref, meter.public_key)


def asset_keys(store: Store) -> dict[str, str]:
    """{keystore name: public key} of every meter whose CREATE was signed, i.e. the key its asset is
    owned by (what `keys restore` lets a backup's key win with)."""
    query = select(Meter.tenant, Meter.service_path, Meter.entity_id, Meter.public_key).where(
        Meter.public_key.is_not(None)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    return {
        meter_ref(Meter(tenant=m.tenant, service_path=m.service_path, entity_id=m.entity_id)): str(
            m.public_key
        )
        for m in rows
    }


# -- keys the ledger rejects ------------------------------------------------------------------------------

RENEWED = "a new key: the ledger's schema rejects the meter's earlier one"


def reopen_create(conn: Connection, outbox: Any, owner: Any, now: datetime, reason: str) -> None:
    """Put the CREATE among the rows of `outbox` (a model: the meters' or the tenants' roots' outbox) that
    `owner` selects back to pending and unsigned, to be signed again, and make the owner's open rows due."""
    create = update(outbox).where(owner, outbox.operation == CREATE)
    conn.execute(
        create.values(
            status="pending", attempts=0, tx_id=None, tx_json=None, next_attempt_at=now, last_error=reason,
            updated_at=now,
        )
    )  # fmt: skip
    waiting = update(outbox).where(owner, outbox.status.in_(OPEN))
    conn.execute(waiting.values(next_attempt_at=now, updated_at=now))


def renew_rejected_keys(store: Store, keystore: Keystore, now: datetime) -> int:
    """Give each meter whose CREATE was signed with a key BigchainDB's schema rejects (keystore's
    `ledger_accepts`; made before keys were checked) a new key, and its CREATE back to pending: such a
    CREATE was rejected or will be, so it is dead or about to be, and every window of the meter waits on it.

    Safe: no ledger transaction can be owned by such a key, so the meter has no asset to lose. One store
    transaction per meter, the meter row locked and the key checked again under the lock; the new key is in
    the keystore (written and fsynced) before the store names it. Returns how many meters got a new key.
    """
    rejected = and_(
        Meter.asset_id.is_(None),
        Meter.public_key.is_not(None),
        func.length(Meter.public_key).not_in(LEDGER_KEY_LENGTHS),
    )
    with store.reading() as conn:
        ids = list(conn.execute(select(Meter.id).where(rejected)).scalars())
    renewed = 0
    for meter_id in ids:
        with store.begin() as conn:
            meter = conn.execute(
                select(Meter.__table__).where(Meter.id == meter_id, rejected).with_for_update()
            ).one_or_none()
            if meter is None:  # another process renewed it meanwhile
                continue
            old = meter.public_key
            pair = keystore.replace_meter_keypair(meter_ref(meter), old)  # type: ignore[arg-type] # a row
            conn.execute(update(Meter).where(Meter.id == meter_id).values(public_key=pair.public_key))
            reopen_create(conn, LedgerOutbox, LedgerOutbox.meter_id == meter_id, now, RENEWED)
        renewed += 1
        log.warning("ledger.key_renewed", meter_id=meter_id, rejected_key=old, public_key=pair.public_key)
    return renewed
