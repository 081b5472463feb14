"""Tables of the accounts slice; every other slice's rows carry an ``account_id`` into them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.store.base import Base, IdMixin, TimestampMixin


class Role(enum.StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    operator = "operator"
    marketer = "marketer"


class Account(IdMixin, TimestampMixin, Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    country: Mapped[str] = mapped_column(String(2), default="RU")
    language: Mapped[str] = mapped_column(String(2), default="ru")
    # Who is emailed about missed calls; kept on the account until notification rules exist.
    missed_call_emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    recording_enabled: Mapped[bool] = mapped_column(default=True)
    recording_retention_days: Mapped[int] = mapped_column(default=90)
    # Call park (calls/park.py): how long a call waits in its slot before the parker is rung
    # back, and how long that ring lasts.
    park_seconds: Mapped[int] = mapped_column(default=120)
    park_ring_back_seconds: Mapped[int] = mapped_column(default=30)
    # HTTP route steps may call loopback, private and link-local addresses (a back office on
    # the customer's own network, on a self-hosted install). Off: integrations/ssrf.py refuses
    # them, at the write and at the call.
    http_route_private: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The toll-fraud guard (outbound/tollfraud.py): calls to numbers outside ``country`` are
    # refused unless allowed, and outbound calls are capped (in progress, and in any hour),
    # so a stolen SIP password cannot run up an international bill overnight.
    international_calls: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    outbound_max_concurrent: Mapped[int] = mapped_column(default=10, server_default="10")
    outbound_max_per_hour: Mapped[int] = mapped_column(default=200, server_default="200")
    # Bumped in the transaction of every write that changes what routing reads
    # (routing/version.py): how a process that did not see the write's events (the CLI's
    # ``config apply``, another node) learns that its cached routing data is stale.
    routing_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    language: Mapped[str | None] = mapped_column(String(2))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]


class ApiToken(IdMixin, TimestampMixin, Base):
    """An integration token. Only a SHA-256 of the secret is kept: tokens carry 256 bits of
    entropy, so a fast hash is safe (argon2 is for low-entropy passwords)."""

    __tablename__ = "api_tokens"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class WebSession(TimestampMixin, Base):
    """A signed-in browser. The cookie holds the session secret; the row holds its hash."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
