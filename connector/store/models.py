"""SQLAlchemy models of the off-chain store: meters, raw readings, windows, outboxes, connector state.

Times are timezone-aware UTC in Python. SQLite keeps them as naive UTC text, PostgreSQL as timestamptz;
`UTCDateTime` makes both come back aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only makes INTEGER PRIMARY KEY auto-increment; PostgreSQL wants BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime that is always timezone-aware UTC on the Python side."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Meter(Base):
    """One metered entity of one tenant: the off-chain twin of a BigchainDB asset."""

    __tablename__ = "meters"
    __table_args__ = (UniqueConstraint("tenant", "service_path", "entity_id", name="uq_meters_identity"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    service_path: Mapped[str] = mapped_column(String(512))
    entity_id: Mapped[str] = mapped_column(String(256))
    entity_type: Mapped[str] = mapped_column(String(256))
    serial_number: Mapped[str | None] = mapped_column(String(256))
    manufacturer: Mapped[str | None] = mapped_column(String(256))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    # Fingerprint chain: the seed (H(T_0)) and the chain hash of the last closed window.
    chain_seed: Mapped[str] = mapped_column(String(64))
    chain_head: Mapped[str] = mapped_column(String(64))
    last_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Late readings received since the last window of this meter closed (reported in the next window).
    late_since_close: Mapped[int] = mapped_column(Integer, default=0)
    # Ledger identity, filled by the ledger writer.
    public_key: Mapped[str | None] = mapped_column(String(64))
    asset_id: Mapped[str | None] = mapped_column(String(64))
    # The id of the last transaction of this meter's asset the writer has signed (the output to spend next).
    ledger_head_tx: Mapped[str | None] = mapped_column(String(64))


class ReadingColumns:
    """The columns of one received attribute value, shared by a stored reading and a conflicting one
    (migrations 0001 and 0005 create the same columns in both tables)."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    attr: Mapped[str] = mapped_column(String(256))
    attr_type: Mapped[str | None] = mapped_column(String(256))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    time_source: Mapped[str] = mapped_column(String(16))
    value_json: Mapped[str] = mapped_column(Text)  # the value exactly as received, canonical JSON
    number: Mapped[str | None] = mapped_column(String(64))  # decimal text when numeric, else NULL
    unit: Mapped[str | None] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    correlator: Mapped[str | None] = mapped_column(String(256))


class Reading(ReadingColumns, Base):
    """One raw attribute value as received. Never changed after it is stored."""

    __tablename__ = "readings"
    __table_args__ = (
        # One index for both duplicates and window scans (migration 0004): the window start follows from
        # the observation time at the store's pinned window length.
        UniqueConstraint("meter_id", "window_start", "observed_at", "attr", name="uq_readings_key"),
    )


class ReadingConflict(ReadingColumns, Base):
    """A reading that arrived with the key (meter, attribute, observation time) of a stored reading but a
    different type, value or unit. The stored (first) reading stays the one fingerprinted; this is the
    evidence that the sender said otherwise later (migration 0005). Never changed after it is stored."""

    __tablename__ = "reading_conflicts"
    __table_args__ = (
        UniqueConstraint(
            "meter_id", "window_start", "observed_at", "attr", "digest", name="uq_reading_conflicts_key"
        ),
    )

    # SHA-256 of [type, value, unit]: one row per content. Last, as in migration 0005 (mixin columns
    # would otherwise come after it).
    digest: Mapped[str] = mapped_column(String(64), sort_order=1)


class PendingWindow(Base):
    """A (meter, window) that has readings and is not closed yet; the closer's work list."""

    __tablename__ = "pending_windows"

    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)


class Window(Base):
    """A closed window of one meter: its summary, fingerprint and chain hash. Never changed once closed."""

    __tablename__ = "windows"
    __table_args__ = (
        UniqueConstraint("meter_id", "start", name="uq_windows_meter_start"),
        Index("ix_windows_start", "start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    end: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reading_count: Mapped[int] = mapped_column(Integer)
    duplicate_count: Mapped[int] = mapped_column(Integer)
    late_count: Mapped[int] = mapped_column(Integer)
    summary_json: Mapped[str] = mapped_column(Text)  # canonical JSON of the per-attribute summary
    energy_wh: Mapped[str | None] = mapped_column(Text)  # decimal text, total over energy attributes (0006)
    fingerprint: Mapped[str] = mapped_column(String(64))
    prev_chain_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))


class LedgerOutbox(Base):
    """Durable BigchainDB work: one row per meter CREATE and per window TRANSFER.

    Rows are written in the same database transaction as the change that needs them, never deleted:
    status goes pending -> sent -> confirmed, or -> dead with the reason.
    """

    __tablename__ = "ledger_outbox"
    __table_args__ = (
        Index("ix_ledger_outbox_due", "status", "next_attempt_at"),
        Index("ix_ledger_outbox_meter", "meter_id", "seq"),
        # The query API counts and pages a meter's confirmed TRANSFERs in window order from this index alone.
        Index("ix_ledger_outbox_history", "meter_id", "operation", "status", "seq", "id"),
        # Whether a meter has an open row below a given seq, in two index seeks whatever its history (0008).
        Index("ix_ledger_outbox_open", "meter_id", "status", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)  # create:<meter> | window:<id>
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    window_id: Mapped[int | None] = mapped_column(ForeignKey("windows.id"), unique=True)
    operation: Mapped[str] = mapped_column(String(16))  # CREATE | TRANSFER
    # Order within the meter: CREATE_SEQ for the CREATE (below any window), a TRANSFER's window start in
    # Unix seconds (negative before 1970).
    seq: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    tx_id: Mapped[str | None] = mapped_column(String(64))
    tx_json: Mapped[str | None] = mapped_column(Text)  # the signed transaction, so a resend is identical
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class State(Base):
    """Small named facts of the connector (e.g. the deployed contract address)."""

    __tablename__ = "connector_state"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
