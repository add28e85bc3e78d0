"""A recording fake of `connector.ledger.client.LedgerClient`, shipped next to the code for unit tests of
the ledger writer's logic (in this project's tests and in anyone's who builds on the writer).

It keeps committed transactions, spent outputs and every call, answers conflicts with the same messages
BigchainDB 2.2.2 uses, and can be switched "down" (connection errors) or made to fail in scripted ways
(`fail_next`). Integration tests use the real dev ledger instead.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from bigchaindb_driver.exceptions import BadRequest, TransportError


class FakeLedger:
    """An in-memory LedgerClient that commits every valid POST at once and records every call."""

    def __init__(self) -> None:
        self.committed: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.spent: dict[tuple[str, int], str] = {}
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self.fail_next: list[BaseException] = []
        self.drop_next = 0  # accept (202) but never commit this many POSTs

    def _check_up(self, call: str, arg: str) -> None:
        self.calls.append((call, arg))
        if self.down:
            raise requests.ConnectionError("connection refused")

    def send(self, tx: dict[str, Any], mode: str) -> None:
        self._check_up("send", tx["id"])
        if self.fail_next:
            raise self.fail_next.pop(0)
        if tx["id"] in self.committed and tx["operation"] == "CREATE":
            msg = f"Invalid transaction (DuplicateTransaction): transaction `{tx['id']}` already exists"
            raise _bad_request(msg)
        for inp in tx["inputs"]:
            link = inp["fulfills"]
            if link is None:
                continue
            key = (link["transaction_id"], link["output_index"])
            if link["transaction_id"] not in self.committed:
                raise _bad_request(f"Invalid transaction (InputDoesNotExist): input `{key[0]}` doesn't exist")
            if key in self.spent:
                raise _bad_request(f"Invalid transaction (DoubleSpend): input `{key[0]}` was already spent")
        if self.drop_next:
            self.drop_next -= 1
            return
        for inp in tx["inputs"]:
            if inp["fulfills"] is not None:
                self.spent[(inp["fulfills"]["transaction_id"], inp["fulfills"]["output_index"])] = tx["id"]
        self.committed[tx["id"]] = tx
        self.order.append(tx["id"])

    def retrieve(self, tx_id: str) -> dict[str, Any] | None:
        self._check_up("retrieve", tx_id)
        return self.committed.get(tx_id)

    def block_height(self, tx_id: str) -> int | None:
        self._check_up("block_height", tx_id)
        return self.order.index(tx_id) + 1 if tx_id in self.committed else None

    def unspent(self, public_key: str) -> list[dict[str, Any]]:
        self._check_up("unspent", public_key)
        return [
            {"transaction_id": tx_id, "output_index": 0}
            for tx_id in self.order
            if public_key in self.committed[tx_id]["outputs"][0]["public_keys"]
            and (tx_id, 0) not in self.spent
        ]

    def asset_history(self, asset_id: str) -> list[dict[str, Any]]:
        self._check_up("asset_history", asset_id)
        return [
            tx
            for tx_id in self.order
            if (tx := self.committed[tx_id])["id"] == asset_id or tx["asset"].get("id") == asset_id
        ]


def _bad_request(message: str) -> BadRequest:
    body = {"message": message, "status": 400}
    return BadRequest(400, json.dumps(body), body, "")


def http_error(status: int, message: str = "boom") -> TransportError:
    """A driver error for an HTTP status, as the driver raises it."""
    return TransportError(status, message, {"message": message, "status": status}, "")
