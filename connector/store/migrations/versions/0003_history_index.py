"""query API: index of anchored windows per meter, in window order

Revision ID: 0003
Revises: 0002
The history and aggregate routes count and page a meter's confirmed TRANSFERs by `seq` (the window start in
Unix seconds) from this index alone, without reading the outbox rows they skip (`id` is in it so PostgreSQL
can answer the page's ids with an index-only scan; SQLite keeps the rowid in every index anyway).
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = ["meter_id", "operation", "status", "seq", "id"]
    op.create_index("ix_ledger_outbox_history", "ledger_outbox", columns, unique=False)


def downgrade() -> None:
    op.drop_index("ix_ledger_outbox_history", table_name="ledger_outbox")
