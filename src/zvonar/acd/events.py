"""Live ACD facts on the bus: what supervisors' screens and webhooks follow.

Stored history (intervals, queue facts) goes to the database through ``AcdService``; these
events are the live feed of the same moments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from zvonar.core.events import Event

__all__ = ["AgentAlerted", "AgentStatusChanged", "QueueCallerChanged"]


@dataclass(frozen=True, kw_only=True)
class AgentStatusChanged(Event):
    agent_id: str  # the employee id
    old: str
    new: str
    reason: str | None
    at: datetime


@dataclass(frozen=True, kw_only=True)
class AgentAlerted(Event):
    """An agent let ``no_answers`` offers ring out in a row and was set away."""

    agent_id: str
    reason: str
    no_answers: int
    at: datetime


@dataclass(frozen=True, kw_only=True)
class QueueCallerChanged(Event):
    """A caller joined, was offered, answered, left or overflowed a queue (``what``)."""

    queue: str
    call_id: str
    what: str
    at: datetime
