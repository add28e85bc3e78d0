"""Verification of the dev ledger's block chain (`smartmeter-connector devledger --check`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from bigchaindb_driver.common.exceptions import InvalidHash
from bigchaindb_driver.common.transaction import Transaction

from devledger.errors import ChainBroken
from devledger.storage import DB_FILE, GENESIS_PREV_HASH, block_hash


def verify_chain(data_dir: Path) -> int:
    """Check every block's link and hash and every stored transaction's id; return the latest height.

    Raises ChainBroken naming the first bad height, FileNotFoundError when there is no ledger in data_dir.
    """
    path = Path(data_dir) / DB_FILE
    if not path.exists():
        raise FileNotFoundError(path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _verify(db)
    finally:
        db.close()


def _verify(db: sqlite3.Connection) -> int:
    expected_prev, expected_height = GENESIS_PREV_HASH, 1
    for height, prev_hash, stored_hash, tx_ids_text in db.execute(
        "SELECT height, prev_hash, hash, tx_ids FROM blocks ORDER BY height"
    ):
        if height != expected_height:
            raise ChainBroken(expected_height, "block missing")
        if prev_hash != expected_prev:
            raise ChainBroken(height, "does not link to the previous block's hash")
        tx_ids = json.loads(tx_ids_text)
        if block_hash(height, prev_hash, tx_ids) != stored_hash:
            raise ChainBroken(height, "hash does not match its contents")
        _verify_transactions(db, height, tx_ids)
        expected_prev, expected_height = stored_hash, height + 1
    orphans = db.execute(
        "SELECT MIN(height) FROM transactions WHERE height >= ?", (expected_height,)
    ).fetchone()
    if orphans[0] is not None:
        raise ChainBroken(int(orphans[0]), "transactions stored outside any block")
    return expected_height - 1


def _verify_transactions(db: sqlite3.Connection, height: int, tx_ids: list[str]) -> None:
    rows = db.execute("SELECT id, body FROM transactions WHERE height = ? ORDER BY seq", (height,)).fetchall()
    if [row[0] for row in rows] != tx_ids:
        raise ChainBroken(height, "stored transactions differ from the block's list")
    for tx_id, body in rows:
        tx = json.loads(body)
        try:
            Transaction.validate_id(tx)
        except InvalidHash as exc:
            raise ChainBroken(height, f"transaction {tx_id} was altered") from exc
        if tx.get("id") != tx_id:
            raise ChainBroken(height, f"transaction {tx_id} was altered")
