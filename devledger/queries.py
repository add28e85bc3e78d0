"""Read side of the dev ledger: the lookups behind the GET routes, answering JSON-ready values."""

from __future__ import annotations

import json
from typing import Any

from devledger import search
from devledger.storage import Storage


def transaction(storage: Storage, tx_id: str) -> str | None:
    """The committed transaction's JSON text, or None."""
    with storage.reading() as db:
        row = db.execute("SELECT body FROM transactions WHERE id = ?", (tx_id,)).fetchone()
    return None if row is None else str(row[0])


def transactions_of_asset(
    storage: Storage, asset_id: str, operation: str | None, last_tx: bool | None
) -> str:
    """JSON list of the asset's transactions in commit order (CREATE then TRANSFERs), or just the last."""
    sql = "SELECT body FROM transactions WHERE asset_id = ?"
    params: list[Any] = [asset_id]
    if operation is not None:
        sql += " AND operation = ?"
        params.append(operation)
    sql += " ORDER BY seq DESC LIMIT 1" if last_tx else " ORDER BY seq"
    with storage.reading() as db:
        bodies = [row[0] for row in db.execute(sql, params)]
    return "[" + ",".join(bodies) + "]"


def outputs(storage: Storage, public_key: str, spent: bool | None) -> list[dict[str, Any]]:
    """Outputs the key appears in (spent, unspent or all), in commit order."""
    sql = (
        "SELECT k.tx_id, k.idx FROM output_keys k JOIN outputs o ON o.tx_id = k.tx_id AND o.idx = k.idx"
        " WHERE k.public_key = ?"
    )
    if spent is True:
        sql += " AND o.spent_by IS NOT NULL"
    elif spent is False:
        sql += " AND o.spent_by IS NULL"
    sql += " ORDER BY k.seq, k.idx"
    with storage.reading() as db:
        rows = db.execute(sql, (public_key,)).fetchall()
    return [{"transaction_id": tx_id, "output_index": idx} for tx_id, idx in rows]


def text_search(storage: Storage, table: str, text: str, limit: int) -> list[dict[str, Any]]:
    """Assets (`table`="assets") or metadata matching a MongoDB `$text` search, best match first."""
    expression = search.to_fts5(search.parse(text))
    if expression is None:
        return []
    fts = "asset_text" if table == "assets" else "metadata_text"
    sql = (
        f"SELECT t.id, t.body FROM {fts} f JOIN transactions t ON t.seq = f.rowid"
        f" WHERE {fts} MATCH ? ORDER BY f.rank, t.seq"
    )
    if limit:
        sql += f" LIMIT {abs(int(limit))}"
    with storage.reading() as db:
        rows = db.execute(sql, (expression,)).fetchall()
    if table == "assets":
        return [{"data": json.loads(body)["asset"]["data"], "id": tx_id} for tx_id, body in rows]
    return [{"id": tx_id, "metadata": json.loads(body)["metadata"]} for tx_id, body in rows]


def blocks_with(storage: Storage, tx_id: str) -> list[int]:
    """Heights of the blocks holding the transaction (at most one)."""
    with storage.reading() as db:
        return [row[0] for row in db.execute("SELECT height FROM transactions WHERE id = ?", (tx_id,))]


def block(storage: Storage, height: int) -> str | None:
    """JSON text of `{"height": h, "transactions": [...]}`, or None above the latest height."""
    with storage.reading() as db:
        latest = db.execute("SELECT COALESCE(MAX(height), 0) FROM blocks").fetchone()[0]
        if height > latest:
            return None
        bodies = [
            row[0]
            for row in db.execute("SELECT body FROM transactions WHERE height = ? ORDER BY seq", (height,))
        ]
    return '{"height":' + str(height) + ',"transactions":[' + ",".join(bodies) + "]}"
