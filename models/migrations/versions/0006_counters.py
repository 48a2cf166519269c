"""counters kept with every job transition, filled from the jobs already there; indexes
for the dispatcher's ready and in-flight jobs

Revision ID: 0006_counters
Revises: 0005_webhooks
Create Date: 2026-11-30 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_counters"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
USAGE = (
    "chars_in",
    "chars_out",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
)
READY = "status = 'queued' AND dispatch_token IS NULL"
IN_FLIGHT = "status = 'running' OR dispatch_token IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "batch_counters",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in STATES),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in USAGE),
        sa.Column("output_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_counters_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batch_counters")),
    )
    # Every batch's counters from its jobs, once. The file sizes are left unknown (NULL):
    # they are counted from the rendered file the first time someone asks.
    states = ", ".join(
        f"COALESCE(SUM(CASE WHEN j.status = '{s}' THEN 1 ELSE 0 END), 0)" for s in STATES
    )
    usage = ", ".join(f"COALESCE(SUM(j.{name}), 0)" for name in USAGE)
    columns = ", ".join((*STATES, *USAGE))
    op.execute(
        f"INSERT INTO batch_counters (batch_id, {columns}, output_bytes, error_bytes) "
        f"SELECT b.id, {states}, {usage}, NULL, NULL "
        "FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id GROUP BY b.id"
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_ready",
            ["batch_id", "position"],
            unique=False,
            postgresql_where=sa.text(READY),
            sqlite_where=sa.text(READY),
        )
        batch_op.create_index(
            "ix_jobs_in_flight",
            ["upstream", "batch_id"],
            unique=False,
            postgresql_where=sa.text(IN_FLIGHT),
            sqlite_where=sa.text(IN_FLIGHT),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_in_flight")
        batch_op.drop_index("ix_jobs_ready")
    op.drop_table("batch_counters")
