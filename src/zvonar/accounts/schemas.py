"""API shapes of the accounts slice. Inputs forbid unknown fields so typos fail loudly."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from zvonar.accounts.models import Role
from zvonar.core.schemas import EmailText, Instant, Name, Output, StrictInput


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
