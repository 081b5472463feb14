"""A call the PBX places itself, as its requester states it (:class:`Origination`: side A's
waves, then side B) and how it went (:class:`OriginationOutcome`). ``originate.py`` places it.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from zvonar.calls.events import Direction
from zvonar.calls.plan import RingTarget, Wave

__all__ = ["Origination", "OriginationOutcome"]


@dataclass(frozen=True)
class Origination:
    """What to place: ``first`` rung wave after wave, then ``then`` for ``then_timeout`` s.

    ``caller`` (the customer's number) and ``dialed`` (the account's number or a label) are
    what the journal shows; A's phones see ``caller`` as the From user unless a target says
    otherwise. ``call_id``: "" to mint one (the outbound path may have admitted the call under
    an id already: its toll-fraud slot is released by that id's CallEnded).
    """

    account_id: uuid.UUID
    first: tuple[Wave, ...]
    then: RingTarget
    then_timeout: float = 30.0
    direction: Direction = Direction.callback
    caller: str = ""
    dialed: str = ""
    record: bool = False
    scheme_path: tuple[str, ...] = ()
    tracking: dict[str, str] = field(default_factory=dict)
    call_id: str = ""

    def __post_init__(self) -> None:
        if not self.first:
            raise ValueError("an origination needs at least one wave for side A")
        if not self.then_timeout > 0:
            raise ValueError("then_timeout must be > 0 seconds")


class OriginationOutcome(enum.StrEnum):
    connected = "connected"  # B answered: both sides talked
    first_no_answer = "first_no_answer"  # no one on side A answered (or A gave up)
    then_no_answer = "then_no_answer"  # the customer did not answer in time
    then_busy = "then_busy"  # the customer was busy or declined
    failed = "failed"  # could not be placed (media, SIP, trunk failure, shutdown)
    cancelled = "cancelled"  # cancel() before B answered
