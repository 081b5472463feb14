"""Callback request events, published after commit (the worker and the live UI consume them)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from zvonar.core.events import Event


class CallbackStatus(enum.StrEnum):
    pending = "pending"  # waiting for its time (``next_attempt_at``)
    calling = "calling"  # an attempt is under way
    completed = "completed"  # the customer was connected to someone
    failed = "failed"  # every attempt failed (``failed_side`` says who did not answer)
    cancelled = "cancelled"


class FailedSide(enum.StrEnum):
    agents = "agents"  # nobody on side A answered
    customer = "customer"  # the customer did not answer or was busy
    system = "system"  # the call could not be placed (no agent registered, no trunk…)


@dataclass(frozen=True, kw_only=True)
class CallbackRequested(Event):
    request_id: uuid.UUID
    phone: str


@dataclass(frozen=True, kw_only=True)
class CallbackChanged(Event):
    """A request's status or attempt count changed; ``outcome`` is the last attempt's."""

    request_id: uuid.UUID
    status: CallbackStatus
    attempts: int
    outcome: str | None = None
    call_id: str | None = None
