"""Supervisor and agent actions over the live ACD: the live view, agent statuses, moving a
waiting caller, intercepting one, listening to an answered call, and time-in-status reports.

The runtime (:class:`~zvonar.acd.runtime.AcdRuntime`) is passed in per call: it exists only in a
process that runs the PBX. Every action is scoped to the principal's account, whose dispatcher
knows only its own callers and agents, so another account's call or agent is simply not found.
Listening needs the B2BUA rather than the ACD (any answered call may be listened to, queued or
not): the PBX's B2BUA and a way to find an employee's registered phones are passed in.

Who may do what: reading the live view and reports needs ``acd.read``; acting on calls and other
people's statuses needs :data:`SUPERVISE_PERM`; an agent may set and read their own status. An
agent is "yourself" when your user's email is the employee's email in the same account (users
and employees have no other link yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from zvonar.accounts.access import Perm, Principal
from zvonar.accounts.zone import span_on_clock
from zvonar.acd.agents import BUSY, TABLE, Agent, AgentConfig, Input, Status
from zvonar.acd.dispatcher import CallBeingOffered
from zvonar.acd.live_view import QueueView, wall
from zvonar.acd.models import AgentStatusInterval
from zvonar.acd.runtime import AcdRuntime
from zvonar.calls.b2bua import B2bua
from zvonar.calls.handoff import agent_is_caller
from zvonar.calls.listen import ListenRefused, Refusal, watched
from zvonar.calls.park import ParkedCall
from zvonar.calls.plan import QueueWithdraw, RingTarget
from zvonar.calls.transfer import TransferRefusal, TransferRefused
from zvonar.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unavailable
from zvonar.directory.models import Employee
from zvonar.directory.service import DirectoryService
from zvonar.store.db import Database

if TYPE_CHECKING:  # the runtime's per-account state; read here, changed only through it
    from zvonar.acd.session import Account, Session

__all__ = [
    "CHOOSABLE",
    "READ_PERM",
    "SUPERVISE_PERM",
    "AcdUnavailable",
    "AgentState",
    "CallPlace",
    "Interval",
    "Listening",
    "PhonesOf",
    "StatusReport",
    "Supervisor",
]

READ_PERM = Perm.acd_read
# Closest existing permission until an ``acd.supervise`` one exists (see the slice report).
SUPERVISE_PERM = Perm.acd_read

#: Statuses a person may choose, by their API names (``break`` is ``Status.on_break``).
CHOOSABLE: dict[str, Status] = {
    s.value: s for s in (Status.online, Status.offline, Status.dnd, Status.on_break, Status.away)
}
MAX_INTERVALS = 5000
MAX_REPORT_DAYS = 92

# A supervisor taking a call is no queue agent: no wrap-up, never set away for missing one.
_DIRECT_AGENT = AgentConfig(wrapup_seconds=0.0, max_no_answers=0)


class AcdUnavailable(Unavailable):
    """This process runs no PBX, so there is no live ACD to look at or act on."""

    code = "acd_unavailable"


@dataclass(frozen=True)
class AgentState:
    employee_id: uuid.UUID
    status: str  # what they are now (ringing, on_call... included)
    presence: str  # what they chose; applies once a call is over when ``deferred``
    reason: str | None
    since: datetime
    call_id: str | None
    deferred: bool


@dataclass(frozen=True)
class Interval:
    status: str
    reason: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class StatusReport:
    employee_id: uuid.UUID
    since: datetime
    until: datetime
    totals: dict[str, float]
    intervals: list[Interval]
    truncated: bool


@dataclass(frozen=True)
class CallPlace:
    """Where a waiting caller is after an action."""

    call_id: str
    queue: str
    position: int | None  # None while their offer rings
    offered_to: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class Listening:
    """A listen request under way: ``phones`` of ``employee_id`` ring; whoever answers hears
    ``call_id``. ``listener_id`` is the listening call's own id (it is not journaled)."""

    call_id: str
    listener_id: str
    employee_id: uuid.UUID
    phones: int


PhonesOf = Callable[[uuid.UUID, uuid.UUID], Awaitable[tuple[RingTarget, ...]]]
"""``(account, employee)`` → the employee's registered phones, as ring targets."""


class Supervisor:
    def __init__(self, db: Database, directory: DirectoryService) -> None:
        self.db = db
        # Whose employee a user is, and do not disturb chosen as the agent status, which is
        # the employee's own (routing reads it too): the directory keeps both.
        self.directory = directory

    # --- reads ----------------------------------------------------------------------------------

    async def live(self, p: Principal, runtime: AcdRuntime) -> list[QueueView]:
        p.require(READ_PERM)
        return await runtime.view(p.account_id)

    def parked(self, p: Principal, b2bua: B2bua) -> list[ParkedCall]:
        """The account's parked calls (calls/park.py), by slot."""
        p.require(READ_PERM)
        return b2bua.parked(p.account_id)

    async def status_intervals(
        self,
        p: Principal,
        employee_id: uuid.UUID,
        since: date | datetime,
        until: date | datetime,
    ) -> StatusReport:
        """Stored intervals overlapping ``[since, until)``, clipped to it, and totals per status
        (days on the account's clock, ``until``'s included)."""
        since, until = await span_on_clock(self.db, p.account_id, since, until)
        if until <= since:
            raise InvalidInput("until must be after since")
        if (until - since).days > MAX_REPORT_DAYS:
            raise InvalidInput(f"a report covers at most {MAX_REPORT_DAYS} days")
        await self._employee(p, employee_id)
        await self._allowed(p, employee_id, READ_PERM)
        async with self.db.read() as s:
            rows = (
                await s.scalars(
                    select(AgentStatusInterval)
                    .where(
                        AgentStatusInterval.account_id == p.account_id,
                        AgentStatusInterval.agent_id == employee_id,
                        AgentStatusInterval.start < until,
                        AgentStatusInterval.end > since,
                    )
                    .order_by(AgentStatusInterval.start, AgentStatusInterval.id)
                )
            ).all()
            # Totals as AcdService.time_in_status computes them, over every row in the window.
            totals: dict[str, float] = {}
            for r in rows:
                seconds = (min(r.end, until) - max(r.start, since)).total_seconds()
                totals[r.status] = totals.get(r.status, 0.0) + seconds
        intervals = [
            Interval(r.status, r.reason, max(r.start, since), min(r.end, until))
            for r in rows[:MAX_INTERVALS]
        ]
        return StatusReport(
            employee_id, since, until, totals, intervals, truncated=len(rows) > MAX_INTERVALS
        )

    # --- agent statuses -------------------------------------------------------------------------

    async def get_status(
        self, p: Principal, runtime: AcdRuntime | None, employee_id: uuid.UUID
    ) -> AgentState:
        await self._employee(p, employee_id)
        await self._allowed(p, employee_id, READ_PERM)
        runtime = _running(runtime)
        acct = await _account(runtime, p)
        runtime.refresh_devices(acct)  # "unreachable" as of now, not as of the last call
        return _state(employee_id, _agent(acct, employee_id))

    async def set_status(
        self,
        p: Principal,
        runtime: AcdRuntime | None,
        employee_id: uuid.UUID,
        status: str,
        reason: str | None,
    ) -> AgentState:
        chosen = CHOOSABLE.get(status)
        if chosen is None:
            raise InvalidInput(f"status must be one of {', '.join(CHOOSABLE)}", code="bad_status")
        if chosen is Status.on_break and not reason:
            raise InvalidInput("a break needs a reason", code="reason_required")
        await self._employee(p, employee_id)
        await self._allowed(p, employee_id, SUPERVISE_PERM)
        runtime = _running(runtime)
        acct = await _account(runtime, p)
        agent_id = str(employee_id)
        agent = _agent(acct, employee_id)
        if (agent.status, Input.supervisor_set) not in TABLE:
            raise Conflict(
                f"an agent who is {agent.status.value} cannot change status now",
                code="status_refused",
                status=agent.status.value,
            )
        was_dnd = agent.presence is Status.dnd
        await runtime.set_status(p.account_id, agent_id, chosen, reason)
        if was_dnd != (chosen is Status.dnd):
            # Routing follows: their phones stop (or start) ringing for every call, not only
            # for the queues'. Whoever may set the status may set this: checked above.
            await self.directory.set_dnd(
                p.account_id, chosen is Status.dnd, employee_id=employee_id
            )
        return _state(employee_id, acct.dispatcher.agents[agent_id])

    # --- calls ----------------------------------------------------------------------------------

    async def move(self, p: Principal, runtime: AcdRuntime, call_id: str, queue: str) -> CallPlace:
        """Move a waiting caller to ``queue``; their wait keeps counting from when they joined."""
        p.require(SUPERVISE_PERM)
        acct = await _account(runtime, p)
        session = _session(acct, call_id)
        source = session.queue
        acct.dispatcher.move(call_id, queue, runtime.now())
        session.queue = queue
        definition = acct.defs.get(queue)
        for member in definition.members if definition else ():
            # As when a caller joins: the new queue's agents exist and their phones are checked.
            agent_id = acct.agent_ids.get(member.extension)
            if agent_id is not None:
                runtime.ensure_agent(acct, agent_id, bool(session.targets(agent_id)))
        runtime.changed(acct, source, call_id, "moved_out")
        runtime.changed(acct, queue, call_id, "moved_in")
        runtime.pump(acct)
        return _place(acct, call_id)

    async def intercept(
        self,
        p: Principal,
        runtime: AcdRuntime,
        call_id: str,
        employee_id: uuid.UUID | None,
    ) -> CallPlace:
        """Ring ``employee_id`` (default: yourself) for the waiting caller right away.

        A caller whose offer is ringing agents is taken from them first: the call stops
        ringing that offer (the agents are not counted as missing it) and then rings the
        taker; should an agent answer in that instant, the answer stands."""
        p.require(SUPERVISE_PERM)
        acct = await _account(runtime, p)
        session = _session(acct, call_id)
        employee_id = await self._taker(p, employee_id, "take the call")
        agent_id = str(employee_id)
        if not session.targets(agent_id):
            raise Conflict(
                f"employee {employee_id} has no registered phone", code="agent_unreachable"
            )
        runtime.ensure_agent(acct, agent_id, True)
        d = acct.dispatcher

        def offer() -> None:
            d.direct_offer(call_id, agent_id, runtime.now(), _DIRECT_AGENT)
            runtime.pump(acct)  # the runtime's normal offer path rings their phones

        ringing = d.offer_of(call_id)
        if not ringing:
            offer()
            return _place(acct, call_id)
        if session.callback or not session.offers:
            raise CallBeingOffered(f"call {call_id} is being called back; it cannot be taken now")
        if agent_id in ringing:
            raise CallBeingOffered(f"call {call_id} already rings {employee_id}")
        d.direct_taker(agent_id, runtime.now(), _DIRECT_AGENT)
        session.take_over = offer
        for number in list(session.offers):
            session.signal(QueueWithdraw(number))
        return _place(acct, call_id)

    async def listen(
        self,
        p: Principal,
        b2bua: B2bua,
        phones: PhonesOf,
        call_id: str,
        employee_id: uuid.UUID | None,
    ) -> Listening:
        """Ring ``employee_id``'s phones (default: yours); whoever answers hears the answered
        call ``call_id`` silently, until the call or they hang up (see calls/listen.py)."""
        p.require(SUPERVISE_PERM)
        _listenable(b2bua, p, call_id)  # before any database read: 404/409 come first
        employee_id = await self._taker(p, employee_id, "listen")
        targets = await phones(p.account_id, employee_id)
        if not targets:
            raise Conflict(
                f"employee {employee_id} has no registered phone", code="agent_unreachable"
            )
        try:  # checked again: the call may have ended while we read the database
            listener = await b2bua.listen(p.account_id, call_id, targets)
        except ListenRefused as exc:
            raise _refusal(exc) from None
        return Listening(call_id, listener.call_id, employee_id, len(targets))

    async def transfer(self, p: Principal, b2bua: B2bua, call_id: str, to: str) -> None:
        """Blind-transfer the answered call ``call_id`` to ``to`` (an extension or a number,
        routed as the account's own call): the agent on it (yourself, or anybody's as a
        supervisor) is hung up once ``to`` rings, and rung back if nobody answers."""
        call = b2bua.calls.get(call_id)
        if call is None or call.account_id != p.account_id:  # 404 before anything else
            raise NotFound("no such call in progress")
        if not p.can(SUPERVISE_PERM):
            own = await self.directory.own_employee(p)
            winner, auth = call.winner, call.facts.auth
            agent = winner.target.target.target_id if winner is not None else None
            if agent_is_caller(call):  # who dialled out: their phone's digest user
                user = auth.user if auth is not None else None
                mine = (
                    own is not None
                    and user is not None
                    and await self._sip_username(p, own) == user
                )
            else:
                mine = agent is not None and own == agent
            if not mine:
                raise PermissionDenied(
                    f"role {p.role.value!r} may only transfer a call it is talking on"
                )
        try:
            await b2bua.transfer(p.account_id, call_id, to)
        except TransferRefused as exc:
            raise _transfer_refusal(exc) from None

    # --- internals ------------------------------------------------------------------------------

    async def _taker(self, p: Principal, employee_id: uuid.UUID | None, what: str) -> uuid.UUID:
        """The employee named, checked to be in the account, or the principal's own."""
        if employee_id is not None:
            await self._employee(p, employee_id)
            return employee_id
        own = await self.directory.own_employee(p)
        if own is None:
            raise InvalidInput(
                f"name the employee to {what} (your user is no employee)",
                code="employee_required",
            )
        return own

    async def _employee(self, p: Principal, employee_id: uuid.UUID) -> None:
        async with self.db.read() as s:
            found = await s.scalar(
                select(Employee.id).where(
                    Employee.id == employee_id, Employee.account_id == p.account_id
                )
            )
        if found is None:
            raise NotFound("employee not found")

    async def _allowed(self, p: Principal, employee_id: uuid.UUID, perm: Perm) -> None:
        if p.can(perm) or await self.directory.own_employee(p) == employee_id:
            return
        raise PermissionDenied(f"role {p.role.value!r} may only act on its own agent status")

    async def _sip_username(self, p: Principal, employee_id: uuid.UUID) -> str | None:
        async with self.db.read() as s:
            return await s.scalar(
                select(Employee.sip_username).where(
                    Employee.id == employee_id, Employee.account_id == p.account_id
                )
            )


def _listenable(b2bua: B2bua, p: Principal, call_id: str) -> None:
    try:
        watched(b2bua, p.account_id, call_id)
    except ListenRefused as exc:
        raise _refusal(exc) from None


def _refusal(exc: ListenRefused) -> NotFound | Conflict:
    if exc.reason is Refusal.unknown_call:
        return NotFound("no such call in progress")
    return Conflict("the call is not answered yet", code="call_not_answered")


def _transfer_refusal(exc: TransferRefused) -> NotFound | Conflict | InvalidInput:
    if exc.reason is TransferRefusal.unknown_call:
        return NotFound("no such call in progress")
    if exc.reason is TransferRefusal.not_answered:
        return Conflict("the call is not answered", code="call_not_answered")
    if exc.reason is TransferRefusal.in_progress:
        return Conflict("the call is being transferred already", code="transfer_in_progress")
    return InvalidInput(str(exc), code="transfer_target_unknown")


def _running(runtime: AcdRuntime | None) -> AcdRuntime:
    if runtime is None:
        raise AcdUnavailable("the live ACD runs with the PBX, and this process runs none")
    return runtime


def _agent(acct: Account, employee_id: uuid.UUID) -> Agent:
    agent = acct.dispatcher.agents.get(str(employee_id))
    if agent is None:
        raise NotFound("the employee is in no queue", code="agent_not_found")
    return agent


async def _account(runtime: AcdRuntime, p: Principal) -> Account:
    acct = runtime.accounts.get(p.account_id)
    if acct is None or acct.stale:
        await runtime.view(p.account_id)  # loads (or reloads) the account's queues
        acct = runtime.accounts[p.account_id]
    return acct


def _session(acct: Account, call_id: str) -> Session:
    session = acct.sessions.get(call_id)
    if session is None or call_id not in acct.dispatcher.queues.get(session.queue, ()):
        raise NotFound("no such call waits in a queue")
    return session


def _place(acct: Account, call_id: str) -> CallPlace:
    d = acct.dispatcher
    session = acct.sessions.get(call_id)
    queue = session.queue if session is not None else ""
    position = None
    q = d.queues.get(queue)
    if q is not None and call_id in q:
        position = q.position(call_id)
    offered = tuple(sorted(uuid.UUID(a) for a in d.offer_of(call_id)))
    return CallPlace(call_id, queue, position, offered)


def _state(employee_id: uuid.UUID, agent: Agent) -> AgentState:
    return AgentState(
        employee_id=employee_id,
        status=agent.status.value,
        presence=agent.presence.value,
        reason=agent.reason if agent.status is agent.presence else agent.presence_reason,
        since=wall(agent.since),
        call_id=agent.call_id,
        deferred=agent.status in BUSY,  # a presence change waits for the call to end
    )
