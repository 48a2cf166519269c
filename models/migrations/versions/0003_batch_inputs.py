"""batch-level system message; uploaded files kept in pieces

Revision ID: 0003_batch_inputs
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_batch_inputs"
down_revision = "0002"
branch_labels = None
depends_on = None

_files = sa.table("files", sa.column("id", sa.String()), sa.column("content", sa.LargeBinary()))
_parts = sa.table(
    "file_parts",
    sa.column("file_id", sa.String()),
    sa.column("seq", sa.Integer()),
    sa.column("data", sa.LargeBinary()),
)


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("system_message", sa.Text(), nullable=True))
    op.create_table(
        "file_parts",
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_file_parts")),
    )
    # Each existing file becomes one piece; new uploads are stored in many.
    op.execute(
        _parts.insert().from_select(
            ["file_id", "seq", "data"], sa.select(_files.c.id, sa.literal(0), _files.c.content)
        )
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("content")
    # Only now: SQLite rebuilds "files" to drop a column, and the cascade would empty this.
    with op.batch_alter_table("file_parts", schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_file_parts_file_id_files"), "files", ["file_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    for (file_id,) in connection.execute(sa.select(_files.c.id)).all():
        pieces = connection.execute(
            sa.select(_parts.c.data).where(_parts.c.file_id == file_id).order_by(_parts.c.seq)
        ).scalars()
        connection.execute(
            _files.update().where(_files.c.id == file_id).values(content=b"".join(pieces))
        )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.alter_column("content", nullable=False)
    op.drop_table("file_parts")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("system_message")
