"""Marshmallow schemas of the query API: query parameters in, JSON bodies out (and so the OpenAPI doc)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
MAX_OFFSET = 100_000_000


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time; without an offset it is taken as UTC. Always returned as UTC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before datetime.min in UTC
            return EARLIEST if parsed.year == 1 else LATEST


def _limit(default: int, maximum: int) -> fields.Integer:
    return fields.Integer(
        load_default=default,
        validate=validate.Range(min=1, max=maximum),
        metadata={"description": f"page size, 1 to {maximum}"},
    )


def _offset() -> fields.Integer:
    return fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_OFFSET),
        metadata={"description": "items to skip"},
    )


class RangeArgs(ma.Schema):
    """`from` (inclusive) and `to` (exclusive) bound window starts or observation times."""

    from_ = UtcDateTime(data_key="from", load_default=None, metadata={"description": "inclusive, ISO 8601"})
    to = UtcDateTime(load_default=None, metadata={"description": "exclusive, ISO 8601"})

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ma.ValidationError("must not be after to", field_name="from")


class MetersArgs(ma.Schema):
    type = fields.String(validate=validate.Length(max=256), metadata={"description": "entity type"})
    servicePath = fields.String(
        validate=validate.Length(max=512), metadata={"description": "service path prefix, e.g. /city"}
    )
    limit = _limit(100, 1000)
    offset = _offset()


class HistoryArgs(RangeArgs):
    limit = _limit(100, 1000)
    offset = _offset()
    order = fields.String(load_default="asc", validate=validate.OneOf(["asc", "desc"]))
    source = fields.String(
        load_default="index",
        validate=validate.OneOf(["index", "ledger"]),
        metadata={"description": "index: the local index of confirmed transactions; ledger: read BigchainDB"},
    )
    aggregate = fields.String(
        validate=validate.OneOf(["hour", "day"]),
        metadata={"description": "fold windows into UTC hours or days"},
    )


class ReadingsArgs(RangeArgs):
    attr = fields.String(validate=validate.Length(max=256), metadata={"description": "only this attribute"})
    limit = _limit(1000, 10000)
    offset = _offset()


class VerifyArgs(RangeArgs):
    pass


class CountsSchema(ma.Schema):
    windows = fields.Integer(required=True)
    readings = fields.Integer(required=True)
    anchored = fields.Integer(required=True, metadata={"description": "windows whose TRANSFER is confirmed"})
    pending = fields.Integer(required=True, metadata={"description": "windows waiting for the ledger"})
    dead = fields.Integer(required=True, metadata={"description": "windows the ledger writer gave up on"})


class MeterSchema(ma.Schema):
    entityId = fields.String(required=True)
    entityType = fields.String(required=True)
    servicePath = fields.String(required=True)
    assetId = fields.String(allow_none=True, required=True)
    publicKey = fields.String(allow_none=True, required=True)


class MeterPageSchema(ma.Schema):
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    meters = fields.List(fields.Nested(MeterSchema), required=True)


class MeterDetailSchema(MeterSchema):
    serialNumber = fields.String(allow_none=True)
    manufacturer = fields.String(allow_none=True)
    firstSeen = fields.DateTime(required=True)
    createTxId = fields.String(allow_none=True, required=True)
    firstWindow = fields.DateTime(allow_none=True, required=True)
    lastWindow = fields.DateTime(allow_none=True, required=True)
    counts = fields.Nested(CountsSchema, required=True)
    ledgerHeld = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "why the meter's ledger work is held (its key is missing), else null"},
    )


class HistoryItemSchema(ma.Schema):
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    txId = fields.String(required=True)
    blockHeight = fields.Integer(allow_none=True, required=True)
    metadata = fields.Dict(allow_none=True, required=True, metadata={"description": "the TRANSFER metadata"})


class BucketSchema(ma.Schema):
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    windows = fields.Integer(required=True)
    readings = fields.Integer(required=True)
    energyWh = fields.String(allow_none=True, required=True, metadata={"description": "decimal, summed"})
    attributes = fields.List(fields.Dict(), required=True)


class HistoryPageSchema(ma.Schema):
    entityId = fields.String(required=True)
    source = fields.String(required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    order = fields.String(required=True)
    aggregate = fields.String(allow_none=True, required=True)
    windows = fields.List(fields.Nested(HistoryItemSchema), metadata={"description": "without aggregate"})
    buckets = fields.List(fields.Nested(BucketSchema), metadata={"description": "with aggregate"})


class ReceivedValueSchema(ma.Schema):
    """One attribute value as it came in: what a stored reading and a conflicting one both show."""

    attr = fields.String(required=True)
    attrType = fields.String(allow_none=True, required=True)
    observedAt = fields.DateTime(required=True)
    receivedAt = fields.DateTime(required=True)
    timeSource = fields.String(required=True)
    value = fields.Raw(allow_none=True, required=True)
    number = fields.String(allow_none=True, required=True)
    unit = fields.String(allow_none=True, required=True)
    windowStart = fields.DateTime(required=True)


class ReadingSchema(ReceivedValueSchema):
    value = fields.Raw(allow_none=True, required=True, metadata={"description": "the value as received"})
    number = fields.String(
        allow_none=True, required=True, metadata={"description": "decimal text if numeric"}
    )
    late = fields.Boolean(required=True)


class ConflictSchema(ReceivedValueSchema):
    """A reading that came with the key of a stored reading but another value (kept as evidence only)."""

    value = fields.Raw(allow_none=True, required=True, metadata={"description": "the conflicting value"})
    late = fields.Boolean(required=True)


class ReadingsPageSchema(ma.Schema):
    entityId = fields.String(required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    readings = fields.List(fields.Nested(ReadingSchema), required=True)
    conflicts = fields.List(
        fields.Nested(ConflictSchema),
        required=True,
        metadata={"description": "conflicting readings observed in [from, to) (all of them, not paged)"},
    )


class HashesSchema(ma.Schema):
    fingerprint = fields.String(allow_none=True, required=True)
    chainHash = fields.String(allow_none=True, required=True)
    prevChainHash = fields.String(allow_none=True, required=True)


class WindowVerdictSchema(ma.Schema):
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["ok", "tampered", "missing_on_ledger", "missing_off_chain", "broken_chain"]),
    )
    txId = fields.String(allow_none=True, required=True)
    problems = fields.List(fields.String(), required=True)
    ledger = fields.Nested(HashesSchema, allow_none=True, required=True)
    recomputed = fields.Nested(HashesSchema, allow_none=True, required=True)
    lateReadings = fields.List(fields.Nested(ReadingSchema), required=True)
    conflicts = fields.List(
        fields.Nested(ConflictSchema),
        required=True,
        metadata={
            "description": "readings that conflicted with this window's stored ones (not fingerprinted)"
        },
    )


class VerifySchema(ma.Schema):
    entityId = fields.String(required=True)
    assetId = fields.String(allow_none=True, required=True)
    verdict = fields.String(required=True, validate=validate.OneOf(["ok", "failed"]))
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    windows = fields.List(fields.Nested(WindowVerdictSchema), required=True)


class SettlementSchema(ma.Schema):
    entityId = fields.String(required=True)
    rows = fields.List(fields.Dict(), required=True)
