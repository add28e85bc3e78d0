"""Anchoring tenant roots: the root outbox rows and what they put on BigchainDB (docs/ledger-format.md).

Each tenant has one asset (a CREATE signed with the tenant's key, kept in the keystore like a meter's
under the name "tenant-root|<tenant>"); each period root is one TRANSFER-to-self of it whose metadata
carries the root. These are in addition to the meters' own window TRANSFERs, never instead of them.
Rows are enqueued inside the transaction that stores the root (connector/periods.py), idempotently.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from connector.core.trees import TREE_DOMAIN
from connector.ledger.metadata import MAX_METADATA_BYTES, check_legal, iso
from connector.ledger.outbox import CREATE, CREATE_SEQ, TRANSFER
from connector.store.tree_models import RootOutbox

TENANT_SCHEMA = "smartmeter-connector/tenant/v1"
ROOT_SCHEMA = "smartmeter-connector/period-root/v1"


def tenant_ref(tenant: str) -> str:
    """The keystore name of a tenant's key pair (a meter's name has two "|", this one has one)."""
    return f"tenant-root|{tenant}"


def tenant_asset(tenant: str) -> dict[str, Any]:
    """The asset of a tenant's CREATE."""
    asset = {"data": {"tenant_roots": {"schema": TENANT_SCHEMA, "fiware_service": tenant}}}
    check_legal(asset["data"], "asset")
    return asset


def tenant_metadata(tenant: str, registered_at: datetime) -> dict[str, Any]:
    """The metadata of a tenant's CREATE."""
    return {"schema": TENANT_SCHEMA, "fiware_service": tenant, "registered_at": iso(registered_at)}


def root_metadata(row: Any, subtrees: list[tuple[str, str]]) -> dict[str, Any]:
    """The metadata of a period root's TRANSFER, from its period_roots row and its (prefix, root) pairs.

    The subtree roots are included when they fit in MAX_METADATA_BYTES, else only their count is.
    """
    start = int(row.start.timestamp())
    metadata: dict[str, Any] = {
        "schema": ROOT_SCHEMA,
        "tree": TREE_DOMAIN,
        "hash": "keccak256",
        "fiware_service": row.tenant,
        "period": {
            "kind": row.kind,
            "start": iso(row.start),
            "start_s": start,
            "length": row.length,
        },
        "root": row.root,
        "energy_wh": str(row.energy_wh),
        "counts": {"meters": row.meter_count, "windows": row.window_count},
        "subtrees": [{"prefix": p, "root": r} for p, r in subtrees],
    }
    if len(json.dumps(metadata, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        metadata["subtrees"] = []
        metadata["subtrees_omitted"] = len(subtrees)
    check_legal(metadata, "metadata")
    return metadata


def create_key(tenant: str) -> str:
    """The idempotency key of a tenant's CREATE row."""
    return f"tenant:{tenant}"


def root_key(period_id: int) -> str:
    """The idempotency key of a period root's TRANSFER row."""
    return f"root:{period_id}"


def enqueue_root(conn: Connection, tenant: str, period_id: int, now: datetime) -> None:
    """Queue the tenant's CREATE (once) and the TRANSFER of period root `period_id`; no-ops if queued."""
    rows = [
        (create_key(tenant), tenant, None, CREATE, CREATE_SEQ),
        (root_key(period_id), tenant, period_id, TRANSFER, period_id),
    ]
    values = [
        {
            "idempotency_key": key,
            "tenant": t,
            "period_id": pid,
            "operation": op,
            "seq": seq,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for key, t, pid, op, seq in rows
    ]
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(RootOutbox).on_conflict_do_nothing(), values)
    else:
        conn.execute(sqlite.insert(RootOutbox).on_conflict_do_nothing(), values)
