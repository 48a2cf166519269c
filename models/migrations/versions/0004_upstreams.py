"""upstreams: passthrough body fields, the routed upstream, the upstream's answer, attempts

Revision ID: 0004_upstreams
Revises: 0003_batch_inputs
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_upstreams"
down_revision = "0003_batch_inputs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("upstream", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("response", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("attempt_log", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in ("attempt_log", "response", "upstream", "params"):
            batch_op.drop_column(name)
