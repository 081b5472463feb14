"""trunks route outbound calls by E.164 prefix and priority

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-08 03:00:00.000000

``sip_trunks.prefixes`` (the E.164 prefixes a trunk may dial; ``[]`` for every existing trunk:
it dials any number, as before) and ``sip_trunks.priority`` (100 for every existing trunk: they
keep ranking as they did, by name among equals). outbound/trunks.py ranked by both already;
nothing stored them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefixes", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("priority", sa.Integer(), server_default="100", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("prefixes")
