"""What GET /health and GET /version answer: each dependency's state, and which build is running.

/health checks every dependency the connector needs and rolls them up into one status:

- `ok`: everything answers; `degraded`: notifications are still stored, but something downstream is not
  working (ledger or Ethereum node unreachable, ledger rows failing again and again, e.g. on a wrong
  keystore passphrase, an Orion subscription not active or failing); HTTP 200 in both cases, so an
  orchestrator does not take away the only thing that keeps Orion's notifications (Orion never retries).
- `unhealthy`: the store does not answer, so no notification can be acknowledged; HTTP 503.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select, text

from connector import __version__
from connector.context import Services
from connector.store.models import LedgerOutbox

OK, DEGRADED, UNHEALTHY = "ok", "degraded", "unhealthy"
PROBE_TIMEOUT = 1.5  # seconds per network probe: Docker's healthcheck gives the whole answer 5 s
FAILING_ATTEMPTS = 2  # an open ledger row that failed this many times in a row counts as failing
PACKAGE = "smartmeter-connector"
REVISION_FILE = Path(__file__).resolve().parent / "REVISION"  # written by docker/Dockerfile's build


def health_report(svc: Services) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON answer of /health: `status` and one entry per dependency checked."""
    checks: dict[str, dict[str, Any]] = {"store": _store(svc)}
    if checks["store"]["status"] == OK and svc.settings.ledger.enabled:
        if svc.ledger_urls:  # set once the ledger (embedded or remote) is started
            checks["ledger"] = _ledger(svc)
        checks["ledger_writer"] = _ledger_writer(svc)
    if svc.settings.ethereum.enabled:
        checks["ethereum"] = _ethereum(svc)
    if svc.settings.orion.url and svc.subscriptions is not None:
        checks["orion"] = svc.subscriptions.health()
    if checks["store"]["status"] != OK:
        return 503, {"status": UNHEALTHY, "checks": checks}
    worst = DEGRADED if any(c.get("status") != OK for c in checks.values()) else OK
    return 200, {"status": worst, "checks": checks}


def _store(svc: Services) -> dict[str, Any]:
    try:
        svc.store.ping()
    except Exception as exc:  # noqa: BLE001 - any store failure means unhealthy, reported not raised
        return {"status": UNHEALTHY, "error": type(exc).__name__}
    return {"status": OK}


def _ledger(svc: Services) -> dict[str, Any]:
    """The first BigchainDB node that answers its root document (GET /)."""
    errors = []
    for url in svc.ledger_urls:
        try:
            resp = requests.get(url.rstrip("/") + "/", timeout=PROBE_TIMEOUT)
        except requests.RequestException as exc:
            errors.append(f"{url}: {type(exc).__name__}")
            continue
        if resp.ok:
            return {"status": OK, "url": url}
        errors.append(f"{url}: HTTP {resp.status_code}")
    return {"status": "unreachable", "errors": errors or ["no ledger URL"]}


def _ledger_writer(svc: Services) -> dict[str, Any]:
    """Open outbox rows that keep failing (a wrong keystore passphrase blocks every one of them)."""
    open_rows = LedgerOutbox.status.in_(("pending", "sent"))
    failing = open_rows & (LedgerOutbox.attempts >= FAILING_ATTEMPTS) & LedgerOutbox.last_error.is_not(None)
    with svc.store.reading() as conn:
        count = conn.execute(select(func.count()).where(failing)).scalar_one()
        pending = conn.execute(select(func.count()).where(open_rows)).scalar_one()
        oldest = conn.execute(
            select(LedgerOutbox.last_error, LedgerOutbox.attempts).where(failing).order_by(LedgerOutbox.id)
        ).first()
    if not count:
        return {"status": OK, "pending": pending}
    return {
        "status": "blocked",
        "pending": pending,
        "failing": count,
        "reason": str(oldest.last_error)[:300] if oldest else "",
        "attempts": oldest.attempts if oldest else 0,
    }


def _ethereum(svc: Services) -> dict[str, Any]:
    relay = svc.relay  # its settings carry the embedded anvil's URL
    rpc = (relay.eth if relay is not None else svc.settings.ethereum).rpc_url
    if not rpc:
        return {"status": "unconfigured"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    try:
        resp = requests.post(rpc, json=body, timeout=PROBE_TIMEOUT)
        block = int(resp.json()["result"], 16)
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        return {"status": "unreachable", "error": type(exc).__name__}
    return {"status": OK, "block": block}


def version_info(svc: Services) -> dict[str, Any]:
    """The package version, the source revision when known, and the store's schema revision."""
    try:
        with svc.store.reading() as conn:
            schema = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - a store that does not answer has no known schema
        schema = None
    return {"version": package_version(), "revision": source_revision(), "schema": schema}


def package_version() -> str:
    """The installed distribution's version (the module's own when running from a bare checkout)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return __version__


@functools.lru_cache(maxsize=1)
def source_revision() -> str | None:
    """The git commit the code was built from: the REVISION file an image carries, else the checkout's
    HEAD when the package runs from a git checkout, else None."""
    if REVISION_FILE.exists():
        return REVISION_FILE.read_text().strip() or None
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None
