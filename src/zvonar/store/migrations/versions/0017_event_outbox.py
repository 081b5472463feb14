"""the event outbox: a write's events for the other processes, in its own transaction

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 22:00:00.000000

``event_outbox`` (store/outbox.py): one row per event a unit of work emitted, numbered in
commit order (AUTOINCREMENT on SQLite: numbers never go back); the PBX relays other
processes' rows to its bus.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import zvonar.store.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", zvonar.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_event_outbox")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("event_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_outbox_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("event_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_outbox_created_at"))
    op.drop_table("event_outbox")
