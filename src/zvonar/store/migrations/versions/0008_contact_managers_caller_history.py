"""contact managers, the caller and contact history indexes, mobile confirmation

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:00:00.000000

``contacts.manager_id``: the employee who looks after a customer (a scheme's
``{manager: contact}`` target). ``ix_calls_account_caller``: a caller's own calls, newest
first, for "who answered them last" and "which number they called last";
``ix_calls_account_contact``: a customer's calls from any of their numbers (the journal's
``contact_id`` filter). ``calls.placed_by`` and ``ix_calls_account_dialed``: who dialled an
outbound call, and whom — a customer who calls back reaches that employee.
``employees.mobile_confirm``: the employee's mobile takes a call only when they press 1.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("employees", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mobile_confirm", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manager_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_contacts_manager_id"), ["manager_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_contacts_manager_id_employees"),
            "employees",
            ["manager_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("placed_by", sa.Uuid(), nullable=True))
        batch_op.create_index(
            "ix_calls_account_dialed", ["account_id", "dialed", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_calls_account_caller", ["account_id", "caller", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_calls_account_contact",
            ["account_id", "caller_contact_id", "started_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_account_contact")
        batch_op.drop_index("ix_calls_account_dialed")
        batch_op.drop_column("placed_by")
        batch_op.drop_index("ix_calls_account_caller")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_contacts_manager_id_employees"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_contacts_manager_id"))
        batch_op.drop_column("manager_id")
    with op.batch_alter_table("employees", schema=None) as batch_op:
        batch_op.drop_column("mobile_confirm")
