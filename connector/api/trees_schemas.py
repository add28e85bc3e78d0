"""Marshmallow schemas of the period-tree routes: /v1/meters/{id}/proof and /v1/catalog."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from connector.api.schemas import RangeArgs, UtcDateTime

HEX32 = {"description": "32 bytes, lowercase hex", "pattern": "^[0-9a-f]{64}$"}


class ProofArgs(ma.Schema):
    window = UtcDateTime(required=True, metadata={"description": "the window's start, ISO 8601"})
    period = fields.String(
        load_default="window",
        validate=validate.OneOf(["window", "day"]),
        metadata={"description": "the tree to prove against: the window's interval (default) or its UTC day"},
    )


class PeriodSchema(ma.Schema):
    kind = fields.String(required=True, metadata={"description": "window | day"})
    start = fields.Integer(required=True, metadata={"description": "Unix seconds"})
    length = fields.Integer(required=True, metadata={"description": "seconds"})


class LeafSchema(ma.Schema):
    tenant = fields.String(required=True)
    service_path = fields.String(required=True)
    entity_id = fields.String(required=True)
    meter_key = fields.String(required=True, metadata=HEX32)
    window_start = fields.Integer(required=True, metadata={"description": "Unix seconds"})
    energy_wh = fields.Integer(required=True, metadata={"description": "whole Wh, half-even"})
    fingerprint = fields.String(required=True, metadata=HEX32)
    chain_hash = fields.String(required=True, metadata=HEX32)


class StepSchema(ma.Schema):
    side = fields.String(required=True, metadata={"description": "left | right: where the sibling is"})
    hash = fields.String(required=True, metadata=HEX32)


class RootTransactionSchema(ma.Schema):
    tx_id = fields.String(allow_none=True, required=True, metadata={"description": "the root's TRANSFER"})
    status = fields.String(
        allow_none=True, required=True, metadata={"description": "pending|sent|confirmed|dead"}
    )
    block_height = fields.Integer(allow_none=True, required=True)
    asset_id = fields.String(allow_none=True, required=True, metadata={"description": "the tenant's asset"})


class ProofSchema(ma.Schema):
    entityId = fields.String(required=True)
    version = fields.String(required=True, metadata={"description": "smartmeter-connector/trees/v1"})
    hash = fields.String(required=True, metadata={"description": "keccak256"})
    tenant = fields.String(required=True)
    period = fields.Nested(PeriodSchema, required=True)
    prefix = fields.String(required=True, metadata={"description": "the root's service-path prefix (/)"})
    leaf = fields.Nested(LeafSchema, required=True)
    path = fields.List(fields.Nested(StepSchema), required=True, metadata={"description": "bottom-up"})
    root = fields.String(required=True, metadata=HEX32)
    ledger = fields.Nested(RootTransactionSchema, required=True)


class CatalogArgs(RangeArgs):
    type = fields.String(
        validate=validate.Length(max=256), metadata={"description": "entity type (data type)"}
    )
    servicePath = fields.String(
        validate=validate.Length(max=512),
        metadata={"description": "service path prefix (region, group), e.g. /north or /north/g1"},
    )
    period = fields.String(
        load_default="day",
        validate=validate.OneOf(["window", "day"]),
        metadata={"description": "window | day"},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100_000_000))


class AttributeSchema(ma.Schema):
    attr = fields.String(required=True)
    unit = fields.String(required=True)


class CatalogEntrySchema(ma.Schema):
    entityId = fields.String(required=True)
    entityType = fields.String(required=True)
    servicePath = fields.String(required=True)
    period = fields.Nested(PeriodSchema, required=True)
    periodStart = fields.DateTime(required=True)
    windows = fields.Integer(required=True, metadata={"description": "the meter's windows in the period"})
    attributes = fields.List(fields.Nested(AttributeSchema), required=True)
    meterRoot = fields.String(required=True, metadata=HEX32)
    root = fields.String(required=True, metadata={**HEX32, "description": "the period's tenant root"})
    ledger = fields.Nested(RootTransactionSchema, required=True)


class CatalogPageSchema(ma.Schema):
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    entries = fields.List(fields.Nested(CatalogEntrySchema), required=True)
