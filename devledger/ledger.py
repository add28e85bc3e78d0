"""The ledger core: validates against committed and pending state under one lock, commits in blocks.

POSTs are validated in their own threads (the stateless part in parallel), then the stateful checks and
the reservation of the spent outputs happen under the ledger lock, so of two conflicting transactions
exactly one gets in and the other gets BigchainDB's error. A single writer thread takes everything
pending and commits it as one block in one SQLite transaction (group commit).

With a block interval (Tendermint's `timeout_commit` with `create_empty_blocks = false`, BigchainDB's
deployment), a block is cut no sooner than the interval after the previous block committed: accepted
transactions wait for it, are committed together, and commit-mode callers are answered then. Validation
sees the pending block's transactions, so a second spend of an output in the same block is refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devledger.errors import LedgerError
from devledger.storage import Storage, StoredOutput
from devledger.validation import Checked, OutputInfo, check_against, check_stateless

log = logging.getLogger(__name__)

MAX_BLOCK_TXS = 2000  # without a block interval: the group commit's largest batch
# With a block interval, a block is bounded by bytes like Tendermint's (consensus params block.max_bytes,
# 22,020,096 by default in v0.31); what does not fit waits for the next block.
MAX_BLOCK_BYTES = 22_020_096
# Listeners get (height, transactions) for every committed block, on the writer thread.
BlockListener = Callable[[int, Sequence[Checked]], None]


class CommitFailed(LedgerError):
    """The transaction was valid but could not be committed (BigchainDB answers 500)."""


@dataclass(slots=True)
class _Output:
    info: OutputInfo
    asset_id: str
    spent_by: str | None = None


@dataclass(slots=True)
class _Ticket:
    checked: Checked
    done: threading.Event | None  # only a commit-mode caller waits, so only it needs an Event
    height: int | None = None


class _State:
    """What validation needs in memory, bounded by the number of assets rather than by time.

    `outputs` holds the outputs of every transaction that still has an unspent output, is pending, or has
    a pending spender (so `revert` finds what it restores); `creates` holds every CREATE's id, committed
    or pending. A committed transaction whose outputs are all spent by committed ones is dropped when the
    spending block commits; a lookup that misses memory (a double spend of an old output, an unknown
    input) reads Storage, which has every committed transaction. Called only under the ledger's lock.
    """

    def __init__(self, storage: Storage) -> None:
        self.outputs: dict[str, list[_Output]] = {}
        self.creates: set[str] = set()
        self._pending: set[str] = set()
        self._storage = storage

    def has_create(self, tx_id: str) -> bool:
        return tx_id in self.creates

    def has_transaction(self, tx_id: str) -> bool:
        return tx_id in self.outputs or self._storage.has_transaction(tx_id)

    def output(self, tx_id: str, index: int) -> tuple[OutputInfo, str] | None:
        outputs = self.outputs.get(tx_id)
        if outputs is None:
            stored = self._storage.output(tx_id, index)
            return None if stored is None else (_info(stored), stored.asset_id)
        if not 0 <= index < len(outputs):
            return None
        return outputs[index].info, outputs[index].asset_id

    def spender(self, tx_id: str, index: int) -> str | None:
        outputs = self.outputs.get(tx_id)
        if outputs is None:
            stored = self._storage.output(tx_id, index)
            return None if stored is None else stored.spent_by
        if not 0 <= index < len(outputs):
            return None
        return outputs[index].spent_by

    def apply(self, c: Checked) -> None:
        for tx_id, index in c.spends:
            self.outputs[tx_id][index].spent_by = c.id
        self.outputs[c.id] = [_Output(info, c.asset_id) for info in c.outputs]
        self._pending.add(c.id)
        if c.operation == "CREATE":
            self.creates.add(c.id)

    def revert(self, c: Checked) -> None:
        # The spent transactions are in memory: their outputs had a pending spender (c), so none was dropped.
        self.outputs.pop(c.id, None)
        self._pending.discard(c.id)
        self.creates.discard(c.id)
        for tx_id, index in c.spends:
            self.outputs[tx_id][index].spent_by = None

    def committed(self, batch: Sequence[Checked]) -> None:
        """Mark `batch` committed and drop the transactions it left with every output spent and committed."""
        self._pending.difference_update(c.id for c in batch)
        for c in batch:
            for tx_id, _ in c.spends:
                self._drop_if_spent(tx_id)
            self._drop_if_spent(c.id)  # a transaction without outputs

    def _drop_if_spent(self, tx_id: str) -> None:
        outputs = self.outputs.get(tx_id)
        if outputs is None or tx_id in self._pending:
            return
        if all(o.spent_by is not None and o.spent_by not in self._pending for o in outputs):
            del self.outputs[tx_id]

    @classmethod
    def load(cls, storage: Storage) -> _State:
        """The live part of the committed state: CREATE ids, and transactions with an unspent output."""
        state = cls(storage)
        state.creates.update(storage.asset_ids())
        for row in storage.live_outputs():
            outputs = state.outputs.setdefault(row.tx_id, [])
            outputs.extend([None] * (row.index + 1 - len(outputs)))  # type: ignore[list-item]
            outputs[row.index] = _Output(_info(row), row.asset_id, row.spent_by)
        return state


def _info(row: StoredOutput) -> OutputInfo:
    return OutputInfo(row.amount, row.condition_uri, ())


class Ledger:
    """Validates and commits transactions; thread-safe. `start()` before use, `stop()` flushes and ends."""

    def __init__(self, storage: Storage, commit_timeout: float = 30.0, block_interval: float = 0.0) -> None:
        if block_interval < 0:
            raise ValueError("block_interval must be >= 0")
        self.storage = storage
        self.block_interval = block_interval
        self._last_block = float("-inf")  # monotonic time the previous block committed
        self._state = _State.load(storage)
        self._cond = threading.Condition()
        self._pending: list[_Ticket] = []
        self._stopping = False
        self._listeners: list[BlockListener] = []
        self._commit_timeout = commit_timeout
        self._writer = threading.Thread(target=self._run_writer, name="devledger-writer", daemon=True)

    def add_listener(self, listener: BlockListener) -> None:
        """Call `listener(height, transactions)` after every committed block."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the writer thread."""
        self._writer.start()

    def stop(self) -> None:
        """Commit whatever is pending, then stop the writer thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._writer.is_alive():
            self._writer.join()

    def submit(self, tx: object, wait_commit: bool) -> Checked:
        """Validate `tx` and queue it for the next block; with `wait_commit`, return once it is committed.

        Raises InvalidTransaction (400 with BigchainDB's text) or CommitFailed (500).
        """
        checked = check_stateless(tx)
        with self._cond:
            if self._stopping:
                raise CommitFailed("the ledger is stopping")
            check_against(checked, self._state)
            self._state.apply(checked)
            ticket = _Ticket(checked, threading.Event() if wait_commit else None)
            self._pending.append(ticket)
            self._cond.notify_all()
        if ticket.done is not None and (not ticket.done.wait(self._commit_timeout) or ticket.height is None):
            raise CommitFailed("Transaction validation failed")
        return checked

    def _run_writer(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                self._wait_for_block_time()
                batch = self._take_block()
            self._commit(batch)
            del batch  # not kept alive while waiting for the next block (up to MAX_BLOCK_BYTES of bodies)
            self._last_block = time.monotonic()

    def _wait_for_block_time(self) -> None:
        # Called holding the lock; submissions go on meanwhile (the wait releases it). Stopping cuts at once.
        due = self._last_block + self.block_interval
        while not self._stopping and (now := time.monotonic()) < due:
            self._cond.wait(due - now)

    def _take_block(self) -> list[_Ticket]:
        if self.block_interval == 0:
            count = min(len(self._pending), MAX_BLOCK_TXS)
        else:
            count, size = 0, 0
            for ticket in self._pending:
                size += len(ticket.checked.serialized)
                if count and size > MAX_BLOCK_BYTES:
                    break
                count += 1
        batch = self._pending[:count]
        del self._pending[:count]
        return batch

    def _commit(self, batch: list[_Ticket]) -> None:
        checked = [ticket.checked for ticket in batch]
        try:
            height = self.storage.append_block(checked)
        except Exception:  # noqa: BLE001 - any storage failure must release the waiters, not kill the writer
            log.exception("devledger.block.failed", extra={"transactions": len(batch)})
            self._fail(batch)
            return
        with self._cond:
            self._state.committed(checked)
        for ticket in batch:
            ticket.height = height
            if ticket.done is not None:
                ticket.done.set()
        self._notify(height, checked)

    def _fail(self, batch: list[_Ticket]) -> None:
        # Later pending transactions may spend outputs of the failed block: drop them too, newest first.
        with self._cond:
            dropped = batch + self._pending
            self._pending = []
            for ticket in reversed(dropped):
                self._state.revert(ticket.checked)
        for ticket in dropped:
            if ticket.done is not None:
                ticket.done.set()

    def _notify(self, height: int, checked: list[Checked]) -> None:
        for listener in self._listeners:
            try:
                listener(height, checked)
            except Exception:  # noqa: BLE001 - a broken subscriber must not stop the ledger
                log.exception("devledger.listener.failed")
