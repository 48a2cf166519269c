"""usage tokens on jobs and batches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TOKENS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")


def upgrade() -> None:
    for table, kind in (("jobs", sa.Integer()), ("batches", sa.BigInteger())):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in TOKENS:
                # The server default fills existing rows; new rows get theirs from the ORM.
                batch_op.add_column(sa.Column(name, kind, nullable=False, server_default="0"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in TOKENS:
                batch_op.alter_column(name, server_default=None)


def downgrade() -> None:
    for table in ("batches", "jobs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in TOKENS:
                batch_op.drop_column(name)
