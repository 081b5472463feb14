"""a trunk may name the From user its carrier requires (its account login)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 09:30:00.000000

``sip_trunks.from_user`` (NULL for every existing trunk: From keeps carrying the caller ID).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_user", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.drop_column("from_user")
