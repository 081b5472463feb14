"""The live route: a scheme walked step by step while the call is in progress.

The B2BUA asks :meth:`SchemeRoute.next` after every step that did not connect the caller
(``calls.plan.Route``); the route feeds the outcome to the interpreter
(``routing.engine.SchemeRun``) and turns its next action into something the call can do:
a wave of contacts, prompts to play, a menu, a wait in a queue, or the final answer. The
path it records is the one the call really took, and menus and queues branch on what the
caller does.

Outside questions (HTTP route steps, queue sessions) are asked here, never inside the
interpreter; a step that cannot be carried out (a missing prompt, an unknown queue) is
reported to the interpreter as failed or unavailable, so the call moves on instead of ending.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from zvonar.calls.events import Disposition, Target, TargetKind
from zvonar.calls.plan import (
    CallStep,
    Enqueue,
    Menu,
    PlayPrompt,
    QueueSession,
    Rating,
    Reject,
    RingTarget,
    StepResult,
    StepResultKind,
    VoicemailSpec,
    Wave,
)
from zvonar.media.engine import PromptNotFoundError
from zvonar.media.prompts import hold_music_path, prompt_path
from zvonar.routing.engine import (
    Abandoned,
    CallbackRequested,
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

__all__ = ["Expand", "QueueSessions", "RouteSetup", "SchemeRoute", "wave_of"]

log = logging.getLogger(__name__)

Expand = Callable[[Dial], Sequence[RingTarget]]
"""A dial (employee, group member, number, SIP URI) → the contacts to ring for it."""


def wave_of(action: Ring, expand: Expand) -> Wave | None:
    """The wave of contacts a ring action reaches; None when it reaches nobody. A target whose
    own timeout is shorter than the step's rings only that long (``RingTarget.ring_seconds``);
    a contact two targets share is rung once, as long as the longer of the two."""
    targets: dict[str, RingTarget] = {}
    for dial in action.targets:
        own = dial.timeout if dial.timeout < action.timeout else None
        for t in expand(dial):
            seen = targets.get(t.uri)
            if seen is None:
                targets[t.uri] = replace(t, ring_seconds=own)
            elif seen.ring_seconds is not None:
                longer = None if own is None else max(own, seen.ring_seconds)
                targets[t.uri] = replace(seen, ring_seconds=longer)
    if not targets or not action.timeout > 0:
        return None
    return Wave(tuple(targets.values()), action.timeout)


_OUTSIDE = frozenset({TargetKind.mobile, TargetKind.external})  # reached through a carrier

MAX_ACTIONS = 500  # a safety net: goto hops and step counts already bound a run far below

_RESULT_TO_OUTCOME = {
    StepResultKind.no_answer: OutcomeKind.no_answer,
    StepResultKind.busy: OutcomeKind.busy,
    StepResultKind.unavailable: OutcomeKind.unavailable,
    StepResultKind.failed: OutcomeKind.failed,
    StepResultKind.completed: OutcomeKind.completed,
    StepResultKind.digit: OutcomeKind.digit,
    StepResultKind.no_input: OutcomeKind.no_input,
    StepResultKind.overflow: OutcomeKind.no_answer,
    StepResultKind.callback: OutcomeKind.callback,
}


class QueueSessions(Protocol):
    """The ACD runtime as the route needs it (``zvonar.acd.runtime``)."""

    async def open(
        self,
        account_id: uuid.UUID,
        queue: str,
        call_id: str,
        *,
        caller_tags: frozenset[str],
        language: str,
        prompts_dir: Path | None,
        targets: Callable[[str], tuple[RingTarget, ...]],
        caller: str = "",
    ) -> tuple[QueueSession, Path | None] | None:
        """A session for this caller in ``queue`` and the queue's hold music; None when the
        account has no such queue."""
        ...


@dataclass(frozen=True)
class RouteSetup:
    """What a route needs besides the interpreter: the account's language and prompt
    directory, how to expand a dial into contacts, the HTTP route question, the queues."""

    account_id: uuid.UUID
    call_id: str
    language: str
    expand: Expand
    ask: Callable[[HttpRequest], Awaitable[Outcome]]
    agent_targets: Callable[[str], tuple[RingTarget, ...]]
    caller_tags: frozenset[str] = frozenset()
    caller: str = ""  # E.164 when known: a queue callback dials it
    prompts_dir: Path | None = None
    queues: QueueSessions | None = None
    clock: Callable[[], datetime] | None = None
    remember: Callable[[Mapping[str, int]], None] | None = None  # round-robin pointers


class SchemeRoute:
    """``calls.plan.Route`` over one :class:`SchemeRun` (see the module docstring)."""

    def __init__(self, run: SchemeRun, setup: RouteSetup, now: datetime) -> None:
        self.run = run
        self.setup = setup
        self._now = now
        # Without an injected clock the call's time runs on from ``now`` by the monotonic
        # clock: a step's cap and a later branch choice (a go-to after ringing) see the time
        # that passed, never the moment the call arrived.
        self._start, self._t0 = now, time.monotonic()
        self._last: object = None  # the action the call is performing

    # -- calls.plan.Route ------------------------------------------------------------------------

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(str(h) for h in self.run.path)

    @property
    def rating(self) -> Rating | None:
        if not self.run.rating:
            return None
        prompt = self._prompt("rate_call")
        if prompt is None:
            return None
        return Rating(prompt, self._prompt("rate_thanks"))

    def connected(self, by: Target) -> None:
        if isinstance(self._last, Ring | Queue) and not self.run.finished:
            self.run.on_outcome(Outcome(OutcomeKind.answered, answered_by=by.display), self._time())

    async def next(self, result: StepResult | None) -> CallStep:
        run = self.run
        if result is not None and not run.finished and self._last is not None:
            kind = _RESULT_TO_OUTCOME[result.kind]
            run.on_outcome(Outcome(kind, payload=result.digit), self._time())
        for _ in range(MAX_ACTIONS):
            action = run.next_action()
            self._last = action
            step = await self._step(action)
            if step is not None:
                self._keep_memory()
                return step
        log.error("call %s: the route did not settle", self.setup.call_id)
        return Reject(480, "Temporarily Unavailable", account_id=self.setup.account_id)

    # -- actions ---------------------------------------------------------------------------------

    async def _step(self, action: object) -> CallStep | None:
        """The call's next step for ``action``, or None after feeding the interpreter an
        outcome itself (nothing to do for the call: carry on walking)."""
        run, now = self.run, self._time()
        if isinstance(action, Ring):
            wave = wave_of(action, self.setup.expand)
            if wave is None:
                run.on_outcome(Outcome(OutcomeKind.unavailable), now)
                return None
            return self._asking(wave, action) if action.confirm or action.announce else wave
        if isinstance(action, HttpRequest):
            run.on_outcome(await self.setup.ask(action), now)
            return None
        if isinstance(action, Play):
            prompt = self._prompt(action.prompt)
            if prompt is None:
                run.on_outcome(Outcome(OutcomeKind.failed), now)
                return None
            return PlayPrompt((prompt,))
        if isinstance(action, Ivr):
            return self._menu(action)
        if isinstance(action, Queue):
            return await self._queue(action)
        return self._final(action)

    def _asking(self, wave: Wave, action: Ring) -> Wave:
        """``wave`` with what its answering party hears first (calls/accept.py): the step's
        announcement, to everyone; "press 1", to its mobiles and outside numbers only — the
        account's own phones' answer is the employee's."""
        announce = self._prompt(action.announce) if action.announce else None
        confirm = self._prompt("accept_call") if action.confirm else None
        targets = tuple(
            replace(
                t,
                announce=announce,
                accept_prompt=confirm if t.target.kind in _OUTSIDE else None,
            )
            for t in wave.targets
        )
        return replace(wave, targets=targets)

    def _menu(self, action: Ivr) -> Menu | None:
        prompt = self._prompt(action.prompt)
        if prompt is None:
            self.run.on_outcome(Outcome(OutcomeKind.failed), self._time())
            return None
        prompts: tuple[Path, ...] = (prompt,)
        if action.retry == "invalid":
            invalid = self._prompt(action.invalid_prompt or "invalid_choice")
            if invalid is not None:
                prompts = (invalid, prompt)
        return Menu(prompts, action.timeout)

    async def _queue(self, action: Queue) -> Enqueue | None:
        setup, now = self.setup, self._time()
        opened = None
        if setup.queues is not None:
            try:
                opened = await setup.queues.open(
                    setup.account_id,
                    action.queue,
                    setup.call_id,
                    caller_tags=setup.caller_tags,
                    language=setup.language,
                    prompts_dir=setup.prompts_dir,
                    targets=setup.agent_targets,
                    caller=setup.caller,
                )
            except Exception:  # the ACD failing must move the call on, not drop it
                log.exception("call %s: queue %s failed", setup.call_id, action.queue)
        if opened is None:
            self.run.on_outcome(Outcome(OutcomeKind.unavailable), now)
            return None
        session, music = opened
        return Enqueue(session, music or _default_music())

    def _final(self, action: object) -> Reject:
        account_id = self.setup.account_id
        if isinstance(action, Voicemail):
            prompt = self._prompt(action.greeting) or self._prompt("leave_message_after_tone")
            return Reject(
                480,
                "Temporarily Unavailable",
                prompt=prompt,
                account_id=account_id,
                disposition=Disposition.voicemail,
                voicemail=VoicemailSpec(greeting=prompt, notify=tuple(action.notify)),
            )
        if isinstance(action, CallbackRequested):
            return Reject(
                480,
                "Temporarily Unavailable",
                prompt=self._prompt("callback_confirmed"),
                account_id=account_id,
                disposition=Disposition.callback,
            )
        if not isinstance(action, Hangup | Connected | Abandoned):
            log.error("call %s: unknown action %r", self.setup.call_id, action)
        return Reject(480, "Temporarily Unavailable", account_id=account_id)

    # -- helpers ---------------------------------------------------------------------------------

    def _prompt(self, key: str | None) -> Path | None:
        if key is None:
            return None
        try:
            return prompt_path(key, self.setup.language, base_dir=self.setup.prompts_dir)
        except PromptNotFoundError:
            log.warning("call %s: no prompt %r", self.setup.call_id, key)
            return None

    def _time(self) -> datetime:
        clock = self.setup.clock
        if clock is not None:
            self._now = max(self._now, clock())
        else:
            self._now = self._start + timedelta(seconds=time.monotonic() - self._t0)
        return self._now

    def _keep_memory(self) -> None:
        if self.setup.remember is not None and self.run.memory:
            self.setup.remember(self.run.memory)


def _default_music() -> Path | None:
    try:
        return hold_music_path()
    except PromptNotFoundError:
        return None
