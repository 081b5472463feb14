"""sealed trunk passwords: room for the sealed form

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 18:30:00.000000

The values themselves are sealed by the application at start-up (directory/secrets.py): the
key is the installation's secret_key, which a migration does not have.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.alter_column(
            "password",
            existing_type=sa.String(length=128),
            type_=sa.String(length=512),
            existing_nullable=True,
        )


def downgrade() -> None:
    # An older version cannot open sealed values (nor would they fit): they must be entered
    # again after this.
    op.execute("UPDATE sip_trunks SET password = NULL WHERE password LIKE 'sealed:%'")
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.alter_column(
            "password",
            existing_type=sa.String(length=512),
            type_=sa.String(length=128),
            existing_nullable=True,
        )
