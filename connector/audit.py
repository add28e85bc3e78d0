"""Verification of a meter's history (seed 004, section 3.3): recompute each window's fingerprint and chain
hash from the off-chain readings and compare them with the TRANSFER metadata read from the ledger.

Per window the verdict is one of STATUSES:
- ok: the recomputed fingerprint, summary and chain hash equal the ledger's, and the chain link holds;
- tampered: the off-chain readings no longer give what was anchored (a changed, deleted, inserted or
  shifted reading all change the fingerprint);
- missing_on_ledger: the store has a closed window the ledger has no TRANSFER for (not yet anchored, or lost);
- missing_off_chain: the ledger anchors a window the store no longer has;
- broken_chain: the content matches but the TRANSFER's prev_chain_hash is not the chain hash of the asset's
  previous window (or the chain seed for the first), i.e. the anchored chain itself has a gap or a fork.
Late readings (stored after their window closed) are not part of any fingerprint; they are listed.

`verify_meter` is pure over plain data; `load_off_chain` and `DriverLedger` are the I/O around it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, Protocol

from bigchaindb_driver.exceptions import BigchaindbException
from requests import RequestException
from sqlalchemy import Connection, func, select, type_coerce
from sqlalchemy.types import NullType

from connector.core.canonical import time_text
from connector.core.fingerprint import ClosedWindow
from connector.core.kinds import AttributeSpec
from connector.core.stored_rows import Row, seal_rows
from connector.ledger.metadata import OMITTED_KEY, omitted_digest
from connector.store.models import LedgerOutbox, Reading, UTCDateTime, Window

STATUSES = ("ok", "tampered", "missing_on_ledger", "missing_off_chain", "broken_chain")
WINDOW_SCHEMA = "smartmeter-connector/window/v1"


class LedgerReadError(RuntimeError):
    """The ledger could not be read (down, timing out, or answering garbage); try again later."""


@dataclass(frozen=True)
class LedgerWindow:
    """The part of one TRANSFER's metadata the verifier compares."""

    tx_id: str
    start: datetime
    end: datetime
    summary: list[dict[str, Any]]
    fingerprint: str
    chain_hash: str
    prev_chain_hash: str
    omitted: dict[str, Any] | None = None  # count and digest of the summaries left out (metadata bound)


@dataclass(frozen=True)
class OffChainWindow:
    """One closed window as the store holds it: bounds and readings (`late` ones kept apart)."""

    start: datetime
    end: datetime
    rows: Sequence[Row]  # the on-time readings
    late: list[Any] = field(default_factory=list)
    # A digest of the on-time rows exactly as the store gave them (load_off_chain), for the verify route's
    # memo of recomputed windows (audit_cache.SealMemo).
    digest: bytes | None = None


@dataclass
class WindowVerdict:
    start: datetime
    end: datetime
    status: str
    tx_id: str | None = None
    problems: list[str] = field(default_factory=list)
    ledger: dict[str, str] | None = None
    recomputed: dict[str, str] | None = None
    late: list[Any] = field(default_factory=list)


class LedgerReader(Protocol):
    """Where the anchored side comes from."""

    def window_transfers(self, asset_id: str, from_: datetime | None, to: datetime | None) -> LedgerHistory:
        """The asset's window TRANSFERs in chain order, at least those starting in [from_, to) and the one
        just before; raises LedgerReadError."""


@dataclass(frozen=True)
class LedgerHistory:
    """Window TRANSFERs in chain order; `from_genesis` when windows[0] is the asset's first window."""

    windows: list[LedgerWindow]
    from_genesis: bool


def parse_transfer(tx: dict[str, Any]) -> LedgerWindow | None:
    """The window of a TRANSFER, or None if the transaction carries no window metadata of ours."""
    meta = tx.get("metadata")
    if tx.get("operation") != "TRANSFER" or not isinstance(meta, dict) or meta.get("schema") != WINDOW_SCHEMA:
        return None
    try:
        return LedgerWindow(
            tx_id=str(tx["id"]),
            start=datetime.fromisoformat(meta["window"]["start"]),
            end=datetime.fromisoformat(meta["window"]["end"]),
            summary=list(meta["attributes"]),
            fingerprint=str(meta["fingerprint"]),
            chain_hash=str(meta["chain_hash"]),
            prev_chain_hash=str(meta["prev_chain_hash"]),
            omitted=meta.get(OMITTED_KEY),
        )
    except (KeyError, TypeError, ValueError):
        return None


class DriverLedger:
    """LedgerReader over bigchaindb-driver (the ledger writer's DriverClient): one GET of the asset's history.

    Reading the whole history is what makes missing_off_chain and chain gaps visible without trusting the
    local index; its cost grows with the asset (see docs/benchmarks/query.md).
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def transfers(self, asset_id: str) -> list[tuple[LedgerWindow, dict[str, Any]]]:
        """Every window TRANSFER of `asset_id` in commit order, with the transaction as the ledger has it."""
        with collector_paused():
            txs = self.call(self.client.asset_history, asset_id)
            pairs = [(parse_transfer(tx), tx) for tx in txs if isinstance(tx, dict)]
            return [(w, tx) for w, tx in pairs if w is not None]

    def window_transfers(self, asset_id: str, from_: datetime | None, to: datetime | None) -> LedgerHistory:
        return LedgerHistory([w for w, _tx in self.transfers(asset_id)], from_genesis=True)

    def block_height(self, tx_id: str) -> int | None:
        """The height of the block holding `tx_id`, or None."""
        return self.call(self.client.block_height, tx_id)  # type: ignore[no-any-return]

    @staticmethod
    def call(fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)`, with any failure to read the ledger raised as LedgerReadError."""
        try:
            return fn(*args)
        except (BigchaindbException, RequestException, OSError, ValueError) as exc:
            # Connection failures, timeouts (the driver raises the builtin TimeoutError, an OSError), 4xx/5xx
            # and unparsable bodies all mean "cannot read it now".
            raise LedgerReadError(f"the ledger cannot be read: {type(exc).__name__}") from exc


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while freshly parsed JSON (which holds no cycles) is built."""
    # A year of one asset is 35,000 transactions, about two million fresh dicts, lists and strings; the
    # cyclic garbage collector would walk them over and over while they are parsed (two thirds of the
    # parse time). They hold no cycles, so the collector is paused for the parse and resumed after.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class IndexLedger:
    """LedgerReader over the signed TRANSFERs the local outbox keeps (status confirmed).

    Weaker than DriverLedger: it trusts the store's copy of what was sent, so it cannot see a TRANSFER the
    store lost. Used by the benchmark to separate recomputation from ledger reads, and where no node is
    reachable.
    """

    def __init__(self, conn: Connection, meter_id: int) -> None:
        self.conn, self.meter_id = conn, meter_id

    def window_transfers(self, asset_id: str, from_: datetime | None, to: datetime | None) -> LedgerHistory:
        where: list[Any] = [Window.meter_id == self.meter_id]
        before = None
        if from_:
            before = self.conn.execute(
                select(func.max(Window.start)).where(Window.meter_id == self.meter_id, Window.start < from_)
            ).scalar()
            where.append(Window.start >= (before or from_))
        if to:
            where.append(Window.start < to)
        stmt = (
            select(LedgerOutbox.tx_json)
            .select_from(Window.__table__.join(LedgerOutbox.__table__, LedgerOutbox.window_id == Window.id))
            .where(*where, LedgerOutbox.status == "confirmed")
            .order_by(Window.start)
        )
        windows = [parse_tx_json(text) for text in self.conn.execute(stmt).scalars()]
        return LedgerHistory([w for w in windows if w is not None], from_genesis=before is None)


Sealer = Callable[[OffChainWindow, "LedgerWindow"], ClosedWindow]


def seal_off_chain(
    off: OffChainWindow, on: LedgerWindow, spec_for: Callable[[str], AttributeSpec]
) -> ClosedWindow:
    """The store's window `off` recomputed as anchored by `on` (its bounds, after its prev_chain_hash);
    ValueError or ArithmeticError when its readings cannot form it."""
    return seal_rows(off.rows, on.start, on.end, on.prev_chain_hash, spec_for)


def verify_meter(
    off_chain: Sequence[OffChainWindow],
    history: LedgerHistory,
    chain_seed: str,
    spec_for: Callable[[str], AttributeSpec],
    from_: datetime | None = None,
    to: datetime | None = None,
    seal: Sealer | None = None,
) -> list[WindowVerdict]:
    """A verdict per window starting in [from_, to), oldest first.

    `history` holds the anchored windows in chain order, from the asset's first or from the predecessor of
    the range, so each window's link to the one before is checked; `off_chain` the store's windows.
    `seal` recomputes a window (`seal_off_chain` by default; the API passes a memo of it).
    """
    seal = seal or (lambda off, on: seal_off_chain(off, on, spec_for))
    expected_prev = _expected_prev(history.windows, chain_seed if history.from_genesis else None)
    ledger_by_start = {w.start: w for w in history.windows if _in_range(w.start, from_, to)}
    off_by_start = {w.start: w for w in off_chain if _in_range(w.start, from_, to)}
    verdicts = []
    for start in sorted(set(ledger_by_start) | set(off_by_start)):
        on, off = ledger_by_start.get(start), off_by_start.get(start)
        if on is None:
            assert off is not None
            verdicts.append(WindowVerdict(off.start, off.end, "missing_on_ledger", late=off.late))
        elif off is None:
            verdicts.append(
                WindowVerdict(on.start, on.end, "missing_off_chain", on.tx_id, ledger=_hashes(on))
            )
        else:
            verdicts.append(_compare(off, on, expected_prev[on.tx_id], seal))
    return verdicts


def _in_range(start: datetime, from_: datetime | None, to: datetime | None) -> bool:
    return (from_ is None or start >= from_) and (to is None or start < to)


def _expected_prev(on_ledger: Sequence[LedgerWindow], first_prev: str | None) -> dict[str, str | None]:
    expected: dict[str, str | None] = {}
    prev = first_prev
    for w in on_ledger:
        expected[w.tx_id] = prev
        prev = w.chain_hash
    return expected


def _hashes(w: Any) -> dict[str, str]:
    return {"fingerprint": w.fingerprint, "chainHash": w.chain_hash, "prevChainHash": w.prev_chain_hash}


def _compare(off: OffChainWindow, on: LedgerWindow, expected_prev: str | None, seal: Sealer) -> WindowVerdict:
    verdict = WindowVerdict(on.start, on.end, "ok", on.tx_id, ledger=_hashes(on), late=off.late)
    try:
        cw = seal(off, on)
    except (ValueError, ArithmeticError) as exc:
        verdict.status = "tampered"
        verdict.problems.append(f"the stored readings cannot form this window: {exc}")
        return verdict
    verdict.recomputed = _hashes(cw)
    if cw.fingerprint != on.fingerprint:
        verdict.problems.append("fingerprint differs: readings were changed, deleted, inserted or re-timed")
    if not summary_matches(cw.summary, on):
        verdict.problems.append("summary differs from the anchored summary")
    if cw.chain_hash != on.chain_hash:
        verdict.problems.append("chain hash differs from the anchored chain hash")
    if verdict.problems:
        verdict.status = "tampered"
    if expected_prev is not None and on.prev_chain_hash != expected_prev:
        verdict.problems.append("chain link broken: prev_chain_hash is not the previous window's chain hash")
        verdict.status = "tampered" if verdict.status == "tampered" else "broken_chain"
    return verdict


def summary_matches(summary: list[dict[str, Any]], on: LedgerWindow) -> bool:
    """True when the recomputed `summary` is what the TRANSFER anchored: the same list, or, for metadata
    that left summaries out (docs/ledger-format.md), the kept ones equal and the rest of the same count
    and digest."""
    if on.omitted is None:
        return summary == on.summary
    kept = {e.get("attr") for e in on.summary if isinstance(e, dict)}
    if [s for s in summary if s["attr"] in kept] != on.summary:
        return False
    left = [s for s in summary if s["attr"] not in kept]
    return isinstance(on.omitted, dict) and on.omitted == {"count": len(left), "digest": omitted_digest(left)}


def load_off_chain(
    conn: Connection, meter_id: int, from_: datetime | None, to: datetime | None
) -> list[OffChainWindow]:
    """The store's closed windows of a meter starting in [from_, to), each with its on-time readings as
    rows of text (stored_rows.Row) and its late ones in full."""
    where: list[Any] = [Window.meter_id == meter_id]
    rwhere: list[Any] = [Reading.meter_id == meter_id]
    if from_:
        where.append(Window.start >= from_)
        rwhere.append(Reading.window_start >= from_)
    if to:
        where.append(Window.start < to)
        rwhere.append(Reading.window_start < to)
    windows = conn.execute(select(Window.start, Window.end).where(*where).order_by(Window.start)).all()
    texts = _TimeTexts(conn)
    by_start: dict[datetime, list[tuple[Any, ...]]] = {w.start: [] for w in windows}
    # The columns the fingerprint covers first, times as the driver gives them: a month is 43,200
    # readings, and a SQLAlchemy Row or a datetime conversion per reading costs more than reading it.
    cols: tuple[Any, ...] = (Reading.attr, Reading.attr_type, _raw(Reading.observed_at), Reading.value_json)
    cols += (Reading.number, Reading.unit, _raw(Reading.window_start), Reading.late, Reading.id)
    late: list[int] = []
    stmt = select(*cols).where(*rwhere).order_by(*_KEY_ORDER)
    for raw_start, group in groupby(_driver_rows(conn, stmt), key=itemgetter(6)):  # window by window
        rows = list(group)
        late += [r[8] for r in rows if r[7]]
        rows = [r for r in rows if not r[7]]
        kept = by_start.get(texts.window_start(raw_start))
        if kept is not None:
            kept += [r[:6] for r in rows]
    late_rows: dict[datetime, list[Any]] = {}
    for row in _late_rows(conn, late):
        late_rows.setdefault(row.window_start, []).append(row)
    return [_window(w.start, w.end, by_start[w.start], late_rows.get(w.start, []), texts) for w in windows]


def _window(
    start: datetime, end: datetime, raw: list[tuple[Any, ...]], late: list[Any], texts: _TimeTexts
) -> OffChainWindow:
    # The digest is of the rows' pickle, which tells every value and type apart (it reads back as them).
    digest = hashlib.blake2b(pickle.dumps(raw, protocol=5), digest_size=32).digest()
    return OffChainWindow(start, end, _TextRows(raw, texts), late, digest)


class _TextRows(Sequence[Row]):
    """A window's on-time rows as stored_rows.Row, their times made texts on first use (a memoized
    recomputation never needs them)."""

    def __init__(self, raw: list[tuple[Any, ...]], texts: _TimeTexts) -> None:
        self._raw, self._texts = raw, texts
        self._rows: list[Row] | None = None

    def _converted(self) -> list[Row]:
        if self._rows is None:
            raw = self._raw
            at = self._texts.texts([r[2] for r in raw])
            self._rows = [(r[0], r[1], t, r[3], r[4], r[5]) for r, t in zip(raw, at, strict=True)]
        return self._rows

    def __getitem__(self, i: Any) -> Any:
        return self._converted()[i]

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Iterator[Row]:
        return iter(self._converted())


def _driver_rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    # The driver's own tuples: these columns need no conversion (times are taken raw), and making a
    # SQLAlchemy Row of each of a month's 43,200 readings cost more than SQLite's reading them.
    result = conn.execute(stmt)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


# The readings' unique key (meter_id, window_start, observed_at, attr): one order, read from its index.
_KEY_ORDER = (Reading.window_start, Reading.observed_at, Reading.attr)


def _raw(column: Any) -> Any:
    return type_coerce(column, NullType()).label(column.key)


class _TimeTexts:
    """Store times as the driver returns them -> canonical UTC time texts (`time_text`) of the aware
    datetimes the UTCDateTime column type makes of them. SQLite's own text form of a UTC time
    (`YYYY-MM-DD HH:MM:SS.ffffff`) is that text with a "T" and a "Z"; any other value goes through the
    column type's own conversion."""

    def __init__(self, conn: Connection) -> None:
        # The dialect's own implementation: SQLite's text parser, then the type's UTC conversion.
        self._convert = UTCDateTime().dialect_impl(conn.dialect).result_processor(conn.dialect, None)
        self._starts: dict[Any, datetime] = {}

    def texts(self, raws: list[Any]) -> list[str]:
        """The time texts of `raws` (one window's)."""
        if all(type(r) is str for r in raws) and _SQLITE_TIMES.fullmatch("\n".join(raws)):
            try:
                # Only dates that exist (the column type would refuse the others).
                list(map(datetime.fromisoformat, raws))
            except ValueError:
                pass
            else:
                return [f"{r[:10]}T{r[11:]}Z" for r in raws]
        return [time_text(self.convert(r)) for r in raws]

    def convert(self, raw: Any) -> datetime:
        """`raw` as the column type reads it."""
        return self._convert(raw) if self._convert else raw  # type: ignore[no-any-return,return-value]

    def window_start(self, raw: Any) -> datetime:
        """A window start, each distinct one converted once."""
        start = self._starts.get(raw)
        if start is None:
            start = self._starts[raw] = self.convert(raw)
        return start


_SQLITE_TIME = "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{6}"
_SQLITE_TIMES = re.compile(f"(?:{_SQLITE_TIME}\n)*{_SQLITE_TIME}")


def _late_rows(conn: Connection, ids: list[int]) -> Iterator[Any]:
    # Late readings are shown in full; they are few, so they are read again by id, in chunks.
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        yield from conn.execute(
            select(Reading).where(Reading.id.in_(chunk)).order_by(Reading.window_start, Reading.observed_at)
        )


def overall(verdicts: Sequence[WindowVerdict]) -> tuple[str, dict[str, int]]:
    """`("ok" | "failed", counts by status)`; failed when any window is not ok."""
    counts = {status: 0 for status in STATUSES}
    for v in verdicts:
        counts[v.status] += 1
    return ("ok" if counts["ok"] == len(verdicts) else "failed"), counts


def parse_tx_json(text: str | None) -> LedgerWindow | None:
    """A TRANSFER kept in the local outbox as its window (IndexLedger); None if absent or not ours."""
    if not text:
        return None
    try:
        return parse_transfer(json.loads(text))
    except ValueError:
        return None
