"""GET /v1/meters and GET /v1/meters/{entity_id}: the meters of a tenant and one meter's ledger identity."""

from __future__ import annotations

from typing import Any

from connector.api import present, queries
from connector.api.base import ApiBlueprint, request_scope
from connector.api.schemas import MeterDetailSchema, MeterPageSchema, MetersArgs
from connector.context import services

blp = ApiBlueprint("meters", __name__, url_prefix="/v1/meters", description="Meters of the tenant")


@blp.route("", strict_slashes=False)
@blp.arguments(MetersArgs, location="query", as_kwargs=True)
@blp.response(200, MeterPageSchema)
@blp.errors()
def list_meters(
    limit: int, offset: int, type: str | None = None, servicePath: str | None = None
) -> dict[str, Any]:
    """List the meters of the tenant, optionally of one entity type or under a service path prefix."""
    with services().store.reading() as conn:
        total, rows = queries.list_meters(conn, request_scope(), type, servicePath, limit, offset)
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "meters": [present.meter_summary(m) for m in rows],
    }


@blp.route("/<path:entity_id>")
@blp.response(200, MeterDetailSchema)
@blp.errors(404, 409)
def meter(entity_id: str) -> dict[str, Any]:
    """One meter: asset id, public key, CREATE transaction id, first and last window, counts."""
    with services().store.reading() as conn:
        m = queries.find_meter(conn, request_scope(), entity_id)
        counts = queries.meter_counts(conn, m.id)
    return present.meter_detail(m, counts)
