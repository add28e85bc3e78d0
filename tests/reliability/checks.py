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

from connector.ethereum.contract import chain_head, energy_to_wh, meter_key, unix_seconds
from connector.ethereum.models import EthTransaction, RelayOutbox
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


def kept_problems(store: Store, acked: Iterable[tuple[str, datetime]], client: Any) -> list[str]:
    """The promises every fault test checks at its end: each acknowledged reading is in the store, the
    ledger outbox holds each window once (`outbox_problems`), the chains are unbroken (`chain_problems`)."""
    missing = [f"acknowledged reading not stored: {r}" for r in missing_readings(store, acked)]
    return missing + outbox_problems(store) + chain_problems(client, store)


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


def relay_backlog(store: Store) -> dict[str, int]:
    """Relay work not done yet: windows without a relay row, relay rows not final or dead."""
    with store.reading() as conn:
        windows = conn.scalar(select(func.count()).select_from(Window)) or 0
        relays = conn.scalar(select(func.count()).select_from(RelayOutbox)) or 0
        open_rows = conn.scalar(
            select(func.count()).select_from(RelayOutbox).where(RelayOutbox.status.in_(("pending", "sent")))
        )
    return {"unrelayed_windows": int(windows - relays), "open_relays": int(open_rows or 0)}


def relay_states(store: Store) -> dict[str, Any]:
    """Relay rows per status with their last errors, and backlogs: shown when a wait times out."""
    with store.reading() as conn:
        query = select(RelayOutbox.status, RelayOutbox.last_error, func.count()).group_by(
            RelayOutbox.status, RelayOutbox.last_error
        )
        rows = [f"{status} x{n}: {error}" for status, error, n in conn.execute(query)]
    return {**backlog(store), **relay_backlog(store), "relay_rows": rows}


def final_relays(store: Store) -> int:
    """How many windows are recorded on chain with enough confirmations."""
    with store.reading() as conn:
        query = select(func.count()).select_from(RelayOutbox).where(RelayOutbox.status == "final")
        return int(conn.scalar(query) or 0)


def relayed(store: Store) -> bool:
    """True when every window has a relay row and no relay row is still pending or sent."""
    return relay_backlog(store) == {"unrelayed_windows": 0, "open_relays": 0}


def relay_problems(store: Store, contract: Any) -> list[str]:
    """Windows without exactly one final relay (row and on-chain IntervalRecorded), conflicts, dead rows,
    and meters whose on-chain chain head differs from the one their stored windows give."""
    with store.reading() as conn:
        windows = list(conn.execute(select(Window.__table__).order_by(Window.meter_id, Window.start)))
        meters = {m.id: m for m in conn.execute(select(Meter.__table__))}
        relays = list(conn.execute(select(RelayOutbox.__table__)))
        final = select(EthTransaction.id).where(EthTransaction.status == "final")
        final_txs = set(conn.execute(final).scalars())
    keys = {m.id: meter_key(m.tenant, m.service_path, m.entity_id) for m in meters.values()}
    expected = {(keys[w.meter_id], unix_seconds(_aware(w.start))): f"window {w.id}" for w in windows}
    recorded = Counter(
        (bytes(e["args"]["meterId"]), int(e["args"]["intervalStart"]))
        for e in contract.events.IntervalRecorded().get_logs(from_block=0)
    )
    conflicts = len(contract.events.RecordConflict().get_logs(from_block=0))
    problems = _relay_row_problems([w.id for w in windows], relays, final_txs)
    problems += _record_problems(expected, recorded, conflicts)
    for meter_id, key in keys.items():
        links = [
            (unix_seconds(_aware(w.start)), energy_to_wh(w.energy_wh), bytes.fromhex(w.fingerprint))
            for w in windows
            if w.meter_id == meter_id
        ]
        if contract.functions.chainHead(key).call() != chain_head(links):
            problems.append(f"meter {meters[meter_id].entity_id}: on-chain head differs from the store's")
    return problems


def _relay_row_problems(window_ids: list[int], relays: list[Any], final_txs: set[int]) -> list[str]:
    rows = Counter(r.window_id for r in relays)
    problems = [f"window {w} has {rows[w]} relay rows" for w in window_ids if rows[w] != 1]
    problems += [
        f"relay of window {r.window_id} is {r.status} ({r.last_error})" for r in relays if r.status != "final"
    ]
    problems += [
        f"relay of window {r.window_id} without a final transaction"
        for r in relays
        if r.status == "final" and r.transaction_id not in final_txs
    ]
    return problems


def _record_problems(
    expected: dict[tuple[bytes, int], str], recorded: Counter[Any], conflicts: int
) -> list[str]:
    problems = [
        f"{label}: {recorded[k]} IntervalRecorded events" for k, label in expected.items() if recorded[k] != 1
    ]
    strays = sum(n for k, n in recorded.items() if k not in expected)
    problems += [f"{strays} IntervalRecorded events for no stored window"] if strays else []
    return problems + ([f"{conflicts} RecordConflict events"] if conflicts else [])
