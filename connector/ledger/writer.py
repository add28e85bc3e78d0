"""The ledger writer: turns outbox rows into signed, sent and confirmed BigchainDB transactions.

Per row: claim it, sign it once and store the signed bytes, schedule the next attempt (attempts + 1 and
next_attempt_at with capped exponential backoff) and commit, and only then send. A crash anywhere after that
commit leads to a resend of the same bytes, which the ledger either accepts or answers with a duplicate
error that counts as success once the transaction is read back. Confirmation is always by reading the
transaction back from the ledger: a 202 is only a "maybe".

Meters are written in parallel (settings.ledger.concurrency), each meter strictly in seq order: only its
lowest open row is eligible, and a TRANSFER is signed only once its predecessor is confirmed (it spends the
meter's confirmed head). Nothing here starts a thread at import; `dispatch_once` is called by the scheduler.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import requests
import structlog
from bigchaindb_driver.exceptions import BigchaindbException
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from sqlalchemy import Connection, select, update

from connector.keystore import Keystore, KeystoreError
from connector.ledger.batch import BatchRound
from connector.ledger.client import DriverClient, LedgerClient
from connector.ledger.errors import Verdict, classify
from connector.ledger.jobs import Blocked, Job
from connector.ledger.metadata import (
    MetadataError,
    create_asset,
    create_metadata,
    transfer_metadata,
)
from connector.ledger.outbox import CREATE, claim, due_heads, update_row
from connector.ledger.recovery import HeadUnknown, recover, renew_rejected_keys, signing_keys
from connector.ledger.transactions import serialize, sign_create, sign_transfer, spent_tx_id
from connector.settings import LedgerSettings
from connector.store.db import Store
from connector.store.models import Meter, Window

log = structlog.get_logger("connector.ledger")

# A meter with a backlog gets at most this many rows per round, so one meter cannot starve the others.
ROWS_PER_METER_PER_ROUND = 200
CALL_ERRORS = (BigchaindbException, requests.RequestException, OSError, TypeError)  # see ledger/errors.py


class LedgerMetrics:
    """Prometheus counters per outcome, labelled by operation (CREATE or TRANSFER)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        op = ["operation"]
        self.committed = PromCounter(
            "connector_ledger_committed", "Transactions confirmed on the ledger", op, registry=registry
        )
        self.retried = PromCounter(
            "connector_ledger_retried", "Failed attempts that will be retried", op, registry=registry
        )
        self.stuck = PromCounter(
            "connector_ledger_stuck",
            "Attempts at a transaction past ledger.max_attempts (still retried: a window is never skipped)",
            op,
            registry=registry,
        )
        self.dead = PromCounter(
            "connector_ledger_dead",
            "Transactions given up (rejected by the ledger, unbuildable)",
            op,
            registry=registry,
        )
        self.recovered = PromCounter(
            "connector_ledger_head_recovered", "Chain heads re-discovered from the ledger", registry=registry
        )


class LedgerWriter:
    """Dispatches the ledger outbox; see the module docstring. `clock` is a callable or has `.now()`."""

    def __init__(
        self,
        settings: LedgerSettings,
        store: Store,
        keystore: Keystore,
        urls: list[str],
        clock: Any,
        registry: CollectorRegistry | None = None,
        client_factory: Callable[[], LedgerClient] | None = None,
        batched: bool | None = None,
    ) -> None:
        self.cfg = settings  # the ledger.* settings
        self.store = store
        self.keystore = keystore
        self.urls = list(urls)
        self._now: Callable[[], datetime] = getattr(clock, "now", clock)
        self._client_factory = client_factory or (lambda: DriverClient(self.urls, settings))
        self._local = threading.local()
        self.metrics = LedgerMetrics(registry)
        # Batched rounds (connector/ledger/batch.py) talk HTTP and follow the event stream themselves, so
        # they are the default only for a real ledger, not for a writer given its own client (tests' fakes).
        self.batched = client_factory is None if batched is None else batched
        self._batch: BatchRound | None = None
        self._keys_checked = False  # renew_rejected_keys, once before the first dispatch

    def close(self) -> None:
        """Stop the batched rounds' stream follower and close their connections (a later round reopens)."""
        if self._batch is not None:
            self._batch.close()
            self._batch = None

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def client(self) -> LedgerClient:
        """This thread's ledger client (HTTP sessions are not shared between threads)."""
        client: LedgerClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._client_factory()
        return client

    def dispatch_once(self) -> dict[str, int]:
        """One round over every meter with due work; returns counts of outcomes (confirmed, sent, retried,
        dead, recovered, skipped, blocked) and `meters`, the number of meters visited (batched: `claimed`,
        the rows taken, instead)."""
        if not self._keys_checked:
            renew_rejected_keys(self.store, self.keystore, self._now())
            self._keys_checked = True
        if self.batched:
            if self._batch is None:
                self._batch = BatchRound(self)
            return self._batch.dispatch()
        with self.store.reading() as conn:
            heads = due_heads(conn, self._now())
        firsts: dict[int, int] = {}
        for row_id, meter_id in heads:
            firsts.setdefault(meter_id, row_id)
        counts: Counter[str] = Counter(meters=len(firsts))
        workers = max(1, min(self.cfg.concurrency, len(firsts)))
        if workers == 1:
            for meter_id, row_id in firsts.items():
                counts.update(self._drain_meter(meter_id, row_id))
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="ledger-writer") as pool:
                for result in pool.map(lambda item: self._drain_meter(*item), firsts.items()):
                    counts.update(result)
        return dict(counts)

    def _drain_meter(self, meter_id: int, row_id: int) -> Counter[str]:
        counts: Counter[str] = Counter()
        for _ in range(ROWS_PER_METER_PER_ROUND):
            outcome = self._advance(row_id)
            counts[outcome] += 1
            if outcome not in ("confirmed", "recovered", "dead"):
                break
            with self.store.reading() as conn:
                nxt = due_heads(conn, self._now(), meter_id=meter_id, limit=1)
            if not nxt:
                break
            row_id = nxt[0][0]
        return counts

    # -- one row --------------------------------------------------------------------------------------------

    def _advance(self, row_id: int) -> str:
        job = self._prepare(row_id)
        if isinstance(job, str):
            return job
        client = self.client()
        try:
            if job.was_sent and client.retrieve(job.tx_id) is not None:
                return self._confirm(job)  # the earlier 202 did land
            client.send(job.tx, self.cfg.mode)
        except CALL_ERRORS as exc:
            return self._failed(job, exc)
        return self._after_send(job)

    def report_if_stuck(self, row: Any) -> None:
        """Count and log a row past ledger.max_attempts. Out of tries on failures that were never a
        rejection (ledger away, timeouts, no key yet), giving up would leave a hole in the meter's history,
        because its later windows would still be anchored: so the row stays open at the backoff cap."""
        if row.attempts < self.cfg.max_attempts:
            return
        self.metrics.stuck.labels(row.operation).inc()
        log.error(
            "ledger.stuck",
            meter_id=row.meter_id,
            row=row.id,
            operation=row.operation,
            attempts=row.attempts,
            reason=row.last_error or "no error recorded",
        )

    def _prepare(self, row_id: int) -> Job | str:
        """Claim, sign if not signed yet, schedule the next attempt; committed before anything is sent."""
        now = self._now()
        with self.store.begin() as conn:
            row = claim(conn, row_id, now)
            if row is None:
                return "skipped"
            self.report_if_stuck(row)
            retry_at = now + self.backoff(row.attempts + 1)
            try:
                tx = json.loads(row.tx_json) if row.tx_json else self._sign(conn, row.meter_id, row)
            except MetadataError as exc:
                return self._dead(conn, row.id, row.meter_id, row.operation, str(exc), now)
            except (Blocked, KeystoreError) as exc:
                later = {"attempts": row.attempts + 1, "next_attempt_at": retry_at, "last_error": str(exc)}
                update_row(conn, row.id, now, **later)
                log.warning("ledger.blocked", meter_id=row.meter_id, row=row.id, reason=str(exc))
                return "blocked"
            text = row.tx_json or serialize(tx)
            update_row(
                conn,
                row.id,
                now,
                attempts=row.attempts + 1,
                next_attempt_at=retry_at,
                tx_id=tx["id"],
                tx_json=text,
            )
        return Job(row.id, row.meter_id, row.operation, tx, text, was_sent=row.status == "sent")

    def backoff(self, attempt: int) -> timedelta:
        """Delay before attempt `attempt + 1`: backoff_base * 2^(attempt-1), capped at backoff_cap."""
        cfg = self.cfg
        return timedelta(seconds=min(cfg.backoff_cap, cfg.backoff_base * 2 ** min(attempt - 1, 30)))

    def _sign(self, conn: Connection, meter_id: int, row: Any) -> dict[str, Any]:
        meter = Meter(**conn.execute(select(Meter.__table__).where(Meter.id == meter_id)).one()._mapping)
        window = None
        if row.operation != CREATE:
            found = conn.execute(select(Window.__table__).where(Window.id == row.window_id)).one()
            window = Window(**found._mapping)
        tx = self.sign_row(meter, row, window)
        if row.operation == CREATE:
            public_key = tx["inputs"][0]["owners_before"][0]
            conn.execute(update(Meter).where(Meter.id == meter_id).values(public_key=public_key))
        return tx

    def sign_row(self, meter: Meter, row: Any, window: Window | None) -> dict[str, Any]:
        """The signed transaction of outbox `row` of `meter` (`window`: the TRANSFER's window). Raises
        Blocked (no confirmed asset yet), KeystoreError (e.g. the asset's key is missing), MetadataError."""
        keys = signing_keys(self.keystore, meter)  # KeyMissing (held) when the keystore lost the asset's key
        if row.operation == CREATE:
            return sign_create(keys, create_asset(meter, self.cfg), create_metadata(meter))
        if meter.asset_id is None or meter.ledger_head_tx is None or window is None:
            raise Blocked("the meter's CREATE is not confirmed")
        return sign_transfer(keys, meter.asset_id, meter.ledger_head_tx, transfer_metadata(meter, window))

    def _after_send(self, job: Job) -> str:
        try:
            landed = self.client().retrieve(job.tx_id) is not None
        except CALL_ERRORS as exc:
            landed, error = False, classify(exc).reason
        else:
            error = "accepted (202), not yet readable"
        if landed:
            return self._confirm(job)
        with self.store.begin() as conn:
            update_row(conn, job.row_id, self._now(), status="sent", last_error=error)
        return "sent"

    def _confirm(self, job: Job) -> str:
        try:
            height = self.client().block_height(job.tx_id)
        except CALL_ERRORS:
            height = None  # the tx is readable, so it is committed; the height is a nicety
        now = self._now()
        with self.store.begin() as conn:
            done = {"status": "confirmed", "block_height": height, "confirmed_at": now, "last_error": None}
            update_row(conn, job.row_id, now, **done)
            meter = update(Meter).where(Meter.id == job.meter_id)
            if job.operation == CREATE:
                first = meter.where(Meter.asset_id.is_(None))
                conn.execute(first.values(asset_id=job.tx_id, ledger_head_tx=job.tx_id))
            else:  # the head only moves along the chain, never back
                spent = spent_tx_id(job.tx)
                conn.execute(meter.where(Meter.ledger_head_tx == spent).values(ledger_head_tx=job.tx_id))
        self.metrics.committed.labels(job.operation).inc()
        log.debug("ledger.committed", meter_id=job.meter_id, row=job.row_id, tx_id=job.tx_id, height=height)
        return "confirmed"

    def _failed(self, job: Job, exc: BaseException) -> str:
        verdict = classify(exc)
        if verdict.verdict is Verdict.CONFLICT:
            return self._conflict(job, verdict.reason)
        if verdict.verdict is Verdict.PERMANENT:
            with self.store.begin() as conn:
                return self._dead(conn, job.row_id, job.meter_id, job.operation, verdict.reason, self._now())
        return self._retry(job, verdict.reason)

    def _conflict(self, job: Job, reason: str) -> str:
        """The ledger says our tx conflicts: success if it is our very tx, else our head is stale."""
        try:
            if self.client().retrieve(job.tx_id) is not None:
                return self._confirm(job)
            if job.operation == CREATE:
                return self._retry(job, reason)  # a duplicate not readable yet: look again later
            recover(self.store, self.client(), job.meter_id, self._now())
        except (HeadUnknown, *CALL_ERRORS) as exc:
            return self._retry(job, f"{reason}; head recovery failed: {exc}")
        self.metrics.recovered.inc()
        return "recovered"

    def _retry(self, job: Job, reason: str) -> str:
        with self.store.begin() as conn:
            update_row(conn, job.row_id, self._now(), last_error=reason)
        self.metrics.retried.labels(job.operation).inc()
        log.warning("ledger.retry", meter_id=job.meter_id, row=job.row_id, tx_id=job.tx_id, reason=reason)
        return "retried"

    def _dead(
        self, conn: Connection, row_id: int, meter_id: int, operation: str, reason: str, now: datetime
    ) -> str:
        update_row(conn, row_id, now, status="dead", last_error=reason)
        self.metrics.dead.labels(operation).inc()
        log.error("ledger.dead", meter_id=meter_id, row=row_id, operation=operation, reason=reason)
        return "dead"
