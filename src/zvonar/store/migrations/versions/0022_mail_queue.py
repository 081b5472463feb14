"""the mail spool

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08 02:00:00.000000

``mail_queue``: missed-call and voicemail mails kept until their server took them
(notify/spool.py), so a mail server down across a restart loses none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import zvonar.store.base

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_queue",
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", zvonar.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("locked_until", zvonar.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("failed_at", zvonar.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_queue")),
    )
    op.create_index(
        op.f("ix_mail_queue_locked_until"), "mail_queue", ["locked_until"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_mail_queue_locked_until"), table_name="mail_queue")
    op.drop_table("mail_queue")
