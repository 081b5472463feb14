"""Turn a scheme run into the B2BUA's static plan: waves of contacts and a final step.

The B2BUA rings ``Plan.waves`` in order and, if nobody answers, ends with ``Plan.final``. The
routing interpreter (``routing.engine.SchemeRun``) is a state machine that only learns what
comes next after an outcome; since the plan is fixed before the first ring, we walk it upfront
by answering every ring "no answer": the waves it then asks for are exactly the fallbacks a
real no-answer would reach. HTTP route steps are the one outside question: :func:`flatten` is a
generator in the ``sip.auth.client_auth_flow`` shape — it yields each ``HttpRequest`` and is
sent the ``Outcome`` — so the walk stays pure and the resolver does the I/O.

What the plan cannot express yet is skipped and recorded in the path: play steps (no prompt
mid-plan), queues (no ACD in the B2BUA) and IVR menus. Targets that resolve to no contact
(an employee with no live registration, an unreachable trunk) do not make an empty wave.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from zvonar.calls.plan import RingTarget, Wave
from zvonar.routing.engine import (
    Abandoned,
    Connected,
    Dial,
    Hangup,
    HttpRequest,
    Ivr,
    Outcome,
    OutcomeKind,
    Play,
    Queue,
    Ring,
    SchemeRun,
    Voicemail,
)

__all__ = ["Expand", "Flattened", "flatten", "run_flatten", "wave_of"]

Expand = Callable[[Dial], Sequence[RingTarget]]
MAX_ACTIONS = 500  # a safety net: goto hops and step counts already bound a run far below


@dataclass(frozen=True)
class Flattened:
    waves: tuple[Wave, ...]
    final: Voicemail | Hangup
    memory: dict[str, int] = field(default_factory=dict)  # round-robin pointers to keep
    path: str = ""
    skipped: tuple[str, ...] = ()  # steps the plan cannot run yet, for logs
    hops: tuple[str, ...] = ()  # the path step by step, for the journal


def wave_of(action: Ring, expand: Expand) -> Wave | None:
    """The wave of contacts a ring action reaches; None when it reaches nobody."""
    seen: set[str] = set()
    targets: list[RingTarget] = []
    for dial in action.targets:
        for t in expand(dial):
            if t.uri not in seen:  # one contact rung once, even if two targets share it
                seen.add(t.uri)
                targets.append(t)
    if not targets or not action.timeout > 0:
        return None
    return Wave(tuple(targets), action.timeout)


def flatten(
    run: SchemeRun, expand: Expand, now: datetime
) -> Generator[HttpRequest, Outcome, Flattened]:
    """Walk ``run`` to its end; yields HTTP route requests, returns the plan's parts."""
    waves: list[Wave] = []
    skipped: list[str] = []
    final: Voicemail | Hangup = Hangup()
    for _ in range(MAX_ACTIONS):
        action = run.next_action()
        if isinstance(action, Ring):
            wave = wave_of(action, expand)
            if wave is not None:
                waves.append(wave)
            kind = OutcomeKind.no_answer if wave is not None else OutcomeKind.unavailable
            run.on_outcome(Outcome(kind), now)
        elif isinstance(action, HttpRequest):
            outcome = yield action
            run.on_outcome(outcome, now)
        elif isinstance(action, Play):
            skipped.append(f"play {action.prompt}")
            run.on_outcome(Outcome(OutcomeKind.completed), now)
        elif isinstance(action, Queue):
            skipped.append(f"queue {action.queue}")
            run.on_outcome(Outcome(OutcomeKind.no_answer), now)
        elif isinstance(action, Ivr):
            skipped.append(f"menu {action.label or action.prompt}")
            run.on_outcome(Outcome(OutcomeKind.completed), now)
        elif isinstance(action, Voicemail | Hangup):
            final = action
            break
        elif isinstance(action, Connected | Abandoned):  # never fed "answered"/"caller_gone"
            break
    return Flattened(
        tuple(waves),
        final,
        dict(run.memory),
        run.describe(),
        tuple(skipped),
        tuple(str(h) for h in run.path),
    )


def run_flatten(
    run: SchemeRun,
    expand: Expand,
    now: datetime,
    http: Callable[[HttpRequest], Outcome] | None = None,
) -> Flattened:
    """:func:`flatten` with a synchronous HTTP answerer (tests, or no HTTP: every route
    request fails over to its fallback)."""
    flow = flatten(run, expand, now)
    try:
        request = next(flow)
        while True:
            outcome = http(request) if http else Outcome(OutcomeKind.http_error)
            request = flow.send(outcome)
    except StopIteration as stop:
        result: Flattened = stop.value
        return result
