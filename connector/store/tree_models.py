"""SQLAlchemy models of the period hash trees (docs/trees.md): per tenant and closed period its root, the
subtree roots of its service-path prefixes, each meter's part of it, the tenant's ledger asset, and the
outbox of the roots' BigchainDB transactions (migration 0007).

A period's rows are written once, in one transaction with the root's outbox row (and the tenant's CREATE
row the first time), by `connector.periods`; nothing here is changed afterwards except an outbox row's
status and the tenant asset's head.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connector.store.models import Base, BigId, UTCDateTime


class PeriodRoot(Base):
    """The tree of one tenant and period: its root (seed 002's Hash_G), energy and counts."""

    __tablename__ = "period_roots"
    __table_args__ = (
        UniqueConstraint("tenant", "kind", "start", name="uq_period_roots_period"),
        Index("ix_period_roots_start", "start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # window | day
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    length: Mapped[int] = mapped_column(Integer)  # seconds
    root: Mapped[str] = mapped_column(String(64))  # keccak256, hex
    energy_wh: Mapped[int] = mapped_column(BigInteger)  # sum of the leaves' whole Wh
    meter_count: Mapped[int] = mapped_column(Integer)
    window_count: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PeriodSubtree(Base):
    """The subtree root of one service-path prefix ("/", "/north", "/north/g1") in a period's tree."""

    __tablename__ = "period_subtrees"

    period_id: Mapped[int] = mapped_column(ForeignKey("period_roots.id"), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(512), primary_key=True)
    root: Mapped[str] = mapped_column(String(64))
    meter_count: Mapped[int] = mapped_column(Integer)
    window_count: Mapped[int] = mapped_column(Integer)


class PeriodMeter(Base):
    """One meter's part of a period's tree: its window count, its root (seed 002's Hash^j) and the
    attributes (with units) its windows hold: what the summary directory lists, without readings."""

    __tablename__ = "period_meters"
    __table_args__ = (Index("ix_period_meters_meter", "meter_id", "period_id"),)

    period_id: Mapped[int] = mapped_column(ForeignKey("period_roots.id"), primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    window_count: Mapped[int] = mapped_column(Integer)
    meter_root: Mapped[str] = mapped_column(String(64))
    attributes_json: Mapped[str] = mapped_column(Text)  # [{"attr": ..., "unit": ...}, ...] sorted


class TenantAsset(Base):
    """A tenant's BigchainDB asset, whose TRANSFERs-to-self carry its period roots."""

    __tablename__ = "tenant_assets"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str | None] = mapped_column(String(64))
    asset_id: Mapped[str | None] = mapped_column(String(64))
    head_tx: Mapped[str | None] = mapped_column(String(64))  # the last signed-and-confirmed transaction


class RootOutbox(Base):
    """Durable BigchainDB work for tenant roots: one CREATE per tenant, one TRANSFER per period root.

    As the meters' ledger_outbox: written with what needs it, never deleted, pending -> sent ->
    confirmed (or dead with the reason); within a tenant strictly in seq order.
    """

    __tablename__ = "root_outbox"
    __table_args__ = (
        Index("ix_root_outbox_due", "status", "next_attempt_at"),
        Index("ix_root_outbox_tenant", "tenant", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)  # tenant:<t> | root:<period id>
    tenant: Mapped[str] = mapped_column(String(64))
    period_id: Mapped[int | None] = mapped_column(ForeignKey("period_roots.id"), unique=True)
    operation: Mapped[str] = mapped_column(String(16))  # CREATE | TRANSFER
    seq: Mapped[int] = mapped_column(BigInteger)  # CREATE_SEQ for the CREATE, else the period's id
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    tx_id: Mapped[str | None] = mapped_column(String(64))
    tx_json: Mapped[str | None] = mapped_column(Text)
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PortfolioRelay(Base):
    """Ethereum work of portfolio mode: one `recordPortfolio` per tenant and window period, once its root
    is confirmed on BigchainDB; then its `settle` (docs/settlement.md)."""

    __tablename__ = "portfolio_relay"
    __table_args__ = (Index("ix_portfolio_relay_due", "status", "next_attempt_at"),)

    period_id: Mapped[int] = mapped_column(ForeignKey("period_roots.id"), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | final | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    settle_tx_hash: Mapped[str | None] = mapped_column(String(66))
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
