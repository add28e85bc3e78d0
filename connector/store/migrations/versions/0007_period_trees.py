"""period hash trees: roots, subtree roots, meters per period, tenant assets, root outbox, portfolio relay

Revision ID: 0007
Revises: 0006
Written by hand to match connector/store/tree_models.py (tests/ledger/test_period_trees.py compares them).
"""

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> connector.store.models.UTCDateTime:
    return connector.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "period_roots",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("start", _utc(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("meter_count", sa.Integer(), nullable=False),
        sa.Column("window_count", sa.Integer(), nullable=False),
        sa.Column("built_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_period_roots")),
        sa.UniqueConstraint("tenant", "kind", "start", name="uq_period_roots_period"),
    )
    op.create_index("ix_period_roots_start", "period_roots", ["start"], unique=False)
    op.create_table(
        "period_subtrees",
        sa.Column("period_id", BIG_ID, nullable=False),
        sa.Column("prefix", sa.String(length=512), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("meter_count", sa.Integer(), nullable=False),
        sa.Column("window_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"], ["period_roots.id"], name=op.f("fk_period_subtrees_period_id_period_roots")
        ),
        sa.PrimaryKeyConstraint("period_id", "prefix", name=op.f("pk_period_subtrees")),
    )
    op.create_table(
        "period_meters",
        sa.Column("period_id", BIG_ID, nullable=False),
        sa.Column("meter_id", BIG_ID, nullable=False),
        sa.Column("window_count", sa.Integer(), nullable=False),
        sa.Column("meter_root", sa.String(length=64), nullable=False),
        sa.Column("attributes_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"], ["period_roots.id"], name=op.f("fk_period_meters_period_id_period_roots")
        ),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_period_meters_meter_id_meters")),
        sa.PrimaryKeyConstraint("period_id", "meter_id", name=op.f("pk_period_meters")),
    )
    op.create_index("ix_period_meters_meter", "period_meters", ["meter_id", "period_id"], unique=False)
    op.create_table(
        "tenant_assets",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=True),
        sa.Column("asset_id", sa.String(length=64), nullable=True),
        sa.Column("head_tx", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_tenant_assets")),
    )
    op.create_table(
        "root_outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("period_id", BIG_ID, nullable=True),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("tx_id", sa.String(length=64), nullable=True),
        sa.Column("tx_json", sa.Text(), nullable=True),
        sa.Column("block_height", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("confirmed_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["period_id"], ["period_roots.id"], name=op.f("fk_root_outbox_period_id_period_roots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_root_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_root_outbox_idempotency_key")),
        sa.UniqueConstraint("period_id", name=op.f("uq_root_outbox_period_id")),
    )
    op.create_index("ix_root_outbox_due", "root_outbox", ["status", "next_attempt_at"], unique=False)
    op.create_index("ix_root_outbox_tenant", "root_outbox", ["tenant", "seq"], unique=False)
    op.create_table(
        "portfolio_relay",
        sa.Column("period_id", BIG_ID, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("interval_start", _utc(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("settle_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"], ["period_roots.id"], name=op.f("fk_portfolio_relay_period_id_period_roots")
        ),
        sa.PrimaryKeyConstraint("period_id", name=op.f("pk_portfolio_relay")),
    )
    op.create_index("ix_portfolio_relay_due", "portfolio_relay", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_table("portfolio_relay")
    op.drop_table("root_outbox")
    op.drop_table("tenant_assets")
    op.drop_table("period_meters")
    op.drop_table("period_subtrees")
    op.drop_table("period_roots")
