"""The relay of portfolio mode (`ethereum.mode: portfolio`, docs/settlement.md): per tenant and window
period one `recordPortfolio(portfolioId, intervalStart, energyWh, root, meterCount, ledgerTxId)` once the
period's tenant root is confirmed on BigchainDB; then `settle(portfolioId, [intervalStart])` once the
record is final (the contract skips an interval without a plan, which is tried again later).

Durable work in `portfolio_relay` (migration 0007). A record is sent at most once per attempt and the
next attempt is scheduled before sending; the contract makes a resend of the same record a no-op, so a
crash between sending and storing the hash only costs gas. A revert is dead (logged at error level);
anything else is retried with backoff (2, 4, ... 300 s).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite
from web3 import Web3

from connector.ethereum.client import connect, contract_address, reporter_account
from connector.ethereum.errors import CALL_ERRORS, Action, classify, describe
from connector.ethereum.gateway import Web3Gateway
from connector.ethereum.portfolio import portfolio_contract, portfolio_key
from connector.ethereum.portfolio_ops import estimate
from connector.ethereum.sender import Sender
from connector.settings import Settings
from connector.store.db import Store
from connector.store.tree_models import PeriodRoot, PortfolioRelay, RootOutbox

log = structlog.get_logger("connector.ethereum.portfolio")


def backoff(attempts: int) -> timedelta:
    """2, 4, ... 300 s."""
    return timedelta(seconds=min(300, 2 ** max(1, attempts)))


class PortfolioRelayService:
    """Records portfolio intervals on a PortfolioSettlement contract and settles them."""

    def __init__(
        self, settings: Settings, store: Store, clock: Any, w3: Web3, address: str, account: Any
    ) -> None:
        self.settings, self.store, self.w3 = settings, store, w3
        self._now: Callable[[], datetime] = getattr(clock, "now", clock)
        self.contract = portfolio_contract(w3, address)
        eth = settings.ethereum
        self.sender = Sender(Web3Gateway(w3, address), account, eth.max_fee_gwei, eth.priority_fee_gwei)

    def round(self) -> None:
        """One round: queue, send, confirm, settle."""
        self.enqueue()
        self.dispatch_once()
        self.confirm_once()
        self.settle_once()

    def enqueue(self) -> int:
        """A row per window-period root confirmed on the ledger and not queued yet; how many were added."""
        now = self._now()
        with self.store.begin() as conn:
            rows = conn.execute(
                select(PeriodRoot.id, PeriodRoot.tenant, PeriodRoot.start)
                .join(RootOutbox, RootOutbox.period_id == PeriodRoot.id)
                .outerjoin(PortfolioRelay, PortfolioRelay.period_id == PeriodRoot.id)
                .where(
                    PeriodRoot.kind == "window",
                    RootOutbox.status == "confirmed",
                    PortfolioRelay.period_id.is_(None),
                )
            ).all()
            if rows:
                values = [
                    {"period_id": r.id, "tenant": r.tenant, "interval_start": r.start, "status": "pending"}
                    | {"attempts": 0, "next_attempt_at": now, "settled": False, "updated_at": now}
                    for r in rows
                ]
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                conn.execute(dialect.insert(PortfolioRelay).on_conflict_do_nothing(), values)
        return len(rows)

    def dispatch_once(self, limit: int = 50) -> int:
        """Send `recordPortfolio` for due pending rows, oldest interval first; how many were sent."""
        now = self._now()
        with self.store.reading() as conn:
            due = conn.execute(
                select(
                    PortfolioRelay,
                    PeriodRoot.root,
                    PeriodRoot.energy_wh,
                    PeriodRoot.meter_count,
                    RootOutbox.tx_id,
                )
                .join(PeriodRoot, PeriodRoot.id == PortfolioRelay.period_id)
                .join(RootOutbox, RootOutbox.period_id == PortfolioRelay.period_id)
                .where(PortfolioRelay.status == "pending", PortfolioRelay.next_attempt_at <= now)
                .order_by(PortfolioRelay.interval_start, PortfolioRelay.period_id)
                .limit(limit)
            ).all()
        sent = 0
        for row in due:
            call = self.contract.functions.recordPortfolio(
                portfolio_key(row.tenant),
                int(row.interval_start.timestamp()),
                int(row.energy_wh),
                bytes.fromhex(row.root),
                row.meter_count,
                bytes.fromhex(row.tx_id),
            )
            sent += self._send(row.period_id, row.attempts, call, "tx_hash")
        return sent

    def _send(self, period_id: int, attempts: int, call: Any, column: str) -> int:
        now = self._now()
        if column == "tx_hash":  # a record's next attempt is scheduled before it is sent
            with self.store.begin() as conn:
                later = now + backoff(attempts + 1)
                _mark(conn, period_id, now, attempts=attempts + 1, next_attempt_at=later)
        try:
            tx: dict[str, Any] = {"to": self.contract.address, "data": call._encode_transaction_data()}
            gas = estimate(self.w3, tx, self.sender.address) * 6 // 5
            result = self.sender.send(tx, gas)
        except CALL_ERRORS as exc:
            self._failed(period_id, exc, column)
            return 0
        values: dict[str, Any] = {column: result.tx_hash, "last_error": None}
        if column == "tx_hash":
            values.update(status="sent", sent_at=now)
        with self.store.begin() as conn:
            _mark(conn, period_id, now, **values)
        return 1

    def _failed(self, period_id: int, exc: BaseException, column: str) -> None:
        action, reason = classify(exc), describe(exc)
        dead = action in (Action.REVERT, Action.UNKNOWN) and column == "tx_hash"
        with self.store.begin() as conn:
            _mark(conn, period_id, self._now(), last_error=reason, **({"status": "dead"} if dead else {}))
        (log.error if dead else log.warning)("portfolio.failed", period=period_id, dead=dead, reason=reason)

    def confirm_once(self) -> int:
        """Follow sent records: final after `ethereum.confirmations` blocks; a failed receipt is dead;
        no receipt after `ethereum.stuck_after` seconds sends again. Returns how many became final."""
        now, head = self._now(), self.w3.eth.block_number
        with self.store.reading() as conn:
            rows = conn.execute(select(PortfolioRelay).where(PortfolioRelay.status == "sent")).all()
        final = 0
        for row in rows:
            receipt = _receipt(self.w3, row.tx_hash)
            with self.store.begin() as conn:
                if receipt is None:
                    if row.sent_at and now - row.sent_at > timedelta(
                        seconds=self.settings.ethereum.stuck_after
                    ):
                        _mark(conn, row.period_id, now, status="pending", last_error="no receipt: sent again")
                    continue
                if receipt["status"] != 1:
                    _mark(conn, row.period_id, now, status="dead", last_error="recordPortfolio reverted")
                elif head - receipt["blockNumber"] + 1 >= self.settings.ethereum.confirmations:
                    values = {"block_number": receipt["blockNumber"], "gas_used": receipt["gasUsed"]}
                    _mark(conn, row.period_id, now, status="final", next_attempt_at=now, **values)
                    final += 1
        return final

    def settle_once(self, limit: int = 50) -> int:
        """`settle` final, unsettled intervals that have a plan on chain; how many became settled."""
        now = self._now()
        with self.store.reading() as conn:
            rows = conn.execute(
                select(PortfolioRelay)
                .where(PortfolioRelay.status == "final", PortfolioRelay.settled.is_(False))
                .where(PortfolioRelay.next_attempt_at <= now)
                .order_by(PortfolioRelay.interval_start)
                .limit(limit)
            ).all()
        settled = 0
        for row in rows:
            key, start = portfolio_key(row.tenant), int(row.interval_start.timestamp())
            interval = self.contract.functions.intervalOf(key, start).call()
            if interval[5]:  # settled already (by anyone)
                with self.store.begin() as conn:
                    _mark(conn, row.period_id, now, settled=True)
                settled += 1
            elif interval[3] and row.settle_tx_hash is None:  # planned: settle it
                settle = self.contract.functions.settle(key, [start])
                self._send(row.period_id, row.attempts, settle, "settle_tx_hash")
            elif row.settle_tx_hash is not None and _receipt(self.w3, row.settle_tx_hash) is None:
                continue  # the settle is on its way
            else:  # no plan yet, or the settle did not take: look again later
                with self.store.begin() as conn:
                    later = now + backoff(row.attempts + 1)
                    _mark(
                        conn,
                        row.period_id,
                        now,
                        settle_tx_hash=None,
                        attempts=row.attempts + 1,
                        next_attempt_at=later,
                    )
        return settled


def _mark(conn: Connection, period_id: int, now: datetime, **values: Any) -> None:
    conn.execute(
        update(PortfolioRelay).where(PortfolioRelay.period_id == period_id).values(updated_at=now, **values)
    )


def _receipt(w3: Web3, tx_hash: str | None) -> Any:
    if not tx_hash:
        return None
    try:
        return w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    except CALL_ERRORS:
        return None


def portfolio_round(settings: Settings, store: Store, clock: Any) -> Callable[[], None]:
    """The scheduler's job in portfolio mode: one round of a PortfolioRelayService made on first use
    (the contract may be deployed after the connector started: until then a round logs NotDeployed)."""

    made: list[PortfolioRelayService] = []

    def job() -> None:
        if not made:
            w3 = connect(settings.ethereum.rpc_url)
            address = contract_address(settings.ethereum, store)
            made.append(
                PortfolioRelayService(settings, store, clock, w3, address, reporter_account(settings))
            )
        made[0].round()

    return job
