"""The verifier's per-process caches: each asset's parsed chain of window TRANSFERs, and recomputed windows
memoized on the exact stored rows.

Reading an asset's whole history costs time in proportion to its length (a year of 15-minute windows is
35,041 transactions, 56 MB of JSON, over a second of CPU), and the verify route needs it on every request.
The cache keeps the parsed windows of an asset stamped with the id of its last transaction. Before each use
it asks the ledger for the asset's last TRANSFER (BigchainDB's `last_tx=true`, one small answer): an
unchanged id means an unchanged history, because a transaction's id is the hash of its body, which names
the transaction it spends, and so on back to the CREATE. The cache only keeps histories it has checked to
be such a single chain (the CREATE, then each TRANSFER spending the one before). When the last TRANSFER has
moved on, the new ones are followed back to the cached head (one read each, for a few new windows), else
the whole history is read again. What the verifier compares is therefore always the chain the ledger's
current head commits to.

The off-chain side is read on every request. Recomputing a window (`seal_window`) is a pure function of its
stored on-time rows, its bounds, the previous chain hash and the meter's attribute settings; `SealMemo`
keeps its result under a 256-bit BLAKE2b digest of exactly those rows as the store returned them, with the
rest of the inputs, so a changed, added, removed or re-timed reading is a different key and is recomputed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from connector.audit import (
    DriverLedger,
    LedgerHistory,
    LedgerWindow,
    OffChainWindow,
    collector_paused,
    parse_transfer,
    seal_off_chain,
)
from connector.core.fingerprint import ClosedWindow
from connector.core.kinds import AttributeSpec
from connector.ledger.client import DriverClient
from connector.lru import Lru

# New transactions followed back from the ledger's head, one read each, before the whole history is read
# instead: two days of a meter's windows (a year's full read costs about as much as 200 reads on loopback).
MAX_FOLLOW = 200
# Windows the chain cache holds over all assets (about 1 kB each, measured: at most 70 MB, two years of
# one meter's windows); the least recently verified asset goes first.
CHAIN_CACHE_WINDOWS = 70_000
# Recomputed windows kept (about 1.2 kB each, measured: at most 50 MB, a month of 14 meters).
SEAL_CACHE_WINDOWS = 40_000


@dataclass(frozen=True)
class Chain:
    """An asset's window TRANSFERs in chain order, as read when `head` was its last transaction."""

    head: str  # id of the last transaction read (the CREATE's, which is the asset id, before any TRANSFER)
    entries: tuple[Packed, ...]  # the windows, packed
    ordered: bool  # window starts never decrease along the chain, so a range is found by bisection

    def history(self, from_: datetime | None, to: datetime | None) -> LedgerHistory:
        """The windows starting in [from_, to) and the one before them in the chain (LedgerReader's
        promise); the whole chain when it is not in start order."""
        lo, hi = 0, len(self.entries)
        if self.ordered and from_ is not None:
            lo = max(bisect_left(self.entries, from_, key=_start) - 1, 0)
        if self.ordered and to is not None:
            hi = bisect_left(self.entries, to, key=_start)
        return LedgerHistory([_unpack(e) for e in self.entries[lo:hi]], from_genesis=lo == 0)


# A window as a tuple of strings, times and JSON bytes: a year of them is 35,000 objects the garbage
# collector stops walking, instead of 400,000 dicts and lists it walked on every full collection.
Packed = tuple[datetime, datetime, str, str, str, str, Any, Any]


def _pack(w: LedgerWindow) -> Packed:
    summary, omitted = _json_bytes(w.summary), _json_bytes(w.omitted)
    return (w.start, w.end, w.tx_id, w.fingerprint, w.chain_hash, w.prev_chain_hash, summary, omitted)


def _unpack(e: Packed) -> LedgerWindow:
    start, end, tx_id, fingerprint, chain_hash, prev, summary, omitted = e
    return LedgerWindow(
        tx_id, start, end, _from_bytes(summary), fingerprint, chain_hash, prev, _from_bytes(omitted)
    )


def _json_bytes(value: Any) -> Any:
    # orjson's bytes when they read back as an equal value; the value itself otherwise (an integer beyond
    # 64 bits, a NaN: only a damaged ledger has them).
    if value is None:
        return None
    try:
        packed = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return value
    return packed if orjson.loads(packed) == value else value


def _from_bytes(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, bytes) else value


def _start(e: Packed) -> datetime:
    return e[0]


def chain_cache(capacity: int = CHAIN_CACHE_WINDOWS) -> Lru[Chain]:
    """An empty cache of chains bounded to `capacity` windows in all."""
    return Lru(capacity, weigh=lambda chain: len(chain.entries) + 1)


class CachedLedger:
    """LedgerReader over bigchaindb-driver that reuses the chains in `cache` while their head holds."""

    def __init__(self, client: DriverClient, cache: Lru[Chain], max_follow: int = MAX_FOLLOW) -> None:
        self.client, self.cache, self.max_follow = client, cache, max_follow

    def window_transfers(self, asset_id: str, from_: datetime | None, to: datetime | None) -> LedgerHistory:
        return self.chain(asset_id).history(from_, to)

    def chain(self, asset_id: str) -> Chain:
        """The asset's chain as the ledger holds it now; raises LedgerReadError."""
        last = DriverLedger.call(self.client.last_transfer, asset_id)
        cached = self.cache.get(asset_id)
        if cached is not None and cached.head == (last["id"] if last else asset_id):
            return cached
        chain = self._follow(cached, last) if cached is not None and last is not None else None
        if chain is None:
            txs = self._history(asset_id)
            chain = _chain(str(txs[-1]["id"]) if txs else "", None, _windows(txs))
            if not _linked(asset_id, txs):
                return chain  # not one chain from the CREATE: its head does not stand for it, not cached
        self.cache.put(asset_id, chain)
        return chain

    def _follow(self, cached: Chain, last: dict[str, Any]) -> Chain | None:
        # The chain grown by the transactions from `last` back to the cached head, or None when that is
        # more than MAX_FOLLOW away or anything on the way is not a single-input TRANSFER.
        new = [last]
        while (spent := _spends(new[-1])) != cached.head:
            if spent is None or len(new) >= self.max_follow:
                return None
            tx = DriverLedger.call(self.client.retrieve, spent)
            if tx is None:
                return None
            new.append(tx)
        new.reverse()
        return _chain(str(last["id"]), cached, _windows(new))

    def _history(self, asset_id: str) -> list[dict[str, Any]]:
        with collector_paused():
            txs = DriverLedger.call(self.client.asset_history, asset_id)
            return [tx for tx in txs if isinstance(tx, dict)]


def _linked(asset_id: str, txs: list[dict[str, Any]]) -> bool:
    """Whether `txs` are the CREATE of `asset_id` then TRANSFERs each spending the transaction before."""
    if not txs or txs[0].get("id") != asset_id:
        return False
    return all(_spends(b) == a.get("id") for a, b in zip(txs, txs[1:], strict=False))


def _windows(txs: list[dict[str, Any]]) -> list[LedgerWindow]:
    with collector_paused():
        return [w for w in map(parse_transfer, txs) if w is not None]


def _chain(head: str, old: Chain | None, new: list[LedgerWindow]) -> Chain:
    # `old`'s windows then `new`; in start order if `old` was and the new part (from old's last) is.
    before = old.entries if old is not None else ()
    entries = before + tuple(map(_pack, new))
    tail = entries[max(len(before) - 1, 0) :]
    ordered = (old is None or old.ordered) and all(a[0] <= b[0] for a, b in zip(tail, tail[1:], strict=False))
    return Chain(head, entries, ordered)


def _spends(tx: dict[str, Any]) -> str | None:
    """The id of the one transaction a single-input TRANSFER spends, else None."""
    inputs = tx.get("inputs")
    if tx.get("operation") != "TRANSFER" or not isinstance(inputs, list) or len(inputs) != 1:
        return None
    fulfills = inputs[0].get("fulfills") if isinstance(inputs[0], dict) else None
    spent = fulfills.get("transaction_id") if isinstance(fulfills, dict) else None
    return spent if isinstance(spent, str) else None


@dataclass(frozen=True)
class Sealed:
    """A recomputed window as kept (the summary as its canonical JSON text: a third of the dicts' size)."""

    summary_json: str
    energy_wh: Decimal | None
    reading_count: int
    fingerprint: str
    chain_hash: str


def seal_cache(capacity: int = SEAL_CACHE_WINDOWS) -> Lru[Sealed]:
    """An empty memo of recomputed windows bounded to `capacity` windows."""
    return Lru(capacity)


class SealMemo:
    """`seal_off_chain` memoized in `cache` for windows whose stored rows have a digest (load_off_chain).

    `scope` names the attribute settings `spec_for` applies (the meter's entity type, in one process's
    settings), the only input of the recomputation that is not in the window or the TRANSFER."""

    def __init__(self, cache: Lru[Sealed], scope: Hashable, spec_for: Callable[[str], AttributeSpec]) -> None:
        self.cache, self.scope, self.spec_for = cache, scope, spec_for

    def __call__(self, off: OffChainWindow, on: LedgerWindow) -> ClosedWindow:
        if off.digest is None:
            return seal_off_chain(off, on, self.spec_for)
        key = (self.scope, off.digest, on.start, on.end, on.prev_chain_hash)
        kept = self.cache.get(key)
        if kept is not None:
            summary = orjson.loads(kept.summary_json)
            return ClosedWindow(
                on.start, on.end, summary, kept.energy_wh, kept.reading_count, kept.fingerprint,
                on.prev_chain_hash, kept.chain_hash,
            )  # fmt: skip
        cw = seal_off_chain(off, on, self.spec_for)
        self.cache.put(
            key, Sealed(cw.summary_json, cw.energy_wh, cw.reading_count, cw.fingerprint, cw.chain_hash)
        )
        return cw
