"""The step-chain interpreter: a sans-IO state machine that walks a scheme for one call.

The call orchestrator drives it::

    run = SchemeRun(scheme, context, now, rng=rng)
    action = run.next_action()          # Ring / Play / HttpRequest / Queue / Ivr, or a terminal
    ...perform it...
    run.on_outcome(Outcome(OutcomeKind.no_answer), now)
    action = run.next_action()          # and so on until run.finished

Terminal actions are :class:`Connected` (somebody answered; :attr:`SchemeRun.rating` says
whether to ask for a rating), :class:`Voicemail`, :class:`Hangup`, :class:`CallbackRequested`
(the caller left a queue asking to be called back) and :class:`Abandoned` (the caller left).
An :class:`Ivr` menu is answered with a ``digit`` or ``no_input`` outcome; the interpreter
replays it (``attempt``, ``retry``) until the retries are spent. Nothing here dials, sleeps or
reads a clock: ``now`` comes in, actions and their timeouts go out. Outcomes are applied through
a transition table ``(pending action, outcome) -> effect``; an outcome the table lacks is a
:class:`~zvonar.routing.errors.RoutingStateError`. The actions and outcomes live in ``actions``.

Guarantee: a busy, unavailable, failed or unanswered ring moves on to the next wave or step (a
queue that overflows runs its overflow steps first); the interpreter never produces a busy
signal, and when every step is spent it ends with the scheme's final step (voicemail unless the
scheme says hang up). "Go to scheme", caller rules, menu choices and HTTP route replies are
resolved inside; the path taken is kept for the call journal (:meth:`describe`).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from zvonar.routing.actions import (
    Abandoned,
    Action,
    CallbackRequested,
    Connected,
    Dial,
    Hangup,
    Hop,
    HttpRequest,
    Ivr,
    Outcome,
    OutcomeKind,
    Play,
    Queue,
    RetryReason,
    Ring,
    Voicemail,
)
from zvonar.routing.errors import RoutingStateError, SchemeInvalid
from zvonar.routing.schedule import Branch, WorkCalendar
from zvonar.routing.scheme import (
    MAX_GOTO_HOPS,
    CallerRuleStep,
    GotoStep,
    HangupStep,
    HttpRouteStep,
    IvrOption,
    IvrStep,
    PlayStep,
    QueueStep,
    RingStep,
    Scheme,
    Step,
    Target,
    TargetKind,
    VoicemailStep,
)
from zvonar.routing.scheme_codec import target_from_dict
from zvonar.routing.strategies import MemberState, Presence, Strategy, Wave, plan

# The vocabulary lives in ``actions``; orchestrators import it from here with the interpreter.
__all__ = [
    "UNKNOWN_TAG",
    "Abandoned",
    "Action",
    "CallContext",
    "CallbackRequested",
    "Connected",
    "Dial",
    "GroupInfo",
    "Hangup",
    "Hop",
    "HttpRequest",
    "Ivr",
    "Outcome",
    "OutcomeKind",
    "Play",
    "Queue",
    "RetryReason",
    "Ring",
    "SchemeRun",
    "Voicemail",
]

UNKNOWN_TAG = "unknown"  # the tag of a caller who is not in the account's contact directory


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupInfo:
    strategy: Strategy
    members: tuple[tuple[str, int], ...]  # (extension, weight) in ringing order


@dataclass(frozen=True)
class CallContext:
    """What the orchestrator knows when the call arrives. ``presence`` is keyed by target key
    (``employee:101``); an employee missing from it is treated as unregistered."""

    call_id: str
    caller: str
    called: str
    calendar: WorkCalendar
    schemes: Mapping[str, Scheme] = field(default_factory=dict)
    caller_known: bool = False
    caller_tags: frozenset[str] = frozenset()
    presence: Mapping[str, MemberState] = field(default_factory=dict)
    groups: Mapping[str, GroupInfo] = field(default_factory=dict)
    memory: Mapping[str, int] = field(default_factory=dict)  # round-robin pointers
    # The caller's own employees by ManagerRef value ("contact", "last") → extension.
    managers: Mapping[str, str] = field(default_factory=dict)

    @property
    def tags(self) -> frozenset[str]:
        return self.caller_tags if self.caller_known else self.caller_tags | {UNKNOWN_TAG}


# --- the transition table -------------------------------------------------------------------------


class Pending(enum.Enum):
    ring = "ring"
    play = "play"
    http = "http"
    queue = "queue"
    ivr = "ivr"


class Effect(enum.Enum):
    next_wave = "next_wave"
    next_step = "next_step"
    connect = "connect"
    http_route = "http_route"
    fallback = "fallback"
    abandon = "abandon"
    overflow = "overflow"
    callback = "callback"
    menu_digit = "menu_digit"
    menu_retry = "menu_retry"


_O = OutcomeKind
_NOT_REACHED = (_O.no_answer, _O.busy, _O.unavailable, _O.failed)
TRANSITIONS: dict[tuple[Pending, OutcomeKind], Effect] = {
    (Pending.ring, _O.answered): Effect.connect,
    **{(Pending.ring, k): Effect.next_wave for k in _NOT_REACHED},
    (Pending.play, _O.completed): Effect.next_step,
    (Pending.play, _O.failed): Effect.next_step,
    (Pending.http, _O.http_reply): Effect.http_route,
    (Pending.http, _O.http_error): Effect.fallback,
    (Pending.queue, _O.answered): Effect.connect,
    **{(Pending.queue, k): Effect.overflow for k in _NOT_REACHED},
    (Pending.queue, _O.callback): Effect.callback,
    (Pending.ivr, _O.digit): Effect.menu_digit,
    (Pending.ivr, _O.no_input): Effect.menu_retry,
    (Pending.ivr, _O.completed): Effect.next_step,
    (Pending.ivr, _O.failed): Effect.next_step,
    **{(p, _O.caller_gone): Effect.abandon for p in Pending},
}


@dataclass
class _Frame:
    scheme: Scheme  # whose steps these are: a goto replaces the stack, nested lists inherit it
    steps: tuple[Step, ...]
    index: int = 0


@dataclass(frozen=True)
class _Menu:
    step: IvrStep
    owner: Scheme
    attempt: int = 0


def _secs(x: float) -> str:
    return f"{x:g}s"


def _menu_text(menu: _Menu) -> str:
    text = f"menu {menu.step.label or menu.step.prompt}"
    return f"{text} (retry {menu.attempt})" if menu.attempt else text


def _together(members: list[MemberState], step: RingStep) -> tuple[list[MemberState], float]:
    """``members`` rung all at once by ``step``, each with its own timeout (one without: the
    step's, default 30 s), and how long that wave may last: the step's ``timeout``, which caps
    theirs, or without one the longest of theirs."""
    own = step.timeout or RingStep.DEFAULT_TIMEOUT
    timed = [m if m.timeout is not None else replace(m, timeout=own) for m in members]
    return timed, step.timeout or max((m.timeout or own for m in timed), default=own)


def _ring_text(step: RingStep) -> str:
    what = step.label or ", ".join(
        f"{t.ref} manager" if t.kind is TargetKind.manager else t.ref for t in step.targets
    )
    return f"ring {what} ({_secs(step.timeout)})" if step.timeout else f"ring {what}"


class SchemeRun:
    def __init__(
        self,
        scheme: Scheme,
        context: CallContext,
        now: datetime,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.context = context
        self.memory: dict[str, int] = {}  # round-robin pointers to store after the call
        self.path: list[Hop] = []
        self._rng = rng if rng is not None else random.Random()
        self._now = now
        self._stack: list[_Frame] = []
        self._scheme = scheme
        self._jumps = 0
        self._pending: tuple[Pending, Action] | None = None
        self._terminal: Action | None = None
        self._waves: list[Wave] = []
        self._ring_deadline: datetime | None = None
        self._confirm = False  # the ringing step's RingStep.confirm
        self._announce: str | None = None  # … and its RingStep.announce
        self._http: HttpRouteStep | None = None
        self._menu: _Menu | None = None
        self._queue: QueueStep | None = None
        self._owner = scheme  # the scheme whose step is pending
        self._connected_in: Scheme | None = None
        self._enter(scheme)

    # --- public ----------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._terminal is not None

    @property
    def rating(self) -> bool:
        """Ask the caller to rate the call: the scheme whose step connected it has rating on."""
        return self._connected_in is not None and self._connected_in.rating

    def next_action(self) -> Action:
        """The action to perform now (the same one again until an outcome is fed)."""
        if self._terminal is not None:
            return self._terminal
        if self._pending is None:
            self._advance()
        if self._terminal is not None:
            return self._terminal
        if self._pending is None:  # _advance always ends in a pending or a terminal action
            raise RoutingStateError("no action")
        return self._pending[1]

    def on_outcome(self, outcome: Outcome, now: datetime) -> None:
        if self._terminal is not None:
            raise RoutingStateError("the run has finished")
        if self._pending is None:
            raise RoutingStateError("no action is pending: call next_action() first")
        effect = TRANSITIONS.get((self._pending[0], outcome.kind))
        if effect is None:
            raise RoutingStateError(f"{outcome.kind.value} is not an outcome of {self._pending[0]}")
        if effect is Effect.menu_digit and not isinstance(outcome.payload, str):
            raise RoutingStateError("a digit outcome carries the key pressed as its payload")
        self._now = now
        self._pending = None
        menu, self._menu = self._menu, None
        queue, self._queue = self._queue, None
        if menu is not None and effect is Effect.menu_digit:
            self._menu_digit(menu, outcome.payload)
            return
        self._mark(outcome.kind.value)
        if effect is Effect.connect:
            self._terminal = Connected(outcome.answered_by)
            self._connected_in = self._owner
        elif effect is Effect.callback:
            self._terminal = CallbackRequested()
        elif menu is not None and effect is Effect.menu_retry:
            self._menu_retry(menu, "no_input")
        elif queue is not None and effect is Effect.overflow:
            self._branch_into(queue.overflow, None, self._owner)
        elif effect is Effect.abandon:
            self._terminal = Abandoned()
        elif effect is Effect.next_wave:
            self._next_wave()
        elif effect is Effect.http_route:
            self._route_reply(outcome.payload)
        elif effect is Effect.fallback:
            # The resolver names why the back office failed (a timeout, an unsafe URL...).
            self._fallback(outcome.payload if isinstance(outcome.payload, str) else None)

    def describe(self) -> str:
        """The path for the journal: ``Main: working → ring Office (20s) [no_answer] → …``."""
        return " → ".join(str(h) for h in self.path)

    # --- walking ---------------------------------------------------------------------------------
    def _hop(self, text: str) -> None:
        self.path.append(Hop(self._scheme.name, text))

    def _mark(self, outcome: str) -> None:
        if self.path:
            self.path[-1] = replace(self.path[-1], outcome=outcome)

    def _enter(self, scheme: Scheme) -> None:
        self._scheme = scheme
        branch = self.context.calendar.branch_at(self._now)
        applied, steps = scheme.steps_for(branch)
        text = branch.value if applied is branch else f"{branch.value} (as {applied.value})"
        self._hop(f"{scheme.name}: {text}")
        self._stack = [_Frame(scheme, steps)]

    def branch(self) -> Branch:
        return self.context.calendar.branch_at(self._now)

    def _goto(self, name: str) -> None:
        target = self.context.schemes.get(name)
        self._jumps += 1
        if target is None:
            self._hop(f"go to {name} [no such scheme]")
            return  # carry on with the next step: a missing scheme must not drop the call
        if self._jumps > MAX_GOTO_HOPS:
            self._hop(f"go to {name} [too many jumps]")
            self._stack = []
            return
        self._enter(target)

    def _finish(self) -> None:
        final = self._scheme.final
        self._hop("voicemail" if isinstance(final, VoicemailStep) else "hang up")
        self._terminal = (
            Voicemail(final.greeting, final.notify)
            if isinstance(final, VoicemailStep)
            else Hangup()
        )

    def _advance(self) -> None:
        while self._pending is None and self._terminal is None:
            if not self._stack:
                self._finish()
                return
            frame = self._stack[-1]
            if frame.index >= len(frame.steps):
                self._stack.pop()
                continue
            step = frame.steps[frame.index]
            frame.index += 1
            self._run(step, frame)

    def _run(self, step: Step, frame: _Frame) -> None:
        if isinstance(step, RingStep):
            self._start_ring(step, frame)
        elif isinstance(step, PlayStep):
            self._hop(step.label or f"play {step.prompt}")
            self._pending = (Pending.play, Play(step.prompt))
        elif isinstance(step, VoicemailStep):
            self._hop(step.label or "voicemail")
            self._terminal = Voicemail(step.greeting, step.notify)
        elif isinstance(step, HangupStep):
            self._hop(step.label or "hang up")
            self._terminal = Hangup()
        elif isinstance(step, GotoStep):
            self._hop(step.label or f"go to {step.scheme}")
            self._goto(step.scheme)
        elif isinstance(step, QueueStep):
            self._hop(step.label or f"queue {step.queue}")
            self._queue, self._owner = step, frame.scheme
            self._pending = (Pending.queue, Queue(step.queue, step.timeout, step.label))
        elif isinstance(step, IvrStep):
            self._play_menu(_Menu(step, frame.scheme), None)
        elif isinstance(step, CallerRuleStep):
            self._caller_rule(step, frame)
        else:
            self._start_http(step)

    # --- ring ------------------------------------------------------------------------------------
    def _members(self, step: RingStep) -> list[MemberState]:
        out: dict[str, MemberState] = {}
        missing = MemberState("", Presence.unregistered)
        for t in step.targets:
            if t.kind is TargetKind.group:
                group = self.context.groups.get(t.ref)
                for ext, weight in group.members if group else ():
                    key = f"employee:{ext}"
                    state = self.context.presence.get(key, replace(missing, key=key))
                    out.setdefault(key, replace(state, weight=weight, timeout=t.timeout))
            elif t.kind is TargetKind.employee:
                state = self.context.presence.get(t.key, replace(missing, key=t.key))
                out.setdefault(t.key, replace(state, timeout=t.timeout))
            elif t.kind is TargetKind.manager:  # the caller's own, if they have one
                own = self.context.managers.get(t.ref)
                if own is not None:
                    key = f"employee:{own}"
                    state = self.context.presence.get(key, replace(missing, key=key))
                    out.setdefault(key, replace(state, timeout=t.timeout))
            else:  # external numbers and SIP URIs: we cannot see their state, so try them
                out.setdefault(t.key, MemberState(t.key, timeout=t.timeout))
        return list(out.values())

    def _strategy(self, step: RingStep) -> Strategy:
        if step.strategy is not None:
            return step.strategy
        if len(step.targets) == 1 and step.targets[0].kind is TargetKind.group:
            group = self.context.groups.get(step.targets[0].ref)
            if group is not None:
                return group.strategy
        return Strategy.all_at_once

    def _start_ring(self, step: RingStep, frame: _Frame) -> None:
        self._hop(_ring_text(step))
        self._owner = frame.scheme
        strategy = self._strategy(step)
        only = step.targets[0]
        # Round-robin turns: a lone group's are the group's, so its members take turns whichever
        # step or scheme rings it (a group is the unit that shares the calls out); a list of
        # targets keeps its own, per scheme and list.
        memory_key = (
            f"group:{only.ref}"
            if len(step.targets) == 1 and only.kind is TargetKind.group
            else f"ring:{frame.scheme.name}:" + ",".join(t.key for t in step.targets)
        )
        members = self._members(step)
        ring_timeout = step.timeout or RingStep.DEFAULT_TIMEOUT
        if strategy is Strategy.all_at_once:
            members, ring_timeout = _together(members, step)
        result = plan(
            members,
            strategy,
            rng=self._rng,
            ring_timeout=ring_timeout,
            member_timeout=step.target_timeout,
            pointer=self.memory.get(memory_key, self.context.memory.get(memory_key, 0)),
        )
        if strategy is Strategy.round_robin and result.waves:
            self.memory[memory_key] = result.pointer
        if not result.waves:
            self._mark("nobody available")
            return
        sequential = strategy is not Strategy.all_at_once
        self._ring_deadline = (
            self._now + timedelta(seconds=step.timeout) if sequential and step.timeout else None
        )
        self._waves = list(result.waves)
        self._confirm, self._announce = step.confirm, step.announce
        self._next_wave()

    def _next_wave(self) -> None:
        while self._waves:
            wave = self._waves.pop(0)
            timeout = wave.timeout
            if self._ring_deadline is not None:
                timeout = min(timeout, (self._ring_deadline - self._now).total_seconds())
                if timeout <= 0:
                    break
            dials = tuple(self._dial(m, timeout) for m in wave.members)
            # The step lasts until its longest-ringing target is done (the wave's timeout caps
            # them all); the others stop at their own time (calls' RingTarget.ring_seconds).
            ring = Ring(dials, max(d.timeout for d in dials), self._confirm, self._announce)
            self._pending = (Pending.ring, ring)
            return
        self._waves = []
        self._ring_deadline = None

    @staticmethod
    def _dial(m: MemberState, wave_timeout: float) -> Dial:
        kind, ref = m.key.split(":", 1)
        # A member keeps its own timeout, within its wave's: alone in the wave, its timeout
        # shaped the wave already (and a step cap may have cut it); rung all at once with
        # others, each stops at its own time.
        timeout = wave_timeout if m.timeout is None else min(m.timeout, wave_timeout)
        return Dial(TargetKind(kind), ref, timeout)

    # --- menus ----------------------------------------------------------------------------------
    def _play_menu(self, menu: _Menu, retry: RetryReason | None) -> None:
        step = menu.step
        self._hop(_menu_text(menu))
        self._menu, self._owner = menu, menu.owner
        digits = frozenset(o.digit for o in step.options)
        action = Ivr(
            step.prompt,
            digits,
            step.timeout,
            menu.attempt,
            retry,
            step.invalid_prompt,
            step.label,
        )
        self._pending = (Pending.ivr, action)

    def _menu_digit(self, menu: _Menu, digit: str) -> None:
        self.path[-1] = replace(self.path[-1], text=f"{_menu_text(menu)} → {digit}")
        option: IvrOption | None = next((o for o in menu.step.options if o.digit == digit), None)
        if option is None:
            self._mark("invalid")
            self._menu_retry(menu, "invalid")
        else:
            self._branch_into(option.steps, option.scheme, menu.owner)

    def _menu_retry(self, menu: _Menu, why: RetryReason) -> None:
        if menu.attempt < menu.step.retries:
            self._play_menu(replace(menu, attempt=menu.attempt + 1), why)
            return
        # Retries spent: the default steps, then whatever follows the menu.
        self._hop(f"menu {menu.step.label or menu.step.prompt}: default")
        self._branch_into(menu.step.default, None, menu.owner)

    # --- caller rules and HTTP routes ------------------------------------------------------------
    def _caller_rule(self, step: CallerRuleStep, frame: _Frame) -> None:
        tags = self.context.tags
        for rule in step.rules:
            hit = sorted(rule.tags & tags)
            if hit:
                self._hop(f"{step.label or 'caller rule'}: {', '.join(hit)}")
                self._branch_into(rule.steps, rule.scheme, frame.scheme)
                return
        self._hop(f"{step.label or 'caller rule'}: default")
        self._branch_into(step.default_steps, step.default_scheme, frame.scheme)

    def _branch_into(self, steps: tuple[Step, ...], scheme: str | None, owner: Scheme) -> None:
        if scheme is not None:
            self._goto(scheme)
        elif steps:
            self._stack.append(_Frame(owner, steps))

    def _start_http(self, step: HttpRouteStep) -> None:
        self._hop(step.label or "ask back office")
        self._http = step
        payload = {
            "call_id": self.context.call_id,
            "caller": self.context.caller,
            "called": self.context.called,
            "scheme": self._scheme.name,
            "branch": self.branch().value,
            "known": self.context.caller_known,
            "tags": sorted(self.context.caller_tags),
        }
        self._pending = (Pending.http, HttpRequest(step.url, payload, step.timeout))

    def _fallback(self, why: str | None = None) -> None:
        if why is not None:
            self._mark(why)
        step = self._http
        if step is not None and step.fallback:
            self._stack.append(_Frame(self._scheme, step.fallback))

    def _route_reply(self, payload: Any) -> None:
        """Reply shapes: ``{"scheme": name}``, ``{"employee"|"group"|"number"|"sip": ref,
        "timeout"?: s}``, ``{"action": "hangup"|"voicemail"|"continue"}``; anything else, or a
        name the account does not have, runs the fallback."""
        if not isinstance(payload, Mapping):
            self._fallback("unusable reply")
            return
        if set(payload) == {"scheme"}:
            name = payload["scheme"]
            if not isinstance(name, str) or name not in self.context.schemes:
                self._fallback("unknown scheme in reply")
                return
            self._mark(f"go to {name}")
            self._goto(name)
            return
        if set(payload) == {"action"}:
            action = payload["action"]
            steps: dict[str, tuple[Step, ...]] = {
                "hangup": (HangupStep(),),
                "voicemail": (VoicemailStep(),),
                "continue": (),
            }
            if action not in steps:
                self._fallback("unusable reply")
                return
            self._mark(f"reply: {action}")
            if steps[action]:
                self._stack.append(_Frame(self._scheme, steps[action]))
            return
        try:
            target: Target = target_from_dict(payload, "reply")
        except SchemeInvalid:
            self._fallback("unusable reply")
            return
        if target.kind is TargetKind.group and target.ref not in self.context.groups:
            self._fallback("unknown group in reply")
            return
        self._mark(f"reply: {target.kind.value} {target.ref}")
        ring = RingStep((replace(target, timeout=None),), timeout=target.timeout)
        self._stack.append(_Frame(self._scheme, (ring,)))
