"""a trunk may require SRTP: its calls are offered RTP/SAVP with SDES keys (RFC 4568)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 15:00:00.000000

``sip_trunks.srtp`` (false for every existing trunk, so nothing they do changes): for carriers
that take secure calls only, over TLS.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("srtp", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.drop_column("srtp")
