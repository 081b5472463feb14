from __future__ import annotations

import uuid
from dataclasses import dataclass

from zvonar.core.events import Event


@dataclass(frozen=True, kw_only=True)
class AccountCreated(Event):
    name: str


@dataclass(frozen=True, kw_only=True)
class UserCreated(Event):
    user_id: uuid.UUID
    email: str
    role: str


@dataclass(frozen=True, kw_only=True)
class ApiTokenCreated(Event):
    token_id: uuid.UUID
    role: str


@dataclass(frozen=True, kw_only=True)
class ApiTokenRevoked(Event):
    token_id: uuid.UUID


@dataclass(frozen=True, kw_only=True)
class AccountSettingsChanged(Event):
    """Account settings (time zone, country, language, recording, park times…) changed;
    ``changed`` names the fields."""

    changed: tuple[str, ...]
