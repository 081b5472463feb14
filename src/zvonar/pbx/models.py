"""Tables of the PBX slice: SIP registrations (the registrar's location service, RFC 3261 §10).

Bindings are written behind the registrar's in-memory table (see ``location_sql``) so they
survive a restart; times are wall-clock UTC so a new process restores exact lifetimes.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.store.base import Base, IdMixin


class SipBinding(IdMixin, Base):
    """One Contact registered for one address-of-record."""

    __tablename__ = "sip_bindings"
    __table_args__ = (UniqueConstraint("aor", "contact"),)

    # None for an AOR whose domain is no account's (cannot happen through the registrar,
    # which serves account realms only; kept nullable so a store write never fails on it).
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    aor: Mapped[str] = mapped_column(String(320), index=True)
    contact: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    registered_at: Mapped[datetime]
    q: Mapped[float] = mapped_column(default=1.0)
    call_id: Mapped[str] = mapped_column(String(255))
    cseq: Mapped[int] = mapped_column(BigInteger)
    source_host: Mapped[str] = mapped_column(String(64))
    source_port: Mapped[int]
    transport: Mapped[str] = mapped_column(String(8))
    flow_id: Mapped[str | None] = mapped_column(String(128))
    params: Mapped[list[list[str | None]]] = mapped_column(JSON, default=list)
    path: Mapped[list[str]] = mapped_column(JSON, default=list)
    user_agent: Mapped[str | None] = mapped_column(String(255))


class RingPointer(IdMixin, Base):
    """Where a round-robin ring step goes on next (pbx/ring_memory.py): kept so a restart does
    not send every group's next call to its first member again."""

    __tablename__ = "ring_pointers"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # The routing engine's memory key ("group:Sales", "ring:<scheme>:<targets>"): unbounded
    # text, so it is matched in memory, never by an index.
    key: Mapped[str] = mapped_column(Text)
    pointer: Mapped[int]
    updated_at: Mapped[datetime]
