"""Typed, frozen domain events.

Events are facts that already happened and were committed; services publish them after the
transaction commits, so a consumer never sees an event whose data a rollback undid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events; ``account_id`` scopes fan-out to the tenant's consumers."""

    account_id: uuid.UUID
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=_now)

    @property
    def event_type(self) -> str:
        return type(self).__name__
