"""Contact events, published after commit. The in-memory :class:`ContactIndex` consumes them;
the CRM and caller-card features will too. They carry ids and numbers, never notes or e-mails."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from zvonar.core.events import Event


class ContactAction(enum.StrEnum):
    created = "created"
    updated = "updated"


@dataclass(frozen=True, kw_only=True)
class ContactSaved(Event):
    contact_id: uuid.UUID
    action: ContactAction
    contact_name: str
    numbers: tuple[str, ...]
    tags: tuple[str, ...]
    city: str | None
    manager_id: uuid.UUID | None = None


@dataclass(frozen=True, kw_only=True)
class ContactDeleted(Event):
    contact_id: uuid.UUID
    numbers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ContactsImported(Event):
    """A bulk import: too many rows for one event each, so consumers reload the account."""

    created: int
    updated: int
    failed: int
