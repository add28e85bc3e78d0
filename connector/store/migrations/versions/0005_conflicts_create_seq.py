"""reading_conflicts: evidence of conflicting readings; CREATE rows ordered before any window

Revision ID: 0005
Revises: 0004
A reading with the key (meter, attribute, observation time) of a stored reading but another type, value or
unit was dropped as a duplicate; it is now kept in reading_conflicts (the stored reading stays the one
fingerprinted). Unique on the key plus a digest of the content, so a re-sent conflict is kept once.

A meter's CREATE had seq 0 and a TRANSFER the window start in Unix seconds, so a window before 1970 came
before its meter's CREATE and the meter's chain stalled for good. The CREATE's seq is now CREATE_SEQ
(-2**62), below any window start a datetime can hold.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CREATE_SEQ = -(2**62)  # connector/ledger/outbox.py CREATE_SEQ


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "reading_conflicts",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("meter_id", big_id, nullable=False),
        sa.Column("attr", sa.String(length=256), nullable=False),
        sa.Column("attr_type", sa.String(length=256), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_source", sa.String(length=16), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("correlator", sa.String(length=256), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name="fk_reading_conflicts_meter_id_meters"),
        sa.PrimaryKeyConstraint("id", name="pk_reading_conflicts"),
        sa.UniqueConstraint(
            "meter_id", "window_start", "observed_at", "attr", "digest", name="uq_reading_conflicts_key"
        ),
    )
    op.execute(f"UPDATE ledger_outbox SET seq = {CREATE_SEQ} WHERE operation = 'CREATE'")


def downgrade() -> None:
    op.execute("UPDATE ledger_outbox SET seq = 0 WHERE operation = 'CREATE'")
    op.drop_table("reading_conflicts")
