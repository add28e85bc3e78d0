"""ethereum bridge: relay outbox, signed transactions, BRP plans

Revision ID: 0002
Revises: 0001
Written by hand to match connector/ethereum/models.py (tests/ethereum/test_schema.py compares them).
"""

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> connector.store.models.UTCDateTime:
    return connector.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "eth_transactions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("interval_start", _utc(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_hashes", sa.Text(), nullable=False),
        sa.Column("max_fee_wei", sa.BigInteger(), nullable=False),
        sa.Column("priority_fee_wei", sa.BigInteger(), nullable=False),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(length=66), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("sent_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eth_transactions")),
    )
    op.create_index("ix_eth_transactions_status", "eth_transactions", ["status"], unique=False)
    op.create_table(
        "eth_relay_outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("window_id", BIG_ID, nullable=False),
        sa.Column("meter_id", BIG_ID, nullable=False),
        sa.Column("meter_key", sa.String(length=64), nullable=False),
        sa.Column("interval_start", _utc(), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("ledger_tx_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("transaction_id", BIG_ID, nullable=True),
        sa.Column("settle_transaction_id", BIG_ID, nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("final_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["window_id"], ["windows.id"], name=op.f("fk_eth_relay_outbox_window_id_windows")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_eth_relay_outbox_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["eth_transactions.id"],
            name=op.f("fk_eth_relay_outbox_transaction_id_eth_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["settle_transaction_id"],
            ["eth_transactions.id"],
            name=op.f("fk_eth_relay_outbox_settle_transaction_id_eth_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eth_relay_outbox")),
        sa.UniqueConstraint("window_id", name=op.f("uq_eth_relay_outbox_window_id")),
    )
    op.create_index(
        "ix_eth_relay_outbox_due", "eth_relay_outbox", ["status", "next_attempt_at"], unique=False
    )
    op.create_index("ix_eth_relay_outbox_interval", "eth_relay_outbox", ["interval_start"], unique=False)
    op.create_index(
        "ix_eth_relay_outbox_meter", "eth_relay_outbox", ["meter_id", "interval_start"], unique=False
    )
    op.create_table(
        "eth_plans",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("meter_key", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("service_path", sa.String(length=512), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("interval_start", _utc(), nullable=False),
        sa.Column("planned_wh", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("uploaded_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eth_plans")),
        sa.UniqueConstraint("meter_key", "interval_start", name="uq_eth_plans_key"),
    )


def downgrade() -> None:
    op.drop_table("eth_plans")
    op.drop_index("ix_eth_relay_outbox_meter", table_name="eth_relay_outbox")
    op.drop_index("ix_eth_relay_outbox_interval", table_name="eth_relay_outbox")
    op.drop_index("ix_eth_relay_outbox_due", table_name="eth_relay_outbox")
    op.drop_table("eth_relay_outbox")
    op.drop_index("ix_eth_transactions_status", table_name="eth_transactions")
    op.drop_table("eth_transactions")
