"""how long a parked call waits, and how long its parker is rung back: account settings

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 16:20:00.000000

``accounts.park_seconds`` (120) and ``accounts.park_ring_back_seconds`` (30), the values the
PBX used for every account before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("park_seconds", sa.Integer(), server_default="120", nullable=False)
        )
        batch_op.add_column(
            sa.Column("park_ring_back_seconds", sa.Integer(), server_default="30", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("park_ring_back_seconds")
        batch_op.drop_column("park_seconds")
