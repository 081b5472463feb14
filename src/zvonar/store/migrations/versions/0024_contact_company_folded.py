"""contacts are searched by company in any case of any script

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08 04:00:00.000000

``contacts.company_folded``: the company case-folded by Python, as ``name_folded`` is the name
(SQLite's lower() folds ASCII only, so "завод" never found "Завод"). Filled here for every
stored contact with a company, in Python for the same reason.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows per UPDATE batch: a few bind parameters each, far below any database's limit.
_BATCH = 2000

_contacts = sa.table(
    "contacts",
    sa.column("id", sa.Uuid()),
    sa.column("company", sa.String()),
    sa.column("company_folded", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("company_folded", sa.String(length=600), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_contacts.c.id, _contacts.c.company).where(_contacts.c.company.is_not(None))
    ).all()
    fill = (
        _contacts.update()
        .where(_contacts.c.id == sa.bindparam("contact_id"))
        .values(company_folded=sa.bindparam("folded"))
    )
    for start in range(0, len(rows), _BATCH):
        bind.execute(
            fill,
            [
                {"contact_id": cid, "folded": company.casefold()}
                for cid, company in rows[start : start + _BATCH]
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("company_folded")
