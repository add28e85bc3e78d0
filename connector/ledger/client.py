"""The ledger writer's view of BigchainDB: a Protocol, and its adapter over bigchaindb-driver 0.6.2.

The driver is the only BigchainDB client, so the same code talks to the dev ledger and to a real network.
It fails over between the node URLs it is given and retries connection errors until its timeout.
"""

from __future__ import annotations

from typing import Any, Protocol

from bigchaindb_driver import BigchainDB
from bigchaindb_driver.exceptions import NotFoundError

from connector.settings import LedgerSettings

SEND_MODES = ("async", "sync", "commit")


class LedgerClient(Protocol):
    """What the ledger writer needs from a BigchainDB network. Errors are the driver's exceptions (or
    requests' for timeouts), sorted by `connector.ledger.errors.classify`."""

    def send(self, tx: dict[str, Any], mode: str) -> None:
        """POST a signed transaction; returns on 202 (which only means "maybe", see `retrieve`)."""

    def retrieve(self, tx_id: str) -> dict[str, Any] | None:
        """The committed transaction `tx_id`, or None if the ledger does not have it."""

    def block_height(self, tx_id: str) -> int | None:
        """The height of the block holding `tx_id`, or None."""

    def unspent(self, public_key: str) -> list[dict[str, Any]]:
        """Unspent outputs of `public_key`: [{"transaction_id", "output_index"}]."""

    def asset_history(self, asset_id: str) -> list[dict[str, Any]]:
        """The CREATE of `asset_id` and all its TRANSFERs, in commit order."""


class DriverClient:
    """LedgerClient over bigchaindb-driver: `urls` in failover order, optional app_id/app_key headers."""

    def __init__(self, urls: list[str], settings: LedgerSettings) -> None:
        if not urls:
            raise ValueError("no BigchainDB node URL configured")
        headers = {}
        if settings.app_id:
            headers = {"app_id": settings.app_id, "app_key": settings.app_key}
        nodes = [{"endpoint": url.rstrip("/"), "headers": headers} for url in urls]
        self._bdb = BigchainDB(*nodes, timeout=settings.timeout)
        self.urls = list(urls)

    def send(self, tx: dict[str, Any], mode: str) -> None:
        """POST `tx` with mode async, sync or commit."""
        if mode not in SEND_MODES:
            raise ValueError(f"unknown send mode {mode!r}")
        getattr(self._bdb.transactions, f"send_{mode}")(tx)

    def retrieve(self, tx_id: str) -> dict[str, Any] | None:
        """The committed transaction, or None on 404."""
        try:
            tx: dict[str, Any] = self._bdb.transactions.retrieve(tx_id)
        except NotFoundError:
            return None
        return tx

    def block_height(self, tx_id: str) -> int | None:
        """The block height of `tx_id`, or None."""
        height = self._bdb.blocks.get(txid=tx_id)
        return None if height is None else int(height)

    def unspent(self, public_key: str) -> list[dict[str, Any]]:
        """Unspent outputs of `public_key`."""
        outputs: list[dict[str, Any]] = self._bdb.outputs.get(public_key, spent=False)
        return outputs

    def asset_history(self, asset_id: str) -> list[dict[str, Any]]:
        """Every transaction of `asset_id`, CREATE first."""
        txs: list[dict[str, Any]] = self._bdb.transactions.get(asset_id=asset_id)
        return txs
