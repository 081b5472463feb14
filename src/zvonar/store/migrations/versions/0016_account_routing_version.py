"""the account's routing version: how other processes learn that routing data changed

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 21:30:00.000000

``accounts.routing_version`` (0), bumped in the transaction of every write that changes what
call routing reads (routing/version.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("routing_version", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("routing_version")
