"""the journal says whether a call's media was encrypted (SRTP)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 16:00:00.000000

``calls.srtp`` (the caller's leg) and ``call_legs.srtp`` (each target's leg): true when the
leg's media was SRTP, false when it was plain RTP, NULL when it had no media or the row
predates this revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("calls", "call_legs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("srtp", sa.Boolean(), nullable=True))


def downgrade() -> None:
    for table in ("calls", "call_legs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("srtp")
