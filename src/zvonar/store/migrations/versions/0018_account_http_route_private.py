"""the account's permission for HTTP route steps to call private addresses

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 23:10:00.000000

``accounts.http_route_private`` (false): HTTP route URLs on loopback, private and link-local
addresses are refused unless the account allows them (integrations/ssrf.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("http_route_private", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("http_route_private")
