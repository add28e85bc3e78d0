"""windows.energy_wh: unbounded decimal text

Revision ID: 0006
Revises: 0005
A window's energy is the exact decimal sum over its energy attributes, written in plain positional form.
Readings may hold any finite double (up to about 1.8e308) and numeric strings up to ngsi.schemas'
MAX_EXPONENT, so that form can run to hundreds of digits; VARCHAR(64) made PostgreSQL refuse the window
and stalled the meter's chain. SQLite never enforced the length, so it is left as it is there (altering a
column in SQLite rebuilds the table, which the outbox's foreign key to windows forbids).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("windows", "energy_wh", type_=sa.Text(), existing_type=sa.String(length=64))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("windows", "energy_wh", type_=sa.String(length=64), existing_type=sa.Text())
