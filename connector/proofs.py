"""Inclusion proofs of stored windows against their anchored period roots (docs/trees.md section 6).

`window_proof` is what GET /v1/meters/{id}/proof answers and `settlement prove` sends on chain: the tree
of the window's period is rebuilt from the store (the windows of its build, streamed: the meters' roots and
this meter's windows are held, not every window) and must give the stored root;
the proof is the leaf, its audit path, the root, and the root's ledger transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from connector.core.trees import Proof, periods_of
from connector.store.models import Window
from connector.store.tree_models import RootOutbox, TenantAsset
from connector.trees_store import find_root, stored_meter_tree

PERIOD_KINDS = ("window", "day")


class ProofUnavailable(Exception):
    """No proof can be given; `code` is 404 (nothing to prove yet, or the window is in no tree) or 409
    (the store no longer gives the stored root: altered after the tree was built)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class WindowProof:
    """A proof and the ledger transaction of its root (None until the root writer has signed it)."""

    proof: Proof
    ledger: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The proof's JSON form (docs/trees.md) with `ledger` beside it."""
        return {**self.proof.to_dict(), "ledger": self.ledger}


def window_proof(conn: Connection, meter: Any, start: datetime, kind: str, window_length: int) -> WindowProof:
    """The proof of `meter`'s window starting at `start` in its `kind` period; raises ProofUnavailable."""
    window = conn.execute(select(Window.id).where(Window.meter_id == meter.id, Window.start == start)).first()
    if window is None:
        raise ProofUnavailable(
            404, f"meter {meter.entity_id!r} has no closed window starting {start.isoformat()}"
        )
    ts = int(start.timestamp())
    period = periods_of(ts, window_length)[PERIOD_KINDS.index(kind)]
    row = find_root(conn, meter.tenant, period)
    if row is None:
        raise ProofUnavailable(404, f"the {kind} tree of {start.isoformat()} is not built yet")
    tree = stored_meter_tree(conn, row, meter.service_path, meter.entity_id)
    if tree is None or tree.root.hex() != row.root:  # None: not one window of the build is left as built
        raise ProofUnavailable(
            409, f"the store's windows no longer give the {kind} root built for this period"
        )
    try:
        proof = tree.proof(ts)
    except KeyError:
        raise ProofUnavailable(
            404, f"the window closed after its {kind} tree was built, so it is in no tree (docs/trees.md)"
        ) from None
    return WindowProof(proof, root_transaction(conn, row.id, meter.tenant))


def root_transaction(conn: Connection, period_id: int, tenant: str) -> dict[str, Any]:
    """{tx_id, status, block_height, asset_id} of a period root's TRANSFER (tx_id None until signed)."""
    out = conn.execute(
        select(RootOutbox.tx_id, RootOutbox.status, RootOutbox.block_height).where(
            RootOutbox.period_id == period_id
        )
    ).first()
    asset = conn.execute(select(TenantAsset.asset_id).where(TenantAsset.tenant == tenant)).scalar()
    return {
        "tx_id": out.tx_id if out else None,
        "status": out.status if out else None,
        "block_height": out.block_height if out else None,
        "asset_id": asset,
    }
