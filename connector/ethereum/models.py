"""Tables of the Ethereum bridge (migration 0002_ethereum): relay outbox, relay transactions, plans.

A relay row is the durable promise to put one confirmed window on chain; it is never deleted.
status: pending -> sent -> final, or -> dead with the reason. A sent row whose transaction fell out of the
chain (reorg, node restart) goes back to pending and is sent again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from connector.store.models import Base, BigId, UTCDateTime


class EthTransaction(Base):
    """One Ethereum transaction the bridge signed (a relay batch or a settle call), with its replacements."""

    __tablename__ = "eth_transactions"
    __table_args__ = (Index("ix_eth_transactions_status", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # record | settle
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime())
    sender: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))  # the latest signed version
    tx_hashes: Mapped[str] = mapped_column(Text)  # JSON list of every version sent with this nonce
    max_fee_wei: Mapped[int] = mapped_column(BigInteger)
    priority_fee_wei: Mapped[int] = mapped_column(BigInteger)
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # sent | mined | final | dropped | reverted
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RelayOutbox(Base):
    """One confirmed window to record on chain; unique per window (the idempotency key)."""

    __tablename__ = "eth_relay_outbox"
    __table_args__ = (
        Index("ix_eth_relay_outbox_due", "status", "next_attempt_at"),
        Index("ix_eth_relay_outbox_interval", "interval_start"),
        Index("ix_eth_relay_outbox_meter", "meter_id", "interval_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"), unique=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    meter_key: Mapped[str] = mapped_column(String(64))  # hex of the bytes32 on-chain meter id
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime())
    energy_wh: Mapped[int] = mapped_column(BigInteger)  # whole Wh as recorded on chain
    fingerprint: Mapped[str] = mapped_column(String(64))
    ledger_tx_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # pending: when the next send is due; final: when settle() is next due
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("eth_transactions.id"))
    settle_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("eth_transactions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    final_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Plan(Base):
    """A BRP plan as uploaded to the contract: planned Wh of one meter for one interval."""

    __tablename__ = "eth_plans"
    __table_args__ = (UniqueConstraint("meter_key", "interval_start", name="uq_eth_plans_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    meter_key: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    service_path: Mapped[str] = mapped_column(String(512))
    entity_id: Mapped[str] = mapped_column(String(256))
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime())
    planned_wh: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
