"""the account's toll-fraud settings: international calls and caps on outbound calls

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 10:00:00.000000

``accounts.international_calls`` (false), ``accounts.outbound_max_concurrent`` (10) and
``accounts.outbound_max_per_hour`` (200): the limits the toll-fraud guard applied to every
account before (outbound/tollfraud.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "international_calls", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("outbound_max_concurrent", sa.Integer(), server_default="10", nullable=False)
        )
        batch_op.add_column(
            sa.Column("outbound_max_per_hour", sa.Integer(), server_default="200", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("outbound_max_per_hour")
        batch_op.drop_column("outbound_max_concurrent")
        batch_op.drop_column("international_calls")
