"""The root writer: turns root outbox rows into signed, sent and confirmed BigchainDB transactions.

The meters' ledger writer (dispatcher.py) in small: per tenant strictly in seq order (its CREATE, then its
roots in the order they were built), one row at a time. A row is claimed, signed once (the signed bytes are
stored, so a resend is identical), its next attempt scheduled and committed before it is sent; it is
confirmed only by reading it back from the ledger. Failures are classified by connector/ledger/errors.py:
a rejection is dead (logged, the next root still goes: a root does not spend another's data, only the
asset's output), anything else is retried with capped exponential backoff.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests
import structlog
from bigchaindb_driver.exceptions import BigchaindbException
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.keystore import LEDGER_KEY_LENGTHS, Keystore, KeystoreError
from connector.ledger.client import DriverClient, LedgerClient
from connector.ledger.errors import Verdict, classify
from connector.ledger.metadata import MetadataError
from connector.ledger.outbox import CREATE
from connector.ledger.recovery import reopen_create
from connector.ledger.roots import root_metadata, tenant_asset, tenant_metadata, tenant_ref
from connector.ledger.transactions import serialize, sign_create, sign_transfer, spent_tx_id
from connector.settings import Settings
from connector.store.db import Store
from connector.store.tree_models import PeriodRoot, PeriodSubtree, RootOutbox, TenantAsset

log = structlog.get_logger("connector.ledger.roots")
# The driver's and the transport's errors, sorted by connector/ledger/errors.py (as the meters' writer).
CALL_ERRORS = (BigchaindbException, requests.RequestException, OSError, TypeError)
OPEN = ("pending", "sent")


class RootWriter:
    """Dispatches the root outbox. `clock` is a callable or has `.now()`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        keystore: Keystore,
        urls: list[str],
        clock: Any,
        client_factory: Callable[[], LedgerClient] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings, self.store, self.keystore = settings, store, keystore
        self.outcomes = Counter(
            "connector_roots",
            "Tenant-root ledger work per outcome (confirmed, sent, retried, blocked, dead)",
            ["outcome"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        for outcome in ("confirmed", "sent", "retried", "blocked", "dead"):
            self.outcomes.labels(outcome)  # exported from the start, as 0
        self._now: Callable[[], datetime] = getattr(clock, "now", clock)
        self._client = (client_factory or (lambda: DriverClient(list(urls), settings.ledger)))()
        self._keys_checked = False  # renew_rejected_tenant_keys, once before the first dispatch

    def dispatch_once(self, max_rows: int = 500) -> dict[str, int]:
        """Work every tenant's due rows in order, up to `max_rows`; return counts per outcome."""
        if not self._keys_checked:
            renew_rejected_tenant_keys(self.store, self.keystore, self._now())
            self._keys_checked = True
        counts: dict[str, int] = {}
        for _ in range(max_rows):
            with self.store.reading() as conn:
                heads = _due_heads(conn, self._now())
            if not heads:
                break
            progressed = False
            for row_id in heads:
                outcome = self._advance(row_id)
                counts[outcome] = counts.get(outcome, 0) + 1
                self.outcomes.labels(outcome).inc()
                progressed |= outcome in ("confirmed", "dead")
            if not progressed:
                break
        return counts

    def _advance(self, row_id: int) -> str:
        prepared = self._prepare(row_id)
        if isinstance(prepared, str):
            return prepared
        row, tx = prepared
        try:
            if row.status == "sent" and self._client.retrieve(tx["id"]) is not None:
                return self._confirm(row, tx)
            # A handful of roots per period: each waits for its block (commit) and is confirmed at once,
            # whatever ledger.mode the meters' many TRANSFERs are sent in.
            self._client.send(tx, "commit")
            if self._client.retrieve(tx["id"]) is not None:
                return self._confirm(row, tx)
        except CALL_ERRORS as exc:
            return self._failed(row, tx, exc)
        self._update(row.id, status="sent", last_error="accepted (202), not yet readable")
        return "sent"

    def _prepare(self, row_id: int) -> tuple[Any, dict[str, Any]] | str:
        now = self._now()
        with self.store.begin() as conn:
            row = conn.execute(
                select(RootOutbox)
                .where(RootOutbox.id == row_id, RootOutbox.status.in_(OPEN))
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return "skipped"
            later = now + self.backoff(row.attempts + 1)
            try:
                tx = json.loads(row.tx_json) if row.tx_json else self._sign(conn, row, now)
            except MetadataError as exc:
                _set(conn, row.id, now, status="dead", last_error=str(exc))
                log.error("root.dead", tenant=row.tenant, row=row.id, reason=str(exc))
                return "dead"
            except (KeystoreError, _Blocked) as exc:
                _set(conn, row.id, now, attempts=row.attempts + 1, next_attempt_at=later, last_error=str(exc))
                return "blocked"
            values = {"attempts": row.attempts + 1, "next_attempt_at": later}
            _set(conn, row.id, now, tx_id=tx["id"], tx_json=serialize(tx), **values)
        return row, tx

    def backoff(self, attempt: int) -> timedelta:
        """Delay before the next attempt: backoff_base * 2^(attempt-1), capped at backoff_cap (ledger.*)."""
        cfg = self.settings.ledger
        return timedelta(seconds=min(cfg.backoff_cap, cfg.backoff_base * 2 ** min(attempt - 1, 30)))

    def _sign(self, conn: Connection, row: Any, now: datetime) -> dict[str, Any]:
        asset = _tenant_asset(conn, row.tenant)
        ref = tenant_ref(row.tenant)
        if row.operation == CREATE:
            keys = self.keystore.meter_keypair(ref) if asset.public_key is None else None
            keys = keys or self.keystore.keypair_for(ref, asset.public_key)
            conn.execute(
                update(TenantAsset).where(TenantAsset.tenant == row.tenant).values(public_key=keys.public_key)
            )
            return sign_create(keys, tenant_asset(row.tenant), tenant_metadata(row.tenant, now))
        if asset.asset_id is None or asset.head_tx is None or asset.public_key is None:
            raise _Blocked("the tenant's CREATE is not confirmed")
        keys = self.keystore.keypair_for(ref, asset.public_key)
        period = conn.execute(select(PeriodRoot).where(PeriodRoot.id == row.period_id)).one()
        subtrees = conn.execute(
            select(PeriodSubtree.prefix, PeriodSubtree.root)
            .where(PeriodSubtree.period_id == row.period_id)
            .order_by(PeriodSubtree.prefix)
        ).all()
        metadata = root_metadata(period, [(p, r) for p, r in subtrees])
        return sign_transfer(keys, asset.asset_id, asset.head_tx, metadata)

    def _confirm(self, row: Any, tx: dict[str, Any]) -> str:
        try:
            height = self._client.block_height(tx["id"])
        except CALL_ERRORS:
            height = None
        now = self._now()
        with self.store.begin() as conn:
            _set(
                conn, row.id, now, status="confirmed", block_height=height, confirmed_at=now, last_error=None
            )
            asset = update(TenantAsset).where(TenantAsset.tenant == row.tenant)
            if row.operation == CREATE:
                conn.execute(
                    asset.where(TenantAsset.asset_id.is_(None)).values(asset_id=tx["id"], head_tx=tx["id"])
                )
            else:
                conn.execute(asset.where(TenantAsset.head_tx == spent_tx_id(tx)).values(head_tx=tx["id"]))
        log.info("root.committed", tenant=row.tenant, row=row.id, tx_id=tx["id"], height=height)
        return "confirmed"

    def _failed(self, row: Any, tx: dict[str, Any], exc: BaseException) -> str:
        verdict = classify(exc)
        if verdict.verdict is Verdict.CONFLICT:
            try:
                if self._client.retrieve(tx["id"]) is not None:
                    return self._confirm(row, tx)
            except CALL_ERRORS:
                pass
        elif verdict.verdict is Verdict.PERMANENT:
            self._update(row.id, status="dead", last_error=verdict.reason)
            log.error("root.dead", tenant=row.tenant, row=row.id, reason=verdict.reason)
            return "dead"
        self._update(row.id, last_error=verdict.reason)
        log.warning("root.retry", tenant=row.tenant, row=row.id, reason=verdict.reason)
        return "retried"

    def _update(self, row_id: int, **values: Any) -> None:
        with self.store.begin() as conn:
            _set(conn, row_id, self._now(), **values)


class _Blocked(Exception):
    """A root cannot be signed yet (its tenant's asset is not confirmed)."""


def _set(conn: Connection, row_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(RootOutbox).where(RootOutbox.id == row_id).values(updated_at=now, **values))


def _tenant_asset(conn: Connection, tenant: str) -> Any:
    """The tenant's asset row, inserted empty the first time."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(TenantAsset).values(tenant=tenant).on_conflict_do_nothing())
    return conn.execute(select(TenantAsset).where(TenantAsset.tenant == tenant)).one()


RENEWED = "a new key: the ledger's schema rejects the tenant's earlier one"


def renew_rejected_tenant_keys(store: Store, keystore: Keystore, now: datetime) -> int:
    """Give each tenant whose root asset's CREATE was signed with a key BigchainDB's schema rejects
    (keystore's `ledger_accepts`; made before keys were checked) a new key, and the CREATE back to pending,
    to be signed again: the meters' `renew_rejected_keys` for the tenants' root assets. Without it the
    CREATE is dead and every root of the tenant waits on it, blocked, for ever.

    Safe for the same reason: no ledger transaction can be owned by such a key, so the tenant has no asset
    to lose. The new key is in the keystore (written and fsynced) before the store names it. Returns how
    many tenants got a new key."""
    rejected = and_(
        TenantAsset.asset_id.is_(None),
        TenantAsset.public_key.is_not(None),
        func.length(TenantAsset.public_key).not_in(LEDGER_KEY_LENGTHS),
    )
    with store.reading() as conn:
        tenants = list(conn.execute(select(TenantAsset.tenant).where(rejected)).scalars())
    renewed = 0
    for tenant in tenants:
        with store.begin() as conn:
            asset = conn.execute(
                select(TenantAsset.__table__).where(TenantAsset.tenant == tenant, rejected).with_for_update()
            ).one_or_none()
            if asset is None:  # another process renewed it meanwhile
                continue
            pair = keystore.replace_meter_keypair(tenant_ref(tenant), asset.public_key)
            conn.execute(
                update(TenantAsset).where(TenantAsset.tenant == tenant).values(public_key=pair.public_key)
            )
            reopen_create(conn, RootOutbox, RootOutbox.tenant == tenant, now, RENEWED)
        renewed += 1
        log.warning(
            "root.key_renewed", tenant=tenant, rejected_key=asset.public_key, public_key=pair.public_key
        )
    return renewed


def _due_heads(conn: Connection, now: datetime) -> list[int]:
    """Per tenant, the id of its lowest-seq open row, if that row is due."""
    sub = (
        select(RootOutbox.tenant, func.min(RootOutbox.seq).label("seq"))
        .where(RootOutbox.status.in_(OPEN))
        .group_by(RootOutbox.tenant)
        .subquery()
    )
    query = (
        select(RootOutbox.id)
        .join(sub, and_(RootOutbox.tenant == sub.c.tenant, RootOutbox.seq == sub.c.seq))
        .where(RootOutbox.status.in_(OPEN), RootOutbox.next_attempt_at <= now)
        .order_by(RootOutbox.id)
    )
    return [int(r) for r in conn.execute(query).scalars()]
