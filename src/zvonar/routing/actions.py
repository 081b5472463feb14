"""What the scheme interpreter hears and says: outcomes in, actions out, and path entries.

Frozen, typed values only; ``engine.SchemeRun`` decides which action follows which outcome.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from zvonar.routing.scheme import TargetKind

# --- outcomes -------------------------------------------------------------------------------------


class OutcomeKind(enum.StrEnum):
    answered = "answered"
    no_answer = "no_answer"
    busy = "busy"
    unavailable = "unavailable"
    failed = "failed"
    completed = "completed"  # a prompt finished playing; of a menu: it could not be played
    http_reply = "http_reply"
    http_error = "http_error"  # timeout, connection error, non-2xx
    caller_gone = "caller_gone"
    digit = "digit"  # the caller pressed a key during a menu (payload: "0"–"9", "*", "#")
    no_input = "no_input"  # a menu's timeout passed without a key
    callback = "callback"  # the caller left a queue asking to be called back


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    # The decoded JSON body of an http_reply, why an http_error (shown in the journal's path),
    # the key of a digit.
    payload: Any = None
    answered_by: str | None = None  # target key of who answered


# --- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dial:
    kind: TargetKind
    ref: str
    timeout: float

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.ref}"


@dataclass(frozen=True)
class Ring:
    targets: tuple[Dial, ...]
    timeout: float
    confirm: bool = False  # outside targets must press 1 to take the call (RingStep.confirm)
    announce: str | None = None  # a prompt key the answering party hears first


@dataclass(frozen=True)
class Play:
    prompt: str


@dataclass(frozen=True)
class HttpRequest:
    url: str
    payload: Mapping[str, Any]
    timeout: float


@dataclass(frozen=True)
class Queue:
    queue: str
    timeout: float | None
    label: str | None = None


RetryReason = Literal["invalid", "no_input"]


@dataclass(frozen=True)
class Ivr:
    """Play ``prompt`` (after ``invalid_prompt`` when ``retry`` is "invalid") and collect one
    of ``digits`` within ``timeout`` seconds. ``attempt`` counts replays, 0 the first time."""

    prompt: str
    digits: frozenset[str]
    timeout: float
    attempt: int = 0
    retry: RetryReason | None = None
    invalid_prompt: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Voicemail:
    greeting: str | None
    notify: tuple[str, ...]


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Connected:
    answered_by: str | None


@dataclass(frozen=True)
class Abandoned:
    pass


@dataclass(frozen=True)
class CallbackRequested:
    """The caller asked a queue to call them back: the call ends, the queue keeps the place."""


Action = (
    Ring
    | Play
    | HttpRequest
    | Queue
    | Ivr
    | Voicemail
    | Hangup
    | Connected
    | Abandoned
    | CallbackRequested
)


@dataclass(frozen=True)
class Hop:
    """One entry of the path: a branch taken, a step run and how it ended."""

    scheme: str
    text: str
    outcome: str | None = None

    def __str__(self) -> str:
        return f"{self.text} [{self.outcome}]" if self.outcome else self.text
