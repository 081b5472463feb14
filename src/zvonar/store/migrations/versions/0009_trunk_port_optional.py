"""a trunk's port is optional: without one its host is located by DNS SRV (RFC 3263)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 11:00:00.000000

``sip_trunks.port`` NULL: the carrier is found through ``_sip._<transport>.<host>`` SRV
records (their targets and ports, in priority and weight order), falling back to the host's
A/AAAA at 5060. Existing trunks keep their port, so nothing they do changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.alter_column("port", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE sip_trunks SET port = 5060 WHERE port IS NULL")
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.alter_column("port", existing_type=sa.Integer(), nullable=False)
