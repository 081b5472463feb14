"""API shapes of the accounts slice. Inputs forbid unknown fields so typos fail loudly."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from zvonar.accounts.models import Role
from zvonar.accounts.rules import ACCOUNT_FIELDS
from zvonar.core.schemas import EmailText, Instant, Name, Output, PatchInput, StrictInput


class MeOut(Output):
    account_id: uuid.UUID
    role: Role
    user_id: uuid.UUID | None
    token_id: uuid.UUID | None


class UserIn(StrictInput):
    email: EmailText
    name: Name
    role: Role
    password: str | None = Field(default=None, min_length=8, max_length=256)
    language: str | None = Field(default=None, pattern="^(en|ru|uk)$")


class UserOut(Output):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    language: str | None
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class TokenIn(StrictInput):
    name: Name
    role: Role = Role.operator
    expires_at: Instant | None = None


class TokenOut(Output):
    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreatedOut(TokenOut):
    secret: str = Field(description="Shown once: store it now, it cannot be retrieved again.")


class AccountOut(Output):
    """The account's settings (the ``account`` section of ``zvonar config``)."""

    id: uuid.UUID
    slug: str
    name: str
    time_zone: str
    country: str
    language: str
    missed_call_emails: list[str]
    recording_enabled: bool
    recording_retention_days: int
    park_seconds: int
    park_ring_back_seconds: int
    http_route_private: bool
    international_calls: bool
    outbound_max_concurrent: int
    outbound_max_per_hour: int


class AccountPatch(PatchInput):
    """Only the fields sent change; none may be null. Ranges and codes as in
    docs/configuration.md's ``account`` section (checked by accounts/rules.py)."""

    NOT_NULL = frozenset(ACCOUNT_FIELDS)  # every setting has a value

    name: str | None = Field(default=None, max_length=200)
    time_zone: str | None = Field(
        default=None, max_length=64, description="IANA, e.g. Europe/Moscow"
    )
    country: str | None = Field(
        default=None, max_length=2, description="ISO 3166-1 alpha-2, upper case"
    )
    language: str | None = Field(default=None, max_length=2, description="en, ru, uk")
    missed_call_emails: list[str] | None = Field(default=None, max_length=20)
    recording_enabled: bool | None = Field(default=None, strict=True)
    recording_retention_days: int | None = Field(default=None, strict=True)
    park_seconds: int | None = Field(default=None, strict=True)
    park_ring_back_seconds: int | None = Field(default=None, strict=True)
    http_route_private: bool | None = Field(default=None, strict=True)
    international_calls: bool | None = Field(default=None, strict=True)
    outbound_max_concurrent: int | None = Field(default=None, strict=True)
    outbound_max_per_hour: int | None = Field(default=None, strict=True)
