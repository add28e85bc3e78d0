"""GET /v1/catalog: seed 002's summary directory tree. What exists, without readings: per meter and period
the count of windows, the attributes with their units, the meter's root, the period's tenant root and its
ledger transaction. Filters follow seed 002's levels: `type` is the data type (entity type), `servicePath`
the region and group (a service-path prefix, by whole segments), `from`/`to` the time."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from connector.api.base import ApiBlueprint, request_scope
from connector.api.errors import BadParameter
from connector.api.tenancy import Scope
from connector.api.trees_schemas import CatalogArgs, CatalogPageSchema
from connector.context import services
from connector.store.models import Meter
from connector.store.tree_models import PeriodMeter, PeriodRoot, RootOutbox, TenantAsset

blp = ApiBlueprint("catalog", __name__, url_prefix="/v1/catalog", description="Summary directory")


@blp.route("", strict_slashes=False)
@blp.arguments(CatalogArgs, location="query", as_kwargs=True)
@blp.response(200, CatalogPageSchema)
@blp.errors()
def catalog(limit: int, offset: int, period: str, **filters: Any) -> dict[str, Any]:
    """Per meter and period of the tenant: windows, attributes with units, meter root, tenant root and
    its ledger transaction; by entity type, service-path prefix and period start (from inclusive, to
    exclusive). Ordered by period start, service path, entity id."""
    where = _filters(request_scope(), period, **filters)
    query = _joined(select(func.count())).where(*where)
    with services().store.reading() as conn:
        total = conn.execute(query).scalar_one()
        page = (
            _joined(_columns()).where(*where).order_by(PeriodRoot.start, Meter.service_path, Meter.entity_id)
        )
        rows = conn.execute(page.limit(limit).offset(offset)).all()
    return {"total": total, "limit": limit, "offset": offset, "entries": [_entry(r) for r in rows]}


def _columns() -> Any:
    return select(
        Meter.entity_id,
        Meter.entity_type,
        Meter.service_path,
        PeriodRoot.kind,
        PeriodRoot.start,
        PeriodRoot.length,
        PeriodRoot.root,
        PeriodMeter.window_count,
        PeriodMeter.meter_root,
        PeriodMeter.attributes_json,
        RootOutbox.tx_id,
        RootOutbox.status,
        RootOutbox.block_height,
        TenantAsset.asset_id,
    )


def _joined(query: Select[Any]) -> Select[Any]:
    return (
        query.select_from(PeriodMeter)
        .join(PeriodRoot, PeriodRoot.id == PeriodMeter.period_id)
        .join(Meter, Meter.id == PeriodMeter.meter_id)
        .outerjoin(RootOutbox, RootOutbox.period_id == PeriodRoot.id)
        .outerjoin(TenantAsset, TenantAsset.tenant == PeriodRoot.tenant)
    )


def _filters(
    scope: Scope,
    period: str,
    type: str | None = None,
    servicePath: str | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
) -> list[ColumnElement[bool]]:
    where = [scope.clause(), PeriodRoot.kind == period]
    if type:
        where.append(Meter.entity_type == type)
    if servicePath and servicePath != "/":
        if not servicePath.startswith("/"):
            raise BadParameter("servicePath: a service path prefix like /north or /north/g1")
        base = servicePath.rstrip("/")
        where.append(
            (Meter.service_path == base) | Meter.service_path.startswith(base + "/", autoescape=True)
        )
    if from_ is not None:
        where.append(PeriodRoot.start >= from_)
    if to is not None:
        where.append(PeriodRoot.start < to)
    return where


def _entry(r: Any) -> dict[str, Any]:
    return {
        "entityId": r.entity_id,
        "entityType": r.entity_type,
        "servicePath": r.service_path,
        "period": {"kind": r.kind, "start": int(r.start.timestamp()), "length": r.length},
        "periodStart": r.start,
        "windows": r.window_count,
        "attributes": json.loads(r.attributes_json),
        "meterRoot": r.meter_root,
        "root": r.root,
        "ledger": {
            "tx_id": r.tx_id,
            "status": r.status,
            "block_height": r.block_height,
            "asset_id": r.asset_id,
        },
    }
