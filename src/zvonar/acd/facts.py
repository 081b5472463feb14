"""Queue facts and the exact KPIs computed from them.

A fact is written once when something happens to a caller in a queue; reports never reconstruct
a queue from call journals. Definitions (stated here because every vendor differs):

* **service level** = answered within ``threshold`` seconds / *handled* calls, where handled =
  answered + abandoned + overflowed. Abandons within ``short_abandon`` seconds (the caller hung up
  before anyone could reasonably answer) are left out of numerator and denominator alike.
* **ASA** (average speed of answer) = mean wait of answered calls.
* **abandonment rate** = abandoned / handled (short abandons excluded the same way).

A callback keeps the caller's original ``entered`` time, so its answer wait counts from when
they first joined the queue.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from zvonar.acd.agents import CallId

QueueId = str


class FactKind(enum.StrEnum):
    entered = "entered"
    answered = "answered"
    abandoned = "abandoned"
    overflowed = "overflowed"
    callback_requested = "callback_requested"


class OverflowReason(enum.StrEnum):
    max_wait = "max_wait"
    max_length = "max_length"  # refused at entry: the queue was full
    exit_digit = "exit_digit"


@dataclass(frozen=True, slots=True)
class QueueFact:
    kind: FactKind
    queue_id: QueueId
    call_id: CallId
    at: float
    wait: float | None = None  # answered / abandoned / overflowed: seconds since entry
    reason: OverflowReason | None = None
    agent_id: str | None = None  # answered: who took it
    priority: int = 0

    def __post_init__(self) -> None:
        needs_wait = self.kind in (FactKind.answered, FactKind.abandoned, FactKind.overflowed)
        if needs_wait and (self.wait is None or self.wait < 0):
            raise ValueError(f"{self.kind} fact needs a non-negative wait")
        if (self.kind is FactKind.overflowed) != (self.reason is not None):
            raise ValueError("an overflow reason goes with overflowed facts only")


def _handled(facts: Iterable[QueueFact], short_abandon: float) -> tuple[list[float], int, int]:
    """Answered waits, counted abandons and overflows."""
    answered: list[float] = []
    abandoned = overflowed = 0
    for f in facts:
        if f.kind is FactKind.answered and f.wait is not None:
            answered.append(f.wait)
        elif f.kind is FactKind.abandoned and f.wait is not None:
            if f.wait >= short_abandon:
                abandoned += 1
        elif f.kind is FactKind.overflowed:
            overflowed += 1
    return answered, abandoned, overflowed


def service_level(
    facts: Iterable[QueueFact], threshold: float, *, short_abandon: float = 0.0
) -> float | None:
    """Share of handled calls answered within ``threshold`` seconds; None when none handled."""
    answered, abandoned, overflowed = _handled(facts, short_abandon)
    handled = len(answered) + abandoned + overflowed
    if handled == 0:
        return None
    return sum(1 for w in answered if w <= threshold) / handled


def asa(facts: Iterable[QueueFact]) -> float | None:
    """Average speed of answer in seconds; None when nothing was answered."""
    answered, _, _ = _handled(facts, 0.0)
    return sum(answered) / len(answered) if answered else None


def abandonment_rate(facts: Iterable[QueueFact], *, short_abandon: float = 0.0) -> float | None:
    answered, abandoned, overflowed = _handled(facts, short_abandon)
    handled = len(answered) + abandoned + overflowed
    return abandoned / handled if handled else None
