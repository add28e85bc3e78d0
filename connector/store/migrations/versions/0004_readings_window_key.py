"""readings: one index serves duplicates and window scans

Revision ID: 0004
Revises: 0003
The readings table had two indexes: the unique key (meter_id, attr, observed_at) that finds duplicates and
(meter_id, window_start) for the window closer, verification and the query API. Every group commit of the
ingest writer rewrote leaf pages of both for every meter in the group. The unique key is now (meter_id,
window_start, observed_at, attr): a reading's window start is a function of its observation time and the
window length, which the store pins (connector/service.py `pin_window_length`), so the same readings are
duplicates, and the one index hands the closer and the verifier a window's readings in their order.
SQLite alone, groups of 1,500 readings inserted and committed: 10.2 -> 7.4 us per reading; legacy
100-entity ingest with 2 workers, with the WAL and parsing changes made beside it: 46,000-48,000 ->
60,000-66,000 readings/s (docs/benchmarks/ingest.md). On SQLite the table is rebuilt (Alembic batch
mode), rows kept.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_KEY = ["meter_id", "window_start", "observed_at", "attr"]
OLD_KEY = ["meter_id", "attr", "observed_at"]


def upgrade() -> None:
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_index("ix_readings_meter_window")
        batch_op.drop_constraint("uq_readings_key", type_="unique")
        batch_op.create_unique_constraint("uq_readings_key", NEW_KEY)


def downgrade() -> None:
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_constraint("uq_readings_key", type_="unique")
        batch_op.create_unique_constraint("uq_readings_key", OLD_KEY)
        batch_op.create_index("ix_readings_meter_window", ["meter_id", "window_start"], unique=False)
