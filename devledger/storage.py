"""SQLite storage of the dev ledger: blocks chained by hash, transactions, outputs and text indexes.

One connection guarded by a lock (the ledger has a single writer and reads are short). In file mode the
database runs in WAL with synchronous=FULL, so a block is on disk when `append_block` returns.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bigchaindb_driver.common.utils import serialize
from sha3 import sha3_256

from devledger.validation import Checked

GENESIS_PREV_HASH = "0" * 64
DB_FILE = "devledger.sqlite3"
_TOKENIZER = "porter unicode61 remove_diacritics 2"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    tx_ids TEXT NOT NULL, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, height INTEGER NOT NULL,
    operation TEXT NOT NULL, asset_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transactions_asset ON transactions (asset_id, seq);
CREATE INDEX IF NOT EXISTS transactions_height ON transactions (height, seq);
CREATE TABLE IF NOT EXISTS outputs (
    tx_id TEXT NOT NULL, idx INTEGER NOT NULL, amount TEXT NOT NULL, condition_uri TEXT NOT NULL,
    asset_id TEXT NOT NULL, spent_by TEXT, PRIMARY KEY (tx_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS output_keys (
    public_key TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id TEXT NOT NULL,
    PRIMARY KEY (public_key, seq, idx)) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS asset_text USING fts5(text, content='', tokenize='{_TOKENIZER}');
CREATE VIRTUAL TABLE IF NOT EXISTS metadata_text USING fts5(text, content='', tokenize='{_TOKENIZER}');
"""


@dataclass(frozen=True, slots=True)
class StoredOutput:
    """One output row, as the ledger's in-memory state is rebuilt from it or falls back to it."""

    tx_id: str
    index: int
    amount: int
    condition_uri: str
    asset_id: str
    spent_by: str | None


_OUTPUT_COLUMNS = "tx_id, idx, amount, condition_uri, asset_id, spent_by"


def _stored_output(row: tuple[Any, ...]) -> StoredOutput:
    return StoredOutput(row[0], row[1], int(row[2]), row[3], row[4], row[5])


def block_hash(height: int, prev_hash: str, tx_ids: Sequence[str]) -> str:
    """The hash a block at `height` records: SHA3-256 of its height, predecessor's hash and tx ids."""
    body = {"height": height, "prev_hash": prev_hash, "transactions": list(tx_ids)}
    return sha3_256(serialize(body).encode()).hexdigest()


def strings_of(value: object) -> Iterator[str]:
    """Every string value inside `value` (not keys), as a MongoDB wildcard text index sees them."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from strings_of(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings_of(inner)


class Storage:
    """The ledger's database; every method is thread-safe."""

    def __init__(self, data_dir: Path | None) -> None:
        target = ":memory:" if data_dir is None else str(Path(data_dir) / DB_FILE)
        if data_dir is not None:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        if data_dir is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._tip: tuple[int, str, int] | None = None  # (height, hash, last seq), known after a write

    def close(self) -> None:
        """Close the connection; the storage is unusable afterwards."""
        with self._lock:
            self._db.close()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, held exclusively for a few queries."""
        with self._lock:
            yield self._db

    def meta(self, key: str, default: str) -> str:
        """The value stored under `key`, storing `default` first when there is none."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, default))
            return str(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def latest_block(self) -> tuple[int, str]:
        """(height, hash) of the newest block, (0, genesis prev hash) when there is none."""
        with self._lock:
            row = self._db.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
        return (0, GENESIS_PREV_HASH) if row is None else (int(row[0]), str(row[1]))

    def live_outputs(self) -> list[StoredOutput]:
        """Every output of the transactions that still have an unspent output, for the ledger's start-up."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_OUTPUT_COLUMNS} FROM outputs"
                " WHERE tx_id IN (SELECT tx_id FROM outputs WHERE spent_by IS NULL)"
            ).fetchall()
        return [_stored_output(row) for row in rows]

    def asset_ids(self) -> list[str]:
        """The id of every asset, which is its CREATE's id: one index seek per asset, not a scan of all."""
        # A loose index scan over transactions_asset: each step seeks the next asset id past the last one.
        with self._lock:
            rows = self._db.execute(
                "WITH RECURSIVE assets(id) AS ("
                " SELECT MIN(asset_id) FROM transactions UNION ALL"
                " SELECT (SELECT MIN(asset_id) FROM transactions WHERE asset_id > assets.id)"
                " FROM assets WHERE assets.id IS NOT NULL)"
                " SELECT id FROM assets WHERE id IS NOT NULL"
            ).fetchall()
        return [row[0] for row in rows]

    def has_transaction(self, tx_id: str) -> bool:
        """Whether a transaction with this id is committed."""
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM transactions WHERE id = ?", (tx_id,)).fetchone() is not None
            )

    def output(self, tx_id: str, index: int) -> StoredOutput | None:
        """Output `index` of committed transaction `tx_id`, None when there is no such output."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_OUTPUT_COLUMNS} FROM outputs WHERE tx_id = ? AND idx = ?", (tx_id, index)
            ).fetchone()
        return None if row is None else _stored_output(row)

    def append_block(self, batch: Sequence[Checked], now: datetime | None = None) -> int:
        """Commit `batch` as the next block, durably; returns its height."""
        stamp = (now or datetime.now(UTC)).isoformat()
        with self._lock:
            height, prev, seq = self._tip if self._tip is not None else self._read_tip()
            height += 1
            tx_ids = [c.id for c in batch]
            this_hash = block_hash(height, prev, tx_ids)
            rows = _Rows.of(batch, height, seq + 1)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)",
                    (height, prev, this_hash, json.dumps(tx_ids), stamp),
                )
                rows.insert(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                self._tip = None  # re-read after a failure, whatever state it left
                self._db.execute("ROLLBACK")
                raise
            self._tip = (height, this_hash, seq + len(batch))
        return height

    def _read_tip(self) -> tuple[int, str, int]:
        height, prev = self.latest_block()
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM transactions").fetchone()[0]
        return height, prev, int(seq)


@dataclass
class _Rows:
    """Every row one block adds, so each table gets one executemany (a block holds up to 2,000 txs)."""

    transactions: list[tuple[object, ...]] = field(default_factory=list)
    spent: list[tuple[str, str, int]] = field(default_factory=list)
    outputs: list[tuple[object, ...]] = field(default_factory=list)
    keys: list[tuple[str, int, int, str]] = field(default_factory=list)
    assets: list[tuple[int, str]] = field(default_factory=list)
    metadata: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def of(cls, batch: Sequence[Checked], height: int, first_seq: int) -> _Rows:
        rows = cls()
        for seq, c in enumerate(batch, first_seq):
            rows.transactions.append((seq, c.id, height, c.operation, c.asset_id, c.serialized))
            rows.spent.extend((c.id, tx_id, index) for tx_id, index in c.spends)
            for i, o in enumerate(c.outputs):
                rows.outputs.append((c.id, i, str(o.amount), o.condition_uri, c.asset_id))
                rows.keys.extend((key, seq, i, c.id) for key in o.public_keys)
            if c.operation == "CREATE":
                _add_text(rows.assets, seq, c.body["asset"].get("data"))
            _add_text(rows.metadata, seq, c.body.get("metadata"))
        return rows

    def insert(self, db: sqlite3.Connection) -> None:
        db.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?)", self.transactions)
        # Outputs first: a transaction may spend an output created earlier in the same block.
        db.executemany("INSERT INTO outputs VALUES (?, ?, ?, ?, ?, NULL)", self.outputs)
        db.executemany("UPDATE outputs SET spent_by = ? WHERE tx_id = ? AND idx = ?", self.spent)
        db.executemany("INSERT OR IGNORE INTO output_keys VALUES (?, ?, ?, ?)", self.keys)
        db.executemany("INSERT INTO asset_text (rowid, text) VALUES (?, ?)", self.assets)
        db.executemany("INSERT INTO metadata_text (rowid, text) VALUES (?, ?)", self.metadata)


def _add_text(rows: list[tuple[int, str]], seq: int, value: object) -> None:
    text = "\n".join(strings_of(value))
    if text:
        rows.append((seq, text))
