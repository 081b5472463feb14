"""which process writes each open journal row: call owners and their leases

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 23:40:00.000000

``call_owners`` (a lease per process that writes call rows, renewed every few seconds) and
``calls.owner_id``: recovery closes a row only once its owner's lease ran out
(journal/owners.py), so a second process starting on the same database leaves live calls alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import zvonar.store.base

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_owners",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("started_at", zvonar.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", zvonar.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_owners")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("owner_id")
    op.drop_table("call_owners")
