"""The relay: confirmed windows -> outbox rows -> one recordIntervals batch per interval -> final.

The connector's scheduler calls `enqueue`, `dispatch_once`, `confirm_once` and `settle_once` periodically;
nothing here starts threads. Every outcome is logged as `ethereum.relay.<outcome>` and counted in
`connector_eth_relay_total{outcome}`; `dead`, `conflict`, `settle_failed` and `replace_failed` with an
error that has no evidence behind it are alerts (logged at error level). Only the libraries' error
classes are caught around node calls (`errors.CALL_ERRORS`); `errors.classify` sorts them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from web3 import Web3

from connector.context import utc_now
from connector.ethereum import outbox
from connector.ethereum.client import connect, contract_address
from connector.ethereum.contract import record_slots, unix_seconds
from connector.ethereum.errors import CALL_ERRORS, FeeCapReached, classify, describe
from connector.ethereum.gateway import EthereumGateway, Receipt, Web3Gateway
from connector.ethereum.models import RelayOutbox
from connector.ethereum.sender import Fees, Sender
from connector.settings import EthereumSettings
from connector.store.db import Store

BATCH_BASE_GAS = 60_000
PER_METER_GAS_BOUND = 55_000  # a meter's first record (new chain head slot) costs about 50k
log = structlog.get_logger("connector.ethereum.relay")


class RelayService:
    """Relays confirmed windows to the settlement contract with one key and one local nonce."""

    def __init__(
        self,
        eth: EthereumSettings,
        store: Store,
        clock: Callable[[], datetime] = utc_now,
        *,
        account: LocalAccount,
        w3: Web3 | None = None,
        address: str | None = None,
        registry: CollectorRegistry | None = None,
        stuck_after: float = 60.0,
        gateway: EthereumGateway | None = None,
    ) -> None:
        self.eth = eth
        self.store = store
        self.clock = clock
        self.gateway = gateway or Web3Gateway(
            w3 or connect(self.eth.rpc_url), lambda: address or contract_address(eth, store)
        )
        self.account = account
        self.sender = Sender(self.gateway, self.account, self.eth.max_fee_gwei, self.eth.priority_fee_gwei)
        self._interval_length: int | None = None
        self.stuck_after = stuck_after
        self.counter = Counter(
            "connector_eth_relay", "Relay outcomes", ["outcome"], registry=registry or CollectorRegistry()
        )

    @property
    def interval_length(self) -> int:
        """Seconds per interval as deployed (the contract's immutable intervalLength), read once."""
        if self._interval_length is None:
            self._interval_length = self.gateway.interval_length()
        return self._interval_length

    @property
    def batch_size(self) -> int:
        """Meters per batch so that even first-time meters stay under ethereum.gas_cap."""
        return max(1, (self.eth.gas_cap - BATCH_BASE_GAS) // PER_METER_GAS_BOUND)

    def _count(self, outcome: str, n: int = 1, alert: bool = False, **fields: Any) -> None:
        if n:
            self.counter.labels(outcome).inc(n)
            level = log.error if alert or outcome in ("dead", "conflict") else log.info
            level(f"ethereum.relay.{outcome}", count=n, **fields)

    # ----- enqueue -----

    def enqueue(self, limit: int = 5000) -> int:
        """Add one relay row per confirmed window that has none (idempotent); returns rows added."""
        now = self.clock()
        try:
            with self.store.begin() as conn:
                values = [
                    outbox.relay_values(row, now)
                    for row in outbox.confirmed_windows_without_relay(conn, limit)
                ]
                outbox.insert_relays(conn, values)
        except IntegrityError:
            return 0  # another enqueuer won the race; the next poll sees its rows
        self._count("enqueued", sum(v["status"] == "pending" for v in values))
        self._count("dead", sum(v["status"] == "dead" for v in values), reason="invalid window")
        return len(values)

    # ----- dispatch -----

    def dispatch_once(self) -> int:
        """Send one batch (the oldest due interval, up to the gas cap); returns the rows sent."""
        now = self.clock()
        with self.store.reading() as conn:
            rows = outbox.due_batch(conn, now, self.batch_size)
        if not rows:
            return 0
        tx = self._record_tx(rows)
        try:
            gas = self._estimate(tx)
        except CALL_ERRORS as exc:
            self._send_failed(rows, exc, now)
            return 0
        with self.store.begin() as conn:
            outbox.schedule_attempt(conn, rows, now)
        try:
            sent = self.sender.send(tx, gas)
        except CALL_ERRORS as exc:
            self._send_failed(rows, exc, now)
            return 0
        self._record_sent(rows, sent, "record", now)
        return len(rows)

    def _record_tx(self, rows: list[RelayOutbox]) -> dict[str, Any]:
        """The recordIntervals transaction (to, data, accessList) of one batch."""
        start = unix_seconds(rows[0].interval_start)
        keys = [bytes.fromhex(r.meter_key) for r in rows]
        data = self.gateway.record_intervals_data(
            start,
            keys,
            [r.energy_wh for r in rows],
            [bytes.fromhex(r.fingerprint) for r in rows],
            [bytes.fromhex(r.ledger_tx_id) for r in rows],
        )
        address = self.gateway.contract_address
        slots = [slot for key in keys for slot in record_slots(key, start, self.interval_length)]
        access_list = [{"address": address, "storageKeys": ["0x" + s.hex() for s in slots]}]
        return {"to": address, "data": data, "accessList": access_list}

    def _estimate(self, tx: dict[str, Any]) -> int:
        estimate = self.gateway.estimate_gas({"from": self.sender.address, **tx})
        return min(self.eth.gas_cap, estimate * 6 // 5)

    def _send_failed(self, rows: list[RelayOutbox], exc: Exception, now: datetime) -> None:
        action = classify(exc)
        ids = [r.id for r in rows]
        error = describe(exc)
        with self.store.begin() as conn:
            if action.dead:
                outbox.mark(conn, ids, now, status="dead", last_error=error)
            else:
                outbox.mark(conn, ids, now, last_error=error)
        if action.dead:
            self._count("dead", len(ids), reason=error, action=action.value)
        else:
            self._count("retried", len(ids), reason=error, fee_cap=isinstance(exc, FeeCapReached))
            # Past max_attempts a failure that is not a revert (node away, fees, nonce) is reported, not given
            # up: a meter's later intervals would be recorded without this one and break its on-chain chain.
            worn = sum(1 for r in rows if r.attempts >= self.eth.max_attempts)
            if worn:
                self.counter.labels("stuck").inc(worn)
                log.error("ethereum.relay.stuck", count=worn, attempts=self.eth.max_attempts, reason=error)

    def _record_sent(self, rows: list[Any], sent: Any, kind: str, now: datetime) -> None:
        with self.store.begin() as conn:
            tx_id = outbox.add_transaction(
                conn,
                kind=kind,
                interval_start=rows[0].interval_start,
                sender=self.sender.address,
                nonce=sent.nonce,
                tx_hash=sent.tx_hash,
                max_fee_wei=sent.fees.max_fee,
                priority_fee_wei=sent.fees.priority_fee,
                gas_limit=sent.gas,
                status="sent",
                sent_at=now,
                updated_at=now,
            )
            ids = [r.id for r in rows]
            if kind == "record":
                outbox.mark(conn, ids, now, status="sent", transaction_id=tx_id, last_error=None)
            else:
                outbox.mark(conn, ids, now, settle_transaction_id=tx_id)
        self._count(f"{kind}_sent", len(rows), tx_hash=sent.tx_hash, nonce=sent.nonce)

    # ----- settle -----

    def settle_once(self) -> int:
        """Send one settle() for final rows that have an uploaded plan and are due; returns the rows covered.

        Whether each row was settled is checked when the transaction is final (`_check_settled`)."""
        now = self.clock()
        with self.store.reading() as conn:
            rows = outbox.settle_batch(conn, now, self.batch_size)
        if not rows:
            return 0
        data = self.gateway.settle_data(
            unix_seconds(rows[0].interval_start), [bytes.fromhex(r.meter_key) for r in rows]
        )
        tx = {"to": self.gateway.contract_address, "data": data}
        try:
            sent = self.sender.send(tx, self._estimate(tx))
        except CALL_ERRORS as exc:
            self._settle_failed(rows, exc, now)
            return 0
        self._record_sent(rows, sent, "settle", now)
        return len(rows)

    def _settle_failed(self, rows: list[Any], exc: Exception, now: datetime) -> None:
        """A settle() that could not be sent is tried again at the next round; a revert or an error without
        evidence is alerted and waits the backoff first. The rows stay final: their record is on chain,
        and settle() only adds the imbalance, so giving it up would lose a settlement for nothing."""
        action = classify(exc)
        if not action.dead:
            self._count("settle_retried", len(rows), reason=describe(exc))
            return
        with self.store.begin() as conn:
            outbox.retry_settle(conn, rows, now)
        self._count("settle_failed", len(rows), alert=True, reason=describe(exc), action=action.value)

    # ----- confirm -----

    def confirm_once(self) -> int:
        """Follow every open transaction: final after N confirmations, re-send what fell out, replace
        what is stuck. Returns the relay rows that became final."""
        with self.store.reading() as conn:
            txs = outbox.open_transactions(conn)
        head = self.gateway.block_number() if txs else 0
        return sum(self._follow(tx, head) for tx in txs)

    def _follow(self, tx: Any, head: int) -> int:
        now = self.clock()
        found = self._receipt(tx)
        if found is None:
            if tx.status == "mined" or not self._known(tx.tx_hash):
                self._dropped(tx, now)
            elif (now - tx.updated_at).total_seconds() >= self.stuck_after:
                self._replace(tx, now)
            return 0
        tx_hash, receipt = found
        confirmations = head - receipt.block_number + 1
        final = receipt.status == 1 and confirmations >= self.eth.confirmations
        status = "reverted" if receipt.status != 1 else ("final" if final else "mined")
        with self.store.begin() as conn:
            outbox.update_transaction(
                conn,
                tx.id,
                now,
                status=status,
                tx_hash=tx_hash,
                block_number=receipt.block_number,
                block_hash=receipt.block_hash,
                gas_used=receipt.gas_used,
            )
            if tx.kind == "record" and status in ("final", "reverted"):
                ids = self._rows_of(conn, tx.id)
                values = (
                    {"status": "final", "final_at": now, "next_attempt_at": now}  # settle is due now
                    if final
                    else {"status": "dead", "last_error": "reverted"}
                )
                outbox.mark(conn, ids, now, **values)
        return self._after_receipt(tx, receipt, status)

    def _after_receipt(self, tx: Any, receipt: Receipt, status: str) -> int:
        if status == "reverted":
            self._count("dead", 1, tx_hash=tx.tx_hash, reason="transaction reverted")
            return 0
        if status == "final" and tx.kind == "settle":
            self._check_settled(tx, receipt)
        if status != "final" or tx.kind != "record":
            return 0
        for meter in self.gateway.record_conflicts(receipt):
            self._count("conflict", 1, meter_key=meter.hex(), tx_hash=tx.tx_hash)
        with self.store.reading() as conn:
            n = len(self._rows_of(conn, tx.id))
        self._count("final", n, tx_hash=tx.tx_hash, block=receipt.block_number)
        return n

    def _check_settled(self, tx: Any, receipt: Receipt) -> None:
        """Rows of a final settle() that the contract skipped (their plan was not on chain yet, e.g. its
        transaction was still pending or fell out in a reorg) are unlinked and settled again after a backoff.
        A row settled by someone else's earlier settle() (planOf says settled) keeps the link."""
        settled = {meter.hex() for meter in self.gateway.settled_meters(receipt)}
        with self.store.reading() as conn:
            rows = outbox.settle_rows(conn, tx.id)
        start = unix_seconds(tx.interval_start)
        missed = [
            r
            for r in rows
            if r.meter_key not in settled and not self.gateway.plan_settled(bytes.fromhex(r.meter_key), start)
        ]
        if not missed:
            return
        now = self.clock()
        with self.store.begin() as conn:
            outbox.retry_settle(conn, missed, now)
        self._count("settle_retried", len(missed), tx_hash=tx.tx_hash, reason="no plan on chain when settled")

    def _rows_of(self, conn: Any, tx_id: int) -> list[int]:
        query = select(RelayOutbox.id).where(RelayOutbox.transaction_id == tx_id)
        return [int(i) for i in conn.execute(query).scalars()]

    def _receipt(self, tx: Any) -> tuple[str, Receipt] | None:
        for tx_hash in reversed(json.loads(tx.tx_hashes)):
            receipt = self.gateway.receipt(tx_hash)
            if receipt is not None:
                return tx_hash, receipt
        return None

    def _known(self, tx_hash: str) -> bool:
        return self.gateway.transaction(tx_hash) is not None

    def _dropped(self, tx: Any, now: datetime) -> None:
        """The transaction fell out (reorg, node restart): its rows go back to pending and are sent again."""
        self.sender.resync()
        with self.store.begin() as conn:
            outbox.update_transaction(conn, tx.id, now, status="dropped")
            if tx.kind == "record":
                ids = self._rows_of(conn, tx.id)
                outbox.mark(conn, ids, now, status="pending", transaction_id=None, next_attempt_at=now)
            else:
                _unlink_settle(conn, tx.id, now)
        self._count("resent", 1, tx_hash=tx.tx_hash, kind=tx.kind)

    def _replace(self, tx: Any, now: datetime) -> None:
        """Same nonce, same call, fees +12.5 % (within the cap): replaces a transaction stuck in the pool."""
        original = self.gateway.transaction(tx.tx_hash)
        if original is None:  # gone since _follow looked: the next confirm_once sees it dropped
            return
        call = {"to": original["to"], "data": original["input"], "accessList": original.get("accessList", [])}
        try:
            fees = self.sender.bumped(Fees(int(tx.max_fee_wei), int(tx.priority_fee_wei)))
            sent = self.sender.send(call, int(tx.gas_limit), fees=fees, nonce=int(tx.nonce))
        except CALL_ERRORS as exc:  # the next confirm_once looks again; a mined original shows up there
            action = classify(exc)
            reason = describe(exc)
            self._count("replace_failed", 1, alert=action.dead, tx_hash=tx.tx_hash, reason=reason)
            return
        hashes = [*json.loads(tx.tx_hashes), sent.tx_hash]
        with self.store.begin() as conn:
            outbox.update_transaction(
                conn,
                tx.id,
                now,
                tx_hash=sent.tx_hash,
                tx_hashes=json.dumps(hashes),
                max_fee_wei=fees.max_fee,
                priority_fee_wei=fees.priority_fee,
            )
        self._count("replaced", 1, old=tx.tx_hash, new=sent.tx_hash, max_fee=fees.max_fee)


def _unlink_settle(conn: Any, tx_id: int, now: datetime) -> None:
    conn.execute(
        update(RelayOutbox)
        .where(RelayOutbox.settle_transaction_id == tx_id)
        .values(settle_transaction_id=None, updated_at=now)
    )


def relay_round(relay: RelayService, max_batches: int = 50) -> None:
    """One oracle round: queue confirmed windows, send due batches, follow open transactions, send the
    intervals whose meter's earlier interval has just been mined, settle."""
    relay.enqueue()
    _dispatch(relay, max_batches)
    relay.confirm_once()
    _dispatch(relay, max_batches)
    relay.settle_once()


def _dispatch(relay: RelayService, max_batches: int) -> None:
    for _ in range(max_batches):
        if not relay.dispatch_once():
            break
