"""Routing events, published after commit; call routing caches consume them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from zvonar.core.events import Event
from zvonar.directory.events import Action


@dataclass(frozen=True, kw_only=True)
class SchemeChanged(Event):
    scheme_id: uuid.UUID
    scheme_name: str
    action: Action


@dataclass(frozen=True, kw_only=True)
class SchemeAssigned(Event):
    """``scheme_id`` None: the number no longer has a scheme."""

    number_id: uuid.UUID
    e164: str
    scheme_id: uuid.UUID | None


@dataclass(frozen=True, kw_only=True)
class CalendarChanged(Event):
    pass
