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
    """Something happened to a caller in a queue; ``what`` is one of ``joined``,
    ``offered``, ``answered``, ``abandoned`` (left, or a callback given up), ``overflow``,
    ``moved_out``/``moved_in`` (a supervisor's move; ``queue`` is the source, then the
    target), ``callback`` (hung up to be called back: still in line) and ``callback_retry``
    (their customer did not answer: offered again after the retry delay)."""

    queue: str
    call_id: str
    what: str
    at: datetime
