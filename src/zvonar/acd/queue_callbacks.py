"""Queue callbacks as the runtime places them: how a try ended, and the dialer the PBX gives
the runtime (``pbx.queues.queue_callback_dialer``: the offered agents first, then the
customer). The retry policy's defaults live here too; the runtime applies them."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from zvonar.calls.plan import RingTarget

__all__ = ["CALLBACK_RETRY_DELAY", "MAX_CALLBACK_TRIES", "CallbackDialer", "CallbackOutcome"]

MAX_CALLBACK_TRIES = 3  # customer no-answers before a queue callback is given up
CALLBACK_RETRY_DELAY = 30.0  # seconds between two tries to reach a callback's customer


class CallbackOutcome(enum.StrEnum):
    talked = "talked"
    agent_missed = "agent_missed"  # no agent answered: an ordinary no-answer
    customer_missed = "customer_missed"  # an agent answered, the customer could not be reached


class CallbackDialer(Protocol):
    """Place a queue callback: ``(account, call_id, agent contacts, ring timeout, customer
    number)`` → how it went (returns once the call is over). ``connected(agent_id)`` is called
    when agent and customer start talking (the agent's employee id when known), so the queue
    counts the caller answered then, not when the talk is over."""

    def __call__(
        self,
        account_id: uuid.UUID,
        call_id: str,
        agents: tuple[RingTarget, ...],
        ring_for: float,
        phone: str,
        /,
        *,
        connected: Callable[[str | None], None],
    ) -> Awaitable[CallbackOutcome]: ...
