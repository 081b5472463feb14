"""Pure decisions of forking: what a target's final status means, when a wave is over,
and how an unanswered call is classified. No I/O; the call actor (call.py) asks these.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from zvonar.calls.events import Disposition, LegEndReason
from zvonar.calls.plan import StepResultKind

__all__ = [
    "Bound",
    "ForkState",
    "WaveTracker",
    "best_final",
    "disposition_for",
    "end_reason_for_status",
    "relayable",
    "step_result_for",
]


class ForkState(enum.Enum):
    INVITING = "inviting"  # INVITE sent, nothing but 100 yet
    RINGING = "ringing"  # 180/183 seen
    ANSWERED = "answered"  # 2xx: the winner
    ENDED = "ended"  # a final non-2xx, a transport failure, or cancelled by us


def end_reason_for_status(status: int) -> LegEndReason:
    """The leg-end reason a target's final response means (RFC 3261 §21)."""
    if status in (486, 600):  # Busy Here / Busy Everywhere
        return LegEndReason.busy
    if status in (603, 403):  # Decline; Forbidden (the phone refused us)
        return LegEndReason.rejected
    if status == 487:  # Request Terminated: our CANCEL took effect
        return LegEndReason.cancelled
    if status in (408, 480):  # nobody picked up before the phone or a proxy gave up
        return LegEndReason.no_answer
    return LegEndReason.failed


class Bound(enum.Enum):
    """A fork's own limits inside its wave, counted from its INVITE (the wave's timer is the
    wave's): what it means when one runs out."""

    silence = "silence"  # Wave.silence: not a word from the target yet, so it is unreachable
    ring = "ring"  # RingTarget.ring_seconds: its own time to ring is over, so not answered


class WaveTracker:
    """The forks of one wave. A wave is over once every fork ended (or one answered).

    It also keeps each fork's own bounds (:class:`Bound`) in the order they come, so that one
    timer per fork is enough: ``bound`` says when the first runs out, ``due`` which one the
    timer stood for and when the next one is."""

    def __init__(self, leg_ids: Iterable[str]) -> None:
        self.states: dict[str, ForkState] = dict.fromkeys(leg_ids, ForkState.INVITING)
        self.reasons: dict[str, LegEndReason] = {}
        self._bounds: dict[str, list[tuple[float, Bound]]] = {}

    def bound(self, leg_id: str, *, silence: float | None, ring: float | None) -> float | None:
        """Note fork ``leg_id``'s own bounds (seconds from its INVITE); the delay of its first
        timer, None when it has none. A silence bound counts only before the ring limit: past
        it, the fork has stopped ringing anyway."""
        bounds = [] if ring is None else [(ring, Bound.ring)]
        if silence is not None and (ring is None or silence < ring):
            bounds.insert(0, (silence, Bound.silence))
        if not bounds:
            self._bounds.pop(leg_id, None)
            return None
        self._bounds[leg_id] = bounds
        return bounds[0][0]

    def due(self, leg_id: str) -> tuple[Bound | None, float | None]:
        """Fork ``leg_id``'s timer fired: the bound it stood for (None: none was noted) and the
        delay from now to its next one (None: none left)."""
        bounds = self._bounds.get(leg_id)
        if not bounds:
            return None, None
        at, bound = bounds.pop(0)
        if not bounds:
            del self._bounds[leg_id]
            return bound, None
        return bound, bounds[0][0] - at

    def ringing(self, leg_id: str) -> bool:
        """A provisional response; True the first time this fork rings."""
        if self.states.get(leg_id) is not ForkState.INVITING:
            return False
        self.states[leg_id] = ForkState.RINGING
        return True

    def answered(self, leg_id: str) -> bool:
        """A 2xx; True if it wins (no other fork answered before)."""
        if leg_id not in self.states or self.winner is not None:
            return False
        if self.states[leg_id] is ForkState.ENDED:
            return False
        self.states[leg_id] = ForkState.ANSWERED
        return True

    def forwarded(self, leg_id: str, new_ids: Iterable[str]) -> bool:
        """A fork redirected (3xx) to ``new_ids``: they ring in its place, in this wave; its
        own end counts for nothing (their outcomes do). False if it was not live."""
        if self.states.get(leg_id) not in (ForkState.INVITING, ForkState.RINGING):
            return False
        del self.states[leg_id]
        self.states.update(dict.fromkeys(new_ids, ForkState.INVITING))
        return True

    def ended(self, leg_id: str, reason: LegEndReason) -> bool:
        """A fork is over; True if it was live (the event to publish is new)."""
        if self.states.get(leg_id) in (None, ForkState.ENDED, ForkState.ANSWERED):
            return False
        self.states[leg_id] = ForkState.ENDED
        self.reasons[leg_id] = reason
        return True

    @property
    def winner(self) -> str | None:
        for leg_id, state in self.states.items():
            if state is ForkState.ANSWERED:
                return leg_id
        return None

    @property
    def live(self) -> list[str]:
        """Forks still ringing or inviting (to cancel on a win, a timeout or a hang-up)."""
        return [k for k, s in self.states.items() if s in (ForkState.INVITING, ForkState.RINGING)]

    @property
    def over(self) -> bool:
        return self.winner is not None or not self.live


def disposition_for(
    reasons: Iterable[LegEndReason], *, nobody: Disposition = Disposition.failed
) -> Disposition:
    """How an unanswered call ends: busy if every target was busy, missed if any rang out
    or was cancelled by a wave timeout, failed if none could even be reached (their phones
    or carriers failed). ``nobody``: a call that rang no one at all — ``missed`` when the
    plan found nobody available to ring (the caller still called and was not answered),
    ``failed`` when the call could not be placed."""
    seen = list(reasons)
    if not seen:
        return nobody
    if all(r is LegEndReason.busy for r in seen):
        return Disposition.busy
    if any(r in (LegEndReason.no_answer, LegEndReason.cancelled) for r in seen):
        return Disposition.missed
    if any(r in (LegEndReason.busy, LegEndReason.rejected) for r in seen):
        return Disposition.busy
    return Disposition.failed


def step_result_for(reasons: Iterable[LegEndReason]) -> StepResultKind:
    """How a ring step nobody answered ended, for the route and the journal's path: busy
    when every target refused the call — busy, or declined (603: the employee was there and
    pressed "reject"); failed when none could be reached; else no answer."""
    seen = list(reasons)
    if seen and all(r in (LegEndReason.busy, LegEndReason.rejected) for r in seen):
        return StepResultKind.busy
    if seen and all(r is LegEndReason.failed for r in seen):
        return StepResultKind.failed
    return StepResultKind.no_answer


def best_final(responses: list[tuple[int, str] | None]) -> tuple[int, str] | None:
    """A 6xx if any, else the lowest class (RFC 3261 §16.7 step 6), a busy device before
    the others of its class (a colleague on another call is busy, not unavailable), else
    first come first."""
    finals = [r for r in responses if r is not None and r[0] >= 400]
    if not finals:
        return None
    return min(finals, key=lambda r: (r[0] < 600, r[0] // 100, r[0] != 486))


def relayable(response: tuple[int, str]) -> tuple[int, str]:
    """The far end's failure as we pass it on: a challenge we could not answer is a refusal
    (else the phone would send *us* credentials for the carrier's realm), and a 503 a 500
    (RFC 3261 §16.7: the phone must not take the PBX itself for overloaded)."""
    status, reason = response
    if status in (401, 407):
        return 403, f"Forbidden (the carrier answered {status})"
    if status == 503:
        return 500, f"Server Internal Error (the carrier answered 503 {reason})"[:120]
    return status, reason
