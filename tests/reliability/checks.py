"""What an outsider can check after a fault: readings in the store, windows anchored once, linear chains.

Each check returns a list of problems (empty = the promise holds) so a test can assert `== []` and show
every violation at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from connector.ledger.transactions import signatures_valid, spent_tx_id
from connector.store.db import Store
from connector.store.models import LedgerOutbox, Meter, PendingWindow, Reading, Window


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def missing_readings(store: Store, acked: Iterable[tuple[str, datetime]]) -> list[tuple[str, datetime]]:
    """Acknowledged `(entity, observed_at)` pairs that are not in the store."""
    with store.reading() as conn:
        rows = conn.execute(
            select(Meter.entity_id, Reading.observed_at).join(Meter, Reading.meter_id == Meter.id)
        )
        stored = {(entity, _aware(when)) for entity, when in rows}
    return [a for a in acked if a not in stored]


def backlog(store: Store) -> dict[str, int]:
    """Work not done yet: windows still pending and ledger outbox rows still open."""
    with store.reading() as conn:
        pending = conn.scalar(select(func.count()).select_from(PendingWindow)) or 0
        open_rows = conn.scalar(
            select(func.count()).select_from(LedgerOutbox).where(LedgerOutbox.status.in_(("pending", "sent")))
        )
    return {"pending_windows": int(pending), "open_outbox": int(open_rows or 0)}


def drained(store: Store) -> bool:
    """True when every window is closed and every ledger outbox row is settled."""
    return backlog(store) == {"pending_windows": 0, "open_outbox": 0}


def outbox_problems(store: Store) -> list[str]:
    """Windows without exactly one confirmed TRANSFER, meters without a confirmed CREATE, dead rows."""
    problems: list[str] = []
    with store.reading() as conn:
        windows = [row.id for row in conn.execute(select(Window.id))]
        rows = list(
            conn.execute(
                select(
                    LedgerOutbox.window_id,
                    LedgerOutbox.operation,
                    LedgerOutbox.status,
                    LedgerOutbox.meter_id,
                    LedgerOutbox.last_error,
                )
            )
        )
        meters = [row.id for row in conn.execute(select(Meter.id))]
    confirmed = Counter(r.window_id for r in rows if r.operation == "TRANSFER" and r.status == "confirmed")
    for window_id in windows:
        if confirmed[window_id] != 1:
            problems.append(f"window {window_id} has {confirmed[window_id]} confirmed TRANSFERs")
    creates = Counter(r.meter_id for r in rows if r.operation == "CREATE" and r.status == "confirmed")
    problems += [f"meter {m} has {creates[m]} confirmed CREATEs" for m in meters if creates[m] != 1]
    problems += [
        f"dead outbox row: {r.operation} meter {r.meter_id}: {r.last_error}"
        for r in rows
        if r.status == "dead"
    ]
    return problems


def meter_rows(store: Store) -> list[Any]:
    """Every meter row (entity, keys, asset, head)."""
    with store.reading() as conn:
        return list(conn.execute(select(Meter.__table__)))


def windows_of(store: Store, meter_id: int) -> list[Any]:
    """The meter's closed windows, oldest first."""
    with store.reading() as conn:
        return list(
            conn.execute(select(Window.__table__).where(Window.meter_id == meter_id).order_by(Window.start))
        )


def chain_problems(client: Any, store: Store) -> list[str]:
    """For every meter: the ledger history is CREATE then TRANSFERs each spending the one before, signed,
    one TRANSFER per stored window (no window twice), fingerprint chain hashes linked, nothing forked."""
    problems: list[str] = []
    for meter in meter_rows(store):
        if meter.asset_id is None:
            problems.append(f"{meter.entity_id}: no asset on the ledger")
            continue
        txs = client.transactions.get(asset_id=meter.asset_id)
        problems += [f"{meter.entity_id}: {p}" for p in _linear(txs)]
        problems += [f"{meter.entity_id}: {p}" for p in _matches_windows(txs, windows_of(store, meter.id))]
        problems += [f"{meter.entity_id}: {p}" for p in _no_fork(client, meter.public_key, txs)]
    return problems


def _linear(txs: list[dict[str, Any]]) -> list[str]:
    if not txs or txs[0]["operation"] != "CREATE" or not signatures_valid(txs[0]):
        return ["history does not start with a valid CREATE"]
    problems = []
    for n, (prev, tx) in enumerate(zip(txs, txs[1:], strict=False), start=1):
        if tx["operation"] != "TRANSFER" or spent_tx_id(tx) != prev["id"]:
            problems.append(f"tx {n} does not spend tx {n - 1}")
        elif not signatures_valid(tx, prev):
            problems.append(f"tx {n} has an invalid signature")
    return problems


def _matches_windows(txs: list[dict[str, Any]], windows: list[Any]) -> list[str]:
    metas = [tx["metadata"] for tx in txs[1:]]
    starts = [m["window"]["start"] for m in metas]
    problems = [f"window {s} anchored {c} times" for s, c in Counter(starts).items() if c > 1]
    if len(metas) != len(windows):
        problems.append(f"{len(metas)} TRANSFERs on the ledger for {len(windows)} stored windows")
    for meta, window in zip(metas, windows, strict=False):
        if meta["chain_hash"] != window.chain_hash or meta["fingerprint"] != window.fingerprint:
            problems.append(f"TRANSFER for {meta['window']['start']} does not match the stored window")
    for prev, meta in zip(metas, metas[1:], strict=False):
        if meta["prev_chain_hash"] != prev["chain_hash"]:
            problems.append(f"fingerprint chain broken at {meta['window']['start']}")
    return problems


def _no_fork(client: Any, public_key: str, txs: list[dict[str, Any]]) -> list[str]:
    history = {tx["id"] for tx in txs}
    outputs = client.outputs.get(public_key)
    strays = {o["transaction_id"] for o in outputs} - history
    unspent = client.outputs.get(public_key, spent=False)
    problems = [f"{len(strays)} transactions of this key outside the asset's history"] if strays else []
    if len(unspent) != 1:
        problems.append(f"{len(unspent)} unspent outputs (a fork or a lost head)")
    return problems
