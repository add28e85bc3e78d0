"""The ledger writer's view of BigchainDB: a Protocol, and its adapter over bigchaindb-driver 0.6.2.

The driver is the only BigchainDB client, so the same code talks to the dev ledger and to a real network.
It fails over between the node URLs it is given and retries connection errors until its timeout.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from bigchaindb_driver import BigchainDB
from bigchaindb_driver.exceptions import NotFoundError
from requests.adapters import HTTPAdapter

from connector.settings import LedgerSettings, Settings

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
    """LedgerClient over bigchaindb-driver: `urls` in failover order, optional app_id/app_key headers.

    With `max_connections`, each node's HTTP session keeps at most that many connections and a caller
    beyond them waits for a free one (urllib3's blocking pool), so the client can be shared by threads.
    """

    def __init__(self, urls: list[str], settings: LedgerSettings, max_connections: int | None = None) -> None:
        if not urls:
            raise ValueError("no BigchainDB node URL configured")
        headers = {}
        if settings.app_id:
            headers = {"app_id": settings.app_id, "app_key": settings.app_key}
        nodes = [{"endpoint": url.rstrip("/"), "headers": headers} for url in urls]
        self._bdb = BigchainDB(*nodes, timeout=settings.timeout)
        self.urls = list(urls)
        if max_connections is not None:
            for session in self._sessions():
                bounded = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections, pool_block=True)
                session.mount("http://", bounded)
                session.mount("https://", bounded)

    def _sessions(self) -> list[Any]:
        # bigchaindb-driver 0.6.2 keeps one requests.Session per node, in its transport's connection pool.
        return [c.session for c in self._bdb.transport.connection_pool.connections]

    def close(self) -> None:
        """Close every connection this client holds to the nodes."""
        for session in self._sessions():
            session.close()

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

    def last_transfer(self, asset_id: str) -> dict[str, Any] | None:
        """The last committed TRANSFER of `asset_id`, or None before its first.

        BigchainDB 2.2.2's `GET /api/v1/transactions?asset_id=&operation=TRANSFER&last_tx=true` (the
        driver 0.6.2 has no argument for last_tx): MongoDB's `find` of the asset's TRANSFERs sorted by
        `$natural` (insertion, i.e. commit order) descending, limit 1; the dev ledger's `ORDER BY seq DESC
        LIMIT 1` on its (asset_id, seq) index. One small answer, whatever the asset's length.
        """
        params = {"asset_id": asset_id, "operation": "TRANSFER", "last_tx": "true"}
        txs = self._bdb.transport.forward_request(
            method="GET", path=self._bdb.transactions.path, params=params
        )
        return txs[0] if txs else None


# The query API's reads share this many connections per node: a page looks up block heights with up to 8
# threads (connector/api/history.py BLOCK_LOOKUP_THREADS), and more connections than that only add sockets
# (a dev ledger or BigchainDB node serves 100 connections at most: waitress/gunicorn defaults).
QUERY_CONNECTIONS = 8


class LedgerReads:
    """One DriverClient for every query-API ledger read of a process, bounded to QUERY_CONNECTIONS per
    node, made on first use and closed by `close()` (at shutdown). Before it, each request built its own
    client, whose keep-alive connections stayed open until garbage collection: about 100 requests made
    the ledger refuse everyone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: DriverClient | None = None

    def client(self, urls: list[str], settings: LedgerSettings) -> DriverClient:
        """The shared client on `urls` (a client on other URLs replaces it: the ledger moved)."""
        with self._lock:
            if self._client is None or self._client.urls != list(urls):
                if self._client is not None:
                    self._client.close()
                self._client = DriverClient(urls, settings, max_connections=QUERY_CONNECTIONS)
            return self._client

    def close(self) -> None:
        """Close the shared client's connections; a later read opens new ones."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def ledger_urls(settings: Settings) -> list[str]:
    """The BigchainDB nodes a command reads: ledger.urls, else the embedded dev ledger's address."""
    ledger = settings.ledger
    if ledger.urls:
        return list(ledger.urls)
    return [f"http://{ledger.embedded_host}:{ledger.embedded_port}"]
