"""Keep exactly one Orion subscription per entity type and tenant pointing at the connector.

`SubscriptionManager.ensure()` reconciles Orion with the settings: create what is missing, re-activate
what Orion's failure policy turned off, PATCH what differs, delete duplicates. `check()` does the same
and also reads Orion's delivery counters into Prometheus gauges and structured logs: Orion NGSIv2 turns a
subscription inactive after `maxFailsLimit` failed deliveries and never turns it back (reference/orion.md),
Orion-LD pauses one after 3, so a periodic check is what keeps data flowing after the connector was down.
A subscription an operator turned off, or one whose `expires` has passed, is left as it is and reported
(action `left_inactive` / `left_expired`).

Tenants are reconciled one by one and one tenant's failure never stops the others: the failure is logged
and counted (`connector_orion_subscription_errors_total`), the other tenants are done, then the first
failure is raised. Orion-LD answers 404 "No such tenant" to a GET for a tenant nothing was created in yet:
that is an empty listing (the POST creates the tenant).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from ngsi import subscription_spec as spec
from ngsi.config import SubscriptionSettings
from ngsi.orion import OrionClient, OrionError, OrionRequestError, Scope

log = structlog.get_logger("connector.orion")

Clock = Callable[[], datetime]
LABELS = ("tenant", "service_path", "entity_type")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What ensure()/check() did for one entity type in one tenant."""

    tenant: str
    service_path: str
    entity_type: str
    subscription_id: str
    action: str  # created | updated | reactivated | unchanged | left_inactive | left_expired
    changed: tuple[str, ...] = ()  # fields PATCHed
    deleted: tuple[str, ...] = ()  # ids of duplicate subscriptions removed

    def describe(self) -> str:
        """One human line: `tenant 'tk' /# SMX: updated 5f0… (notification); deleted 1 duplicate`."""
        tenant = repr(self.tenant) if self.tenant else "default"
        text = f"tenant {tenant} {self.service_path} {self.entity_type}: {self.action} {self.subscription_id}"
        if self.changed:
            text += f" ({', '.join(self.changed)})"
        if self.deleted:
            text += f"; deleted {len(self.deleted)} duplicate(s)"
        return text


@dataclass(frozen=True)
class SubscriptionStatus:
    """Orion's delivery counters of one connector subscription as read by check() (before any repair)."""

    tenant: str
    service_path: str
    entity_type: str
    subscription_id: str
    status: str  # active | inactive | paused | expired | oneshot | missing
    times_sent: int = 0
    fails_counter: int = 0
    last_notification: datetime | None = None
    last_failure: datetime | None = None
    last_failure_reason: str = ""
    last_success: datetime | None = None
    last_success_code: int | None = None
    action: str = "unchanged"  # what check() did about it (see Outcome.action)


class SubscriptionMetrics:
    """Prometheus gauges of Orion's counters; build once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "connector_orion_subscription_"
        self.active = Gauge(
            p + "active", "1 when Orion reported the subscription active", LABELS, registry=registry
        )
        self.times_sent = Gauge(p + "times_sent", "Orion's timesSent", LABELS, registry=registry)
        self.fails = Gauge(
            p + "fails", "Orion's failsCounter (consecutive failures)", LABELS, registry=registry
        )
        self.success_code = Gauge(
            p + "last_success_code", "Orion's lastSuccessCode", LABELS, registry=registry
        )
        self.last_failure = Gauge(
            p + "last_failure_timestamp_seconds", "Orion's lastFailure", LABELS, registry=registry
        )
        self.last_notification = Gauge(
            p + "last_notification_timestamp_seconds", "Orion's lastNotification", LABELS, registry=registry
        )
        self.changes = Counter(
            p + "changes",
            "Subscriptions created, updated, re-activated, or left inactive / expired",
            ("action",),
            registry=registry,
        )
        self.errors = Counter(
            p + "errors",
            "Tenants whose reconciliation failed (Orion unreachable or refusing)",
            ("tenant",),
            registry=registry,
        )

    def observe(self, st: SubscriptionStatus) -> None:
        """Set every gauge of one subscription."""
        labels = (st.tenant, st.service_path, st.entity_type)
        self.active.labels(*labels).set(1 if st.status in (spec.ACTIVE, spec.FAILED) else 0)
        self.times_sent.labels(*labels).set(st.times_sent)
        self.fails.labels(*labels).set(st.fails_counter)
        self.success_code.labels(*labels).set(st.last_success_code or 0)
        self.last_failure.labels(*labels).set(st.last_failure.timestamp() if st.last_failure else 0)
        self.last_notification.labels(*labels).set(
            st.last_notification.timestamp() if st.last_notification else 0
        )


@dataclass
class _Target:
    scope: Scope
    want: spec.Desired
    current: dict[str, Any] | None = None
    duplicates: list[dict[str, Any]] = field(default_factory=list)


class SubscriptionManager:
    """Reconciles Orion's subscriptions with the settings; safe to call repeatedly and concurrently-free."""

    def __init__(
        self,
        settings: SubscriptionSettings,
        session: requests.Session | None = None,
        clock: Clock = _utc_now,
        registry: CollectorRegistry | None = None,
        *,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.client = OrionClient(
            settings.orion.url, ld=settings.orion.ld, session=session, attempts=attempts, sleep=sleep
        )
        self.metrics = SubscriptionMetrics(registry if registry is not None else CollectorRegistry())
        self.last_statuses: list[SubscriptionStatus] | None = None  # of the last check(); None before it
        self.last_errors: dict[str, str] = {}  # tenant -> why its last reconciliation failed
        self.last_outcomes: list[Outcome] = []  # of the last ensure(), the tenants done before a failure too

    @property
    def enabled(self) -> bool:
        """False when no Orion URL is configured (then ensure and check do nothing)."""
        return bool(self.settings.orion.url)

    def ensure(self) -> list[Outcome]:
        """Make Orion hold exactly one up-to-date, active subscription per entity type and tenant.

        Running it twice in a row changes nothing the second time (no POST, PATCH or DELETE).
        Raises OrionError (unreachable after retries, or a request Orion refused) or SubscriptionSpecError.
        """
        self.last_outcomes = []
        self._reconcile_all(lambda done: self.last_outcomes.extend(outcome for outcome, _ in done))
        return list(self.last_outcomes)

    def check(self) -> list[SubscriptionStatus]:
        """Read Orion's delivery counters into gauges and logs; repair (re-activate, re-create) as ensure."""
        statuses: list[SubscriptionStatus] = []

        def observe(done: list[tuple[Outcome, dict[str, Any] | None]]) -> None:
            for outcome, seen in done:
                st = _status(outcome, seen, self.settings.orion.ld, self.clock())
                self.metrics.observe(st)
                _log_status(st)
                statuses.append(st)

        try:
            self._reconcile_all(observe)
        finally:
            self.last_statuses = statuses
        return statuses

    def health(self) -> dict[str, Any]:
        """The /health entry: `ok` when every subscription of the last check is active and not failing."""
        if self.last_statuses is None and not self.last_errors:
            return {"status": "unknown", "detail": "not checked yet"}
        subs = [
            {
                "tenant": st.tenant,
                "entity_type": st.entity_type,
                "status": _now_status(st),
                "fails": st.fails_counter,
            }
            for st in self.last_statuses or []
        ]
        failing = self.last_errors or any(s["status"] != spec.ACTIVE for s in subs)
        answer: dict[str, Any] = {"status": "failing" if failing else "ok", "subscriptions": subs}
        if self.last_errors:
            answer["errors"] = dict(self.last_errors)
        return answer

    def _reconcile_all(
        self, each: Callable[[list[tuple[Outcome, dict[str, Any] | None]]], None] | None = None
    ) -> list[tuple[Outcome, dict[str, Any] | None]]:
        """Every tenant in turn; a tenant that fails is logged and counted, the others still done, then
        the first failure is raised."""
        if not self.enabled:
            return []
        spec.check_expiry(self.settings, self.clock())
        wants = [spec.desired(self.settings, et) for et in self.settings.entity_types]
        done: list[tuple[Outcome, dict[str, Any] | None]] = []
        failures: list[OrionError] = []
        self.last_errors = {}
        for tenant in self.settings.orion.tenants or [""]:
            try:
                mine = self._reconcile_tenant(Scope(tenant, self.settings.orion.service_path), wants)
            except OrionError as exc:
                self._tenant_failed(tenant, exc)
                failures.append(exc)
                continue
            if each is not None:
                each(mine)
            done += mine
        if failures:
            if len(failures) > 1:
                failures[0].add_note(f"{len(failures)} tenants failed: {', '.join(self.last_errors)}")
            raise failures[0]
        return done

    def _reconcile_tenant(
        self, scope: Scope, wants: list[spec.Desired]
    ) -> list[tuple[Outcome, dict[str, Any] | None]]:
        listing = self._listing(scope)
        done = []
        for want in wants:
            target = self._match(scope, want, listing)
            done.append((self._reconcile(target), target.current))
        return done

    def _listing(self, scope: Scope) -> list[dict[str, Any]]:
        """The tenant's subscriptions; none when Orion-LD does not know the tenant yet (404 on GET)."""
        try:
            return self.client.list_subscriptions(scope)
        except OrionRequestError as exc:
            if exc.status == 404 and self.settings.orion.ld:
                log.info("orion.tenant.new", tenant=scope.tenant, detail=exc.description[:200])
                return []
            raise

    def _tenant_failed(self, tenant: str, exc: OrionError) -> None:
        self.last_errors[tenant or "default"] = str(exc)[:300]
        self.metrics.errors.labels(tenant).inc()
        log.error("orion.tenant.failed", tenant=tenant, error=type(exc).__name__, detail=str(exc)[:500])

    def _match(self, scope: Scope, want: spec.Desired, listing: list[dict[str, Any]]) -> _Target:
        """Ours = same description; prefer one already at our URL, then an active one, then the oldest."""
        ours = [s for s in listing if s.get("description") == want.description]
        url = self.settings.orion.notify_url
        ld = self.settings.orion.ld
        ours.sort(
            key=lambda s: (spec.url_of(s, ld) != url, spec.status_of(s, ld, self.clock()) != spec.ACTIVE)
        )
        if not ours:
            return _Target(scope, want)
        return _Target(scope, want, ours[0], ours[1:])

    def _reconcile(self, t: _Target) -> Outcome:
        deleted = tuple(self._delete_duplicates(t))
        if t.current is None:
            sub_id = self.client.create_subscription(t.scope, t.want.body)
            return self._record(t, Outcome(*self._where(t), sub_id, "created", deleted=deleted))
        sub_id = str(t.current.get("id", ""))
        now = self.clock()
        why = spec.left_alone(t.current, t.want.ld, now)
        if why:
            action = "left_expired" if why == "expired" else "left_inactive"
            return self._record(t, Outcome(*self._where(t), sub_id, action, deleted=deleted), warn=True)
        reactivate = spec.paused_by_failures(t.current, t.want.ld, now)
        changed = spec.differences(t.current, t.want)
        if not changed and not reactivate:
            return Outcome(*self._where(t), sub_id, "unchanged", deleted=deleted)
        body = spec.patch_body(t.want, changed, reactivate, t.current)
        self.client.patch_subscription(t.scope, sub_id, body)
        action = "reactivated" if reactivate else "updated"
        return self._record(t, Outcome(*self._where(t), sub_id, action, tuple(changed), deleted))

    def _delete_duplicates(self, t: _Target) -> list[str]:
        removed = []
        for dup in t.duplicates:
            dup_id = str(dup.get("id", ""))
            self.client.delete_subscription(t.scope, dup_id)
            log.warning("orion.subscription.duplicate_deleted", subscription_id=dup_id, **_bind(t))
            removed.append(dup_id)
        return removed

    def _record(self, t: _Target, outcome: Outcome, warn: bool = False) -> Outcome:
        self.metrics.changes.labels(outcome.action).inc()
        (log.warning if warn else log.info)(
            f"orion.subscription.{outcome.action}",
            subscription_id=outcome.subscription_id,
            changed=list(outcome.changed),
            **_bind(t),
        )
        return outcome

    def _where(self, t: _Target) -> tuple[str, str, str]:
        return t.scope.tenant, self._service_path(), t.want.entity_type

    def _service_path(self) -> str:
        return "" if self.settings.orion.ld else self.settings.orion.service_path


def _bind(t: _Target) -> dict[str, str]:
    return {"tenant": t.scope.tenant, "service_path": t.scope.service_path, "entity_type": t.want.entity_type}


def _status(outcome: Outcome, seen: dict[str, Any] | None, ld: bool, now: datetime) -> SubscriptionStatus:
    """Orion's counters of a subscription as it was listed (NGSIv2 and Orion-LD field names)."""
    where = (outcome.tenant, outcome.service_path, outcome.entity_type, outcome.subscription_id)
    if seen is None:
        return SubscriptionStatus(*where, status="missing", action=outcome.action)
    n = seen.get("notification") or {}
    code = n.get("lastSuccessCode")
    return SubscriptionStatus(
        *where,
        status=spec.status_of(seen, ld, now),
        times_sent=int(n.get("timesSent") or 0),
        fails_counter=int(n.get("failsCounter") or n.get("consecutiveErrors") or 0),
        last_notification=spec.parse_time(n.get("lastNotification")),
        last_failure=spec.parse_time(n.get("lastFailure")),
        last_failure_reason=str(n.get("lastFailureReason") or n.get("lastErrorReason") or ""),
        last_success=spec.parse_time(n.get("lastSuccess")),
        last_success_code=int(code) if code is not None else None,
        action=outcome.action,
    )


def _now_status(st: SubscriptionStatus) -> str:
    """The status after check() acted: one it just created or re-activated is active."""
    return spec.ACTIVE if st.action in ("created", "reactivated") else st.status


def _log_status(st: SubscriptionStatus) -> None:
    failing = _now_status(st) != spec.ACTIVE or st.fails_counter > 0
    emit = log.warning if failing else log.info
    emit(
        "orion.subscription.status",
        tenant=st.tenant,
        service_path=st.service_path,
        entity_type=st.entity_type,
        subscription_id=st.subscription_id,
        status=st.status,
        times_sent=st.times_sent,
        fails_counter=st.fails_counter,
        last_failure=st.last_failure.isoformat() if st.last_failure else None,
        last_failure_reason=st.last_failure_reason,
        last_success_code=st.last_success_code,
        action=st.action,
    )


__all__ = ["Outcome", "OrionError", "SubscriptionManager", "SubscriptionMetrics", "SubscriptionStatus"]
