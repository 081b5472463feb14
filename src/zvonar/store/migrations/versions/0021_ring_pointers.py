"""round-robin pointers kept across restarts

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 00:30:00.000000

``ring_pointers``: where each round-robin ring step of an account goes on next
(pbx/ring_memory.py), written behind the call path.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import zvonar.store.base

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ring_pointers",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("pointer", sa.Integer(), nullable=False),
        sa.Column("updated_at", zvonar.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_ring_pointers_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ring_pointers")),
    )
    op.create_index(
        op.f("ix_ring_pointers_account_id"), "ring_pointers", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ring_pointers_account_id"), table_name="ring_pointers")
    op.drop_table("ring_pointers")
