"""The callback worker: takes due requests, places them through the B2BUA, records outcomes.

Started by ``start_pbx`` (it needs the running B2BUA and the PBX's resolvers). Every
``poll_interval`` it claims due requests (``CallbackService.claim_due``), and for each:

- side A: for a request about a number, whatever that number's scheme would ring for an
  inbound call from the customer (:func:`first_side`, the HTTP route step included); for a
  group or an employee, the registered phones of its active members, all at once
  (:func:`members_side`);
- side B: the customer through the outbound path (trunk and caller-ID selection, toll-fraud
  guard; :func:`customer_side`), under the call id the call will carry, so the guard's slot
  is released by that call's CallEnded;
- ``B2bua.originate`` and, once the outcome is known, ``record_attempt`` (retries).

Nobody to ring on side A counts as an unanswered attempt (agents); no route to the customer
as a failed one. A cancelled request's call is hung up (the worker listens for the
service's events). On start, requests a dead process left "calling" are pending again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select

from zvonar.accounts.models import Account
from zvonar.callbacks.events import CallbackChanged, CallbackStatus
from zvonar.callbacks.models import CallbackRequest
from zvonar.callbacks.service import CallbackService, Retry
from zvonar.calls.b2bua import B2bua
from zvonar.calls.events import Target, TargetKind
from zvonar.calls.originate import OriginatedCall
from zvonar.calls.origination import Origination, OriginationOutcome
from zvonar.calls.plan import (
    CallerAuth,
    InboundCall,
    Pickup,
    Plan,
    Reject,
    RingTarget,
    StepResult,
    StepResultKind,
    Wave,
)
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.directory.models import Employee, GroupMember, Number
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.sip.location import Binding
from zvonar.sip.ua import Flow, UserAgent
from zvonar.store.base import utcnow
from zvonar.store.db import Database

__all__ = ["CallbackWorker", "customer_side", "first_side", "members_side"]

log = logging.getLogger(__name__)

MAX_ROUTE_WAVES = 16
_NOWHERE = Flow("UDP", "127.0.0.1", 0)  # a callback has no SIP source
Routing = Callable[[InboundCall], Awaitable[Plan | Reject | Pickup]]
Internal = Callable[[InboundCall, uuid.UUID, str], Awaitable[Plan | Reject]]
Outbound = Callable[[InboundCall, Internal], Awaitable[Plan | Reject]]


async def first_side(routing: Routing, call: InboundCall) -> tuple[Wave, ...]:
    """Side A for a number: the waves the PBX's routing would ring for ``call`` (an inbound
    call from the customer to the number). A live route is walked as if every step went
    unanswered, up to its first step that is not a ring (a queue, a prompt, voicemail)."""
    outcome = await routing(call)
    if not isinstance(outcome, Plan):
        return ()
    route = outcome.route
    if route is None:
        return outcome.waves
    waves: list[Wave] = []
    result: StepResult | None = None
    while len(waves) < MAX_ROUTE_WAVES:
        step = await route.next(result)
        if not isinstance(step, Wave):
            break
        waves.append(step)
        result = StepResult(StepResultKind.no_answer)
    return tuple(waves)


async def members_side(
    db: Database,
    credentials: DirectoryCredentialStore,
    bindings: Callable[[str], list[Binding]],
    account_id: uuid.UUID,
    *,
    group_id: uuid.UUID | None = None,
    employee_id: uuid.UUID | None = None,
    ring_seconds: float = 30.0,
) -> tuple[Wave, ...]:
    """Side A for a group or an employee: every registered phone of its active members."""
    stmt = select(Employee).where(Employee.account_id == account_id, Employee.active.is_(True))
    if group_id is not None:
        stmt = stmt.join(GroupMember, GroupMember.employee_id == Employee.id)
        stmt = stmt.where(GroupMember.group_id == group_id).order_by(GroupMember.position)
    else:
        stmt = stmt.where(Employee.id == employee_id)
    async with db.read() as s:
        people = list(await s.scalars(stmt))
    realm = credentials.realm_of(account_id) or ""
    targets = tuple(
        RingTarget.phone(
            b.contact,
            UserAgent.binding_flow(b),
            Target(TargetKind.employee, e.name, e.id),
            f"x{e.extension}",
        )
        for e in people
        for b in bindings(f"sip:{e.sip_username}@{realm}")
    )
    return (Wave(targets, ring_seconds),) if targets else ()


async def _no_internal(_call: InboundCall, _account: uuid.UUID, _realm: str) -> Reject:
    return Reject(404, "Not Found")


async def customer_side(
    outbound: Outbound, account_id: uuid.UUID, call_id: str, phone: str, at: datetime
) -> RingTarget | None:
    """Side B: the outbound path's one target for ``phone`` (trunk, caller ID), or None."""
    call = InboundCall(
        call_id=call_id,
        dialed=phone,
        caller="",
        caller_display=None,
        from_uri="sip:callback@invalid",
        to_uri=f"sip:{phone}@invalid",
        source=_NOWHERE,
        started_at=at,
        auth=CallerAuth(account_id=account_id),
    )
    plan = await outbound(call, _no_internal)
    if not isinstance(plan, Plan) or not plan.waves or not plan.waves[0].targets:
        return None
    return plan.waves[0].targets[0]


class CallbackWorker:
    """See the module docstring. ``routing``: the PBX resolver (its ``db``, ``credentials``
    and ``bindings`` serve group and employee requests); ``outbound``: its OutboundCalls."""

    def __init__(
        self,
        service: CallbackService,
        b2bua: B2bua,
        routing: Routing,
        outbound: Outbound,
        db: Database,
        credentials: DirectoryCredentialStore,
        bindings: Callable[[str], list[Binding]],
        bus: EventBus,
        *,
        retry: Retry | None = None,
        poll_interval: float = 1.0,
        max_concurrent: int = 10,
        ring_seconds: float = 30.0,
        then_timeout: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.service = service
        self.b2bua = b2bua
        self.routing = routing
        self.outbound = outbound
        self.db = db
        self.credentials = credentials
        self.bindings = bindings
        self.bus = bus
        self.retry = retry or Retry()
        self.poll_interval = poll_interval
        self.max_concurrent = max_concurrent
        self.ring_seconds = ring_seconds
        self.then_timeout = then_timeout
        self.clock = clock
        self.live: dict[uuid.UUID, OriginatedCall] = {}
        self._attempts: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._off: Callable[[], None] | None = None

    async def start(self) -> None:
        recovered = await self.service.recover(self.clock())
        if recovered:
            log.info("callbacks: %d interrupted requests are pending again", recovered)
        self._off = self.bus.subscribe(CallbackChanged, self._on_changed)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="callbacks")

    async def stop(self) -> None:
        """Stop taking requests. Attempts under way are abandoned, not recorded: their
        requests stay "calling" and are pending again at the next start."""
        if self._off is not None:
            self._off()
            self._off = None
        tasks = [t for t in (self._task, *self._attempts) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("callbacks: a round failed")
            await asyncio.sleep(self.poll_interval)

    async def tick(self) -> int:
        """Claim due requests and start their attempts; returns how many were started."""
        rows = await self.service.claim_due(self.clock(), self.max_concurrent - len(self._attempts))
        for row in rows:
            task = asyncio.get_running_loop().create_task(
                self._attempt(row), name=f"callback {row.id}"
            )
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)
        return len(rows)

    async def _on_changed(self, event: Event) -> None:
        if isinstance(event, CallbackChanged) and event.status is CallbackStatus.cancelled:
            call = self.live.get(event.request_id)
            if call is not None:
                call.cancel()

    async def _attempt(self, row: CallbackRequest) -> None:
        outcome, call_id = OriginationOutcome.failed, None
        try:
            placed = await self._origination(row)
            if isinstance(placed, OriginationOutcome):
                outcome = placed
            else:
                call = await self.b2bua.originate(placed)
                call_id = call.call_id
                self.live[row.id] = call
                outcome = await call.result
        except Exception:
            log.exception("callback %s: the attempt failed", row.id)
        finally:
            self.live.pop(row.id, None)
        log.info("callback %s: attempt %d %s (%s)", row.id, row.attempts, outcome, call_id)
        await self.service.record_attempt(row.id, outcome.value, call_id, self.retry, self.clock())

    async def _origination(self, row: CallbackRequest) -> Origination | OriginationOutcome:
        now = self.clock()
        call_id = f"c{secrets.token_hex(8)}"
        async with self.db.read() as s:
            account = await s.get(Account, row.account_id)
            number = await s.get(Number, row.number_id) if row.number_id else None
        if account is None:
            return OriginationOutcome.failed
        params = {str(k): str(v) for k, v in (row.params or {}).items()}
        if number is not None:
            first = await first_side(
                self.routing,
                InboundCall(
                    call_id=call_id,
                    dialed=number.e164,
                    caller=row.phone,
                    caller_display=None,
                    from_uri=f"sip:{row.phone}@callback.invalid",
                    to_uri=f"sip:{number.e164}@callback.invalid",
                    source=_NOWHERE,
                    started_at=now,
                ),
            )
        elif row.group_id is not None or row.employee_id is not None:
            first = await members_side(
                self.db,
                self.credentials,
                self.bindings,
                row.account_id,
                group_id=row.group_id,
                employee_id=row.employee_id,
                ring_seconds=self.ring_seconds,
            )
        else:  # what it pointed at was deleted
            return OriginationOutcome.failed
        if not first:
            return OriginationOutcome.first_no_answer
        then = await customer_side(self.outbound, row.account_id, call_id, row.phone, now)
        if then is None:
            return OriginationOutcome.failed
        return Origination(
            account_id=row.account_id,
            first=first,
            then=then,
            then_timeout=self.then_timeout,
            caller=row.phone,
            dialed=number.e164 if number is not None else row.phone,
            record=account.recording_enabled,
            tracking=params,
            call_id=call_id,
        )
