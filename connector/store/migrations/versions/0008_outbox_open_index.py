"""ledger writer: index of each meter's open outbox rows by seq

Revision ID: 0008
Revises: 0007
`due_heads` and the claims ask, for each due row, whether its meter has an open row of lower seq. On
ix_ledger_outbox_meter (meter_id, seq) that walks the meter's confirmed history below the row; with the status
between, it is two seeks (one per open status). Before it, `due_heads` grouped the whole table by meter on
every round (130-270 ms at 100,000 meters, and growing with each window anchored).
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ledger_outbox_open", "ledger_outbox", ["meter_id", "status", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ledger_outbox_open", table_name="ledger_outbox")
