"""the journal keeps what the peer's RTCP reports said of our RTP, and the round trip

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 18:00:00.000000

``peer_loss`` (fraction 0-1 of our RTP the peer reports lost), ``peer_jitter_ms`` (the jitter
it reports for our RTP) and ``rtt_ms`` (the round trip measured from its reports, RFC 3550
§6.4.1) on ``calls`` (the caller's leg) and ``call_legs`` (each target's leg): NULL when the
peer sent no RTCP report or the row predates this revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("peer_loss", "peer_jitter_ms", "rtt_ms")


def upgrade() -> None:
    for table in ("calls", "call_legs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in _COLUMNS:
                batch_op.add_column(sa.Column(name, sa.Double(), nullable=True))


def downgrade() -> None:
    for table in ("calls", "call_legs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in reversed(_COLUMNS):
                batch_op.drop_column(name)
