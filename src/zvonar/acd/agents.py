"""The agent state machine: a transition table over enums, sans-IO.

``Agent.handle(input, now)`` looks ``(status, input.kind)`` up in :data:`TABLE`, applies the row's
effects in order, moves to the row's target and returns the events it produced. A pair missing
from the table is a protocol error: it is reported as an :class:`AgentProtocolError` event and
the agent is left untouched — the machine never raises out, so one bad input from the network
cannot take a contact center down.

Two notions are kept apart on purpose:

* the *presence* the agent (or a supervisor) chose — online, offline, DND, break, away — and
* the *status* the agent is in, which also reflects calls (ringing, on call, after-call work) and
  devices (``unreachable``: the agent wants calls but no device is registered).

Presence changes that arrive while the agent is ringing or on a call are remembered and take
effect when the call is over; a call is never cut by a status click. Every status change closes
the running interval and opens a new one; the closed one comes out as a :class:`StatusInterval`
so time-in-status and work time can be reported exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

AgentId = str
CallId = str


class Status(enum.StrEnum):
    offline = "offline"
    online = "online"
    dnd = "dnd"
    on_break = "break"
    away = "away"
    unreachable = "unreachable"
    ringing = "ringing"  # reserved: one call offered, waiting for answer or no-answer
    on_call = "on_call"
    wrap_up = "wrap_up"  # after-call work


#: Statuses an agent or a supervisor may choose; the others follow from calls and devices.
PRESENCES = frozenset({Status.offline, Status.online, Status.dnd, Status.on_break, Status.away})
BUSY = frozenset({Status.ringing, Status.on_call})


class Input(enum.StrEnum):
    set_online = "set_online"
    set_offline = "set_offline"
    set_dnd = "set_dnd"
    set_break = "set_break"
    offered = "offered"
    answered = "answered"
    call_ended = "call_ended"
    wrapup_elapsed = "wrapup_elapsed"
    no_answer = "no_answer"
    devices_registered = "devices_registered"
    devices_unregistered = "devices_unregistered"
    supervisor_set = "supervisor_set"


@dataclass(frozen=True, slots=True)
class AgentInput:
    kind: Input
    reason: str | None = None
    status: Status | None = None
    call_id: CallId | None = None


def set_online() -> AgentInput:
    return AgentInput(Input.set_online)


def set_offline() -> AgentInput:
    return AgentInput(Input.set_offline)


def set_dnd() -> AgentInput:
    return AgentInput(Input.set_dnd)


def set_break(reason: str) -> AgentInput:
    return AgentInput(Input.set_break, reason=reason)


def supervisor_set(status: Status, reason: str | None = None) -> AgentInput:
    return AgentInput(Input.supervisor_set, status=status, reason=reason)


def offered(call_id: CallId) -> AgentInput:
    return AgentInput(Input.offered, call_id=call_id)


def answered(call_id: CallId) -> AgentInput:
    return AgentInput(Input.answered, call_id=call_id)


def call_ended(call_id: CallId | None = None) -> AgentInput:
    return AgentInput(Input.call_ended, call_id=call_id)


def no_answer(call_id: CallId | None = None) -> AgentInput:
    return AgentInput(Input.no_answer, call_id=call_id)


_CALL_INPUTS = frozenset({Input.offered, Input.answered, Input.no_answer, Input.call_ended})
WRAPUP_ELAPSED = AgentInput(Input.wrapup_elapsed)
DEVICES_REGISTERED = AgentInput(Input.devices_registered)
DEVICES_UNREGISTERED = AgentInput(Input.devices_unregistered)


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusInterval:
    """A closed interval ``[start, end)`` the agent spent in ``status``; stored for reports."""

    agent_id: AgentId
    status: Status
    reason: str | None
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Live feed for supervisors; the matching interval is the one that just closed."""

    agent_id: AgentId
    old: Status
    new: Status
    reason: str | None
    at: float


@dataclass(frozen=True, slots=True)
class SupervisorAlert:
    agent_id: AgentId
    reason: str
    no_answers: int
    at: float


@dataclass(frozen=True, slots=True)
class AgentProtocolError:
    """An input the table has no row for (or with missing data); the agent did not change."""

    agent_id: AgentId
    status: Status
    input: Input
    detail: str
    at: float


AgentEvent = StatusInterval | StatusChanged | SupervisorAlert | AgentProtocolError


# --- the table ----------------------------------------------------------------------------------


class Effect(enum.Enum):
    choose = enum.auto()  # remember the presence the input asks for
    reset_no_answers = enum.auto()
    register = enum.auto()
    unregister = enum.auto()
    reserve = enum.auto()  # hold the offered call id
    connect = enum.auto()  # a call was answered: count it, clear the no-answer streak
    cancel = enum.auto()  # the offered call went away without a verdict on the agent
    count_no_answer = enum.auto()
    release = enum.auto()  # the call ended: remember when (least-recent strategy)


class Target(enum.Enum):
    """Where a row leads. Most are computed, because the destination depends on data."""

    same = enum.auto()
    presence = enum.auto()  # the chosen presence, unless it is online and no device is registered
    after_call = enum.auto()  # wrap-up if configured, else presence
    after_no_answer = enum.auto()  # away (and alert) on the N-th consecutive no-answer
    ringing = enum.auto()
    on_call = enum.auto()


Row = tuple[tuple[Effect, ...], Target]

_IDLE = (
    Status.offline,
    Status.online,
    Status.dnd,
    Status.on_break,
    Status.away,
    Status.unreachable,
)
_CHOOSE: Row = ((Effect.choose,), Target.presence)
_CHOOSE_ONLINE: Row = ((Effect.choose, Effect.reset_no_answers), Target.presence)
_DEFER: Row = ((Effect.choose,), Target.same)
_DEFER_ONLINE: Row = ((Effect.choose, Effect.reset_no_answers), Target.same)
_PRESENCE_INPUTS = (Input.set_offline, Input.set_dnd, Input.set_break, Input.supervisor_set)


def _build_table() -> dict[tuple[Status, Input], Row]:
    t: dict[tuple[Status, Input], Row] = {}
    for s in (*_IDLE, Status.wrap_up):
        # Idle and after-call work: a presence change applies at once (an agent may cut their
        # own wrap-up short by going online).
        t[s, Input.set_online] = _CHOOSE_ONLINE
        for i in _PRESENCE_INPUTS:
            t[s, i] = _CHOOSE
        t[s, Input.devices_registered] = ((Effect.register,), Target.presence)
        t[s, Input.devices_unregistered] = ((Effect.unregister,), Target.presence)
    for s in BUSY:
        # Ringing or talking: remember the choice, apply it when the call is over.
        t[s, Input.set_online] = _DEFER_ONLINE
        for i in _PRESENCE_INPUTS:
            t[s, i] = _DEFER
        t[s, Input.devices_registered] = ((Effect.register,), Target.same)
        t[s, Input.devices_unregistered] = ((Effect.unregister,), Target.same)
    # Wrap-up ends by its timer; the presence resolution keeps it from becoming "online" if
    # the devices went away meanwhile.
    t[Status.wrap_up, Input.devices_registered] = ((Effect.register,), Target.same)
    t[Status.wrap_up, Input.devices_unregistered] = ((Effect.unregister,), Target.same)
    t[Status.wrap_up, Input.wrapup_elapsed] = ((), Target.presence)
    # Offers: only an online agent, or one in wrap-up for a queue that does not respect it.
    t[Status.online, Input.offered] = ((Effect.reserve,), Target.ringing)
    t[Status.wrap_up, Input.offered] = ((Effect.reserve,), Target.ringing)
    # A direct (non-queue) call answered on the agent's device makes them "on call" too.
    for s in (Status.online, Status.dnd, Status.on_break, Status.away, Status.wrap_up):
        t[s, Input.answered] = ((Effect.connect,), Target.on_call)
    t[Status.ringing, Input.answered] = ((Effect.connect,), Target.on_call)
    t[Status.ringing, Input.no_answer] = ((Effect.count_no_answer,), Target.after_no_answer)
    t[Status.ringing, Input.call_ended] = ((Effect.cancel,), Target.presence)
    t[Status.on_call, Input.call_ended] = ((Effect.release,), Target.after_call)
    return t


TABLE: dict[tuple[Status, Input], Row] = _build_table()


@dataclass(frozen=True, slots=True)
class AgentConfig:
    wrapup_seconds: float = 0.0
    max_no_answers: int = 3  # 0 disables the away rule
    ring_timeout: float | None = None  # None: the orchestrator reports no-answer itself


class Agent:
    """One agent's status; feed inputs with ``handle``, arm a timer at ``next_deadline``."""

    def __init__(
        self,
        agent_id: AgentId,
        now: float,
        config: AgentConfig | None = None,
        *,
        registered: bool = False,
    ) -> None:
        self.id = agent_id
        self.config = config or AgentConfig()
        self.registered = registered
        self.presence = Status.offline
        self.presence_reason: str | None = None
        self.status = Status.offline
        self.reason: str | None = None
        self.since = now
        self.call_id: CallId | None = None
        self.offered_at: float | None = None
        self.connected_at: float | None = None
        self.wrapup_until: float | None = None
        self.no_answers = 0
        self.calls_taken = 0
        self.last_call_end = float("-inf")

    def __repr__(self) -> str:
        return f"Agent({self.id!r}, {self.status.value}, call={self.call_id!r})"

    def available(self, now: float) -> bool:
        """Free to be offered a queue call (wrap-up and every non-online status excluded)."""
        return self.status is Status.online

    def open_interval(self, now: float) -> StatusInterval:
        """The running interval cut at ``now`` (for live reports; not an event)."""
        return StatusInterval(self.id, self.status, self.reason, self.since, now)

    def next_deadline(self) -> float | None:
        if self.status is Status.wrap_up:
            return self.wrapup_until
        if self.status is Status.ringing and self.config.ring_timeout is not None:
            assert self.offered_at is not None  # set by Effect.reserve
            return self.offered_at + self.config.ring_timeout
        return None

    def handle_timer(self, now: float) -> list[AgentEvent]:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        if self.status is Status.wrap_up:
            return self.handle(WRAPUP_ELAPSED, now)
        return self.handle(no_answer(self.call_id), now)

    def handle(self, inp: AgentInput, now: float) -> list[AgentEvent]:
        row = TABLE.get((self.status, inp.kind))
        if row is None:
            return [self._error(inp, now, "no transition")]
        problem = self._check(inp)
        if problem is not None:
            return [self._error(inp, now, problem)]
        effects, target = row
        out: list[AgentEvent] = []
        for effect in effects:
            self._apply(effect, inp, now)
        new, reason = self._resolve(target, now, out)
        if new is not self.status or reason != self.reason:
            self._move(new, reason, now, out)
        return out

    # --- internals ------------------------------------------------------------------------------

    def _error(self, inp: AgentInput, now: float, detail: str) -> AgentProtocolError:
        return AgentProtocolError(self.id, self.status, inp.kind, detail, now)

    def _check(self, inp: AgentInput) -> str | None:
        kind = inp.kind
        if kind in _CALL_INPUTS:
            if kind is Input.offered:
                return None if inp.call_id is not None else "an offer needs a call id"
            mine = self.call_id
            if (
                mine is not None
                and inp.call_id is not None
                and inp.call_id != mine
                and self.status in BUSY
            ):
                return "input for another call"
        elif kind is Input.supervisor_set and inp.status not in PRESENCES:
            return "supervisor may only set a presence status"
        elif kind is Input.set_break and not inp.reason:
            return "a break needs a reason"
        return None

    def _apply(self, effect: Effect, inp: AgentInput, now: float) -> None:
        if effect is Effect.choose:
            self.presence, self.presence_reason = _chosen(inp)
        elif effect is Effect.reset_no_answers:
            self.no_answers = 0
        elif effect is Effect.register:
            self.registered = True
        elif effect is Effect.unregister:
            self.registered = False
        elif effect is Effect.reserve:
            self.call_id = inp.call_id
            self.offered_at = now
        elif effect is Effect.connect:
            self.call_id = inp.call_id if inp.call_id is not None else self.call_id
            self.connected_at = now
            self.offered_at = None
            self.no_answers = 0
            self.calls_taken += 1
        elif effect is Effect.cancel:
            self.call_id = None
            self.offered_at = None
        elif effect is Effect.count_no_answer:
            self.call_id = None
            self.offered_at = None
            self.no_answers += 1
        elif effect is Effect.release:
            self.call_id = None
            self.connected_at = None
            self.last_call_end = now

    def _resolve(
        self, target: Target, now: float, out: list[AgentEvent]
    ) -> tuple[Status, str | None]:
        if target is Target.same:
            return self.status, self.reason
        if target is Target.ringing:
            return Status.ringing, None
        if target is Target.on_call:
            return Status.on_call, None
        if target is Target.after_call and self.config.wrapup_seconds > 0:
            self.wrapup_until = now + self.config.wrapup_seconds
            return Status.wrap_up, None
        if target is Target.after_no_answer:
            limit = self.config.max_no_answers
            if limit and self.no_answers >= limit and self.presence is Status.online:
                self.presence, self.presence_reason = Status.away, "no_answer"
                out.append(SupervisorAlert(self.id, "no_answer", self.no_answers, now))
        self.wrapup_until = None
        if self.presence is Status.online and not self.registered:
            return Status.unreachable, None
        return self.presence, self.presence_reason

    def _move(self, new: Status, reason: str | None, now: float, out: list[AgentEvent]) -> None:
        old = self.status
        if now > self.since:
            # Zero-length intervals (two changes at one instant) carry no time; skip them so
            # stored intervals stay strictly positive, contiguous and non-overlapping.
            out.append(StatusInterval(self.id, old, self.reason, self.since, now))
            self.since = now
        self.status, self.reason = new, reason
        if new is not Status.wrap_up:
            self.wrapup_until = None
        out.append(StatusChanged(self.id, old, new, reason, now))


def _chosen(inp: AgentInput) -> tuple[Status, str | None]:
    if inp.kind is Input.set_online:
        return Status.online, None
    if inp.kind is Input.set_offline:
        return Status.offline, None
    if inp.kind is Input.set_dnd:
        return Status.dnd, None
    if inp.kind is Input.set_break:
        return Status.on_break, inp.reason
    assert inp.status is not None  # checked in Agent._check
    return inp.status, inp.reason
