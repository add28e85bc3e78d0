"""GET /v1/meters/{entity_id}/proof?window=START: a window's inclusion proof against its period root."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.api import queries
from connector.api.base import ApiBlueprint, request_scope
from connector.api.errors import Conflict, NotFound
from connector.api.trees_schemas import ProofArgs, ProofSchema
from connector.context import services
from connector.proofs import ProofUnavailable, window_proof

blp = ApiBlueprint("proofs", __name__, url_prefix="/v1/meters", description="Inclusion proofs of windows")


@blp.route("/<path:entity_id>/proof")
@blp.arguments(ProofArgs, location="query", as_kwargs=True)
@blp.response(200, ProofSchema)
@blp.errors(404, 409)
def proof(entity_id: str, window: datetime, period: str) -> dict[str, Any]:
    """The window's leaf, its audit path, the period's tenant root and the root's ledger transaction.

    404 when the meter has no such closed window or the period's tree is not built yet; 409 when the
    store's windows no longer give the root that was built (and anchored) for the period.
    """
    svc = services()
    with svc.store.reading() as conn:
        meter = queries.find_meter(conn, request_scope(), entity_id)
        try:
            found = window_proof(conn, meter, window, period, svc.settings.window.length)
        except ProofUnavailable as exc:
            raise (Conflict if exc.code == 409 else NotFound)(exc.message) from None
    return {"entityId": entity_id, **found.to_dict()}
