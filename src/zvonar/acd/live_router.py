"""HTTP endpoints of the live ACD: what supervisors watch and do while calls wait.

``GET /acd/live`` (snapshot), ``GET /acd/parked`` (the parking lot) and ``GET /acd/events``
(Server-Sent Events) need ``acd.read``;
``POST /acd/calls/{call_id}/move``, ``.../intercept`` and ``.../listen`` need the supervisor
permission;
``GET/PUT /agents/{employee_id}/status`` and ``GET .../status-intervals`` are also open to the
agent themselves. Without a PBX in this process the live endpoints answer
``503 acd_unavailable`` (reports do not need it). Error codes: ``agent_not_found``,
``queue_not_found``, ``not_found`` (404); ``call_being_offered``, ``agent_unavailable``,
``agent_unreachable``, ``queue_full``, ``same_queue``, ``call_not_answered`` (409);
``bad_status``, ``reason_required``, ``employee_required`` (422).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from zvonar.accounts.access import Perm
from zvonar.acd import live
from zvonar.acd.live_schemas import (
    AgentStatusIn,
    AgentStatusOut,
    CallPlaceOut,
    InterceptIn,
    IntervalOut,
    ListenIn,
    ListenOut,
    LiveOut,
    LiveQueueOut,
    MoveIn,
    ParkedCallOut,
    ParkedOut,
    StatusIntervalsOut,
    TransferIn,
    TransferOut,
)
from zvonar.acd.router import SINCE, UNTIL
from zvonar.acd.runtime import AcdRuntime
from zvonar.acd.supervisor import (
    READ_PERM,
    AcdUnavailable,
    AgentState,
    CallPlace,
    PhonesOf,
    Supervisor,
)
from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.callbacks.worker import members_side
from zvonar.calls.b2bua import B2bua
from zvonar.calls.plan import RingTarget
from zvonar.core.schemas import DayOrDateTime

__all__ = ["acd_runtime", "router"]

router = APIRouter(tags=["acd"])

CallId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
]


def _maybe_runtime(request: Request) -> AcdRuntime | None:
    runtime: AcdRuntime | None = getattr(request.app.state, "acd", None)
    return runtime


def acd_runtime(request: Request) -> AcdRuntime:
    """The process's live ACD (``app.state.acd``); 503 ``acd_unavailable`` without a PBX."""
    runtime = _maybe_runtime(request)
    if runtime is None:
        raise AcdUnavailable("the live ACD runs with the PBX, and this process runs none")
    return runtime


def _supervisor(c: AppContainer) -> Supervisor:
    return Supervisor(c.db, c.directory)


def _calls(request: Request, c: AppContainer) -> tuple[B2bua, PhonesOf]:
    """The process's B2BUA and how to find an employee's registered phones (the PBX's
    registrations, as callbacks and intercepts ring them); 503 without a PBX."""
    pbx = getattr(request.app.state, "pbx", None)
    if pbx is None:
        raise AcdUnavailable("calls are handled with the PBX, and this process runs none")
    db, credentials, lookup = c.db, pbx.credentials, pbx.lookup

    async def phones(account_id: uuid.UUID, employee_id: uuid.UUID) -> tuple[RingTarget, ...]:
        waves = await members_side(db, credentials, lookup, account_id, employee_id=employee_id)
        return waves[0].targets if waves else ()

    b2bua: B2bua = pbx.b2bua
    return b2bua, phones


Runtime = Annotated[AcdRuntime, Depends(acd_runtime)]
MaybeRuntime = Annotated[AcdRuntime | None, Depends(_maybe_runtime)]
Sup = Annotated[Supervisor, Depends(_supervisor)]
Calls = Annotated[tuple[B2bua, PhonesOf], Depends(_calls)]


def _status(s: AgentState) -> AgentStatusOut:
    return AgentStatusOut.model_validate(s, from_attributes=True)


def _place(place: CallPlace) -> CallPlaceOut:
    return CallPlaceOut(
        call_id=place.call_id,
        queue=place.queue,
        position=place.position,
        offered_to=list(place.offered_to),
    )


@router.get("/acd/live", response_model=LiveOut)
async def acd_live(p: CurrentPrincipal, runtime: Runtime, sup: Sup) -> LiveOut:
    """Every queue's waiting callers (in order) and agents, now."""
    views = await sup.live(p, runtime)
    return LiveOut(
        queues=[
            LiveQueueOut.model_validate(
                {
                    "name": v.name,
                    "waiting": list(v.waiting),
                    "agents": [{**a, "employee_id": a["agent_id"]} for a in v.agents],
                }
            )
            for v in views
        ]
    )


@router.get("/acd/parked", response_model=ParkedOut)
async def acd_parked(p: CurrentPrincipal, calls: Calls, sup: Sup) -> ParkedOut:
    """The parking lot: every call of your account waiting in a park slot, by slot (a
    phone takes one by dialling its slot)."""
    return ParkedOut(
        parked=[
            ParkedCallOut.model_validate(c, from_attributes=True) for c in sup.parked(p, calls[0])
        ]
    )


@router.get(
    "/acd/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An SSE stream."}},
)
async def acd_events(p: CurrentPrincipal, runtime: Runtime) -> StreamingResponse:
    """Server-Sent Events: ``AgentStatusChanged``, ``AgentAlerted``, ``QueueCallerChanged``,
    ``CallStarted``, ``CallAnswered``, ``CallTransferred`` (a park too), ``CallEnded`` of your
    account (JSON data, ``id`` is the event id); ``dropped`` when you read too slowly (fetch
    ``/acd/live`` again); a comment every 15 seconds of quiet."""
    p.require(READ_PERM)
    kinds = live.ACD_EVENTS + (live.CALL_EVENTS if p.can(Perm.calls_read) else ())
    bus, account_id = runtime.bus, p.account_id

    def open_feed() -> live.Feed:
        return live.Feed(bus, account_id, kinds)

    return StreamingResponse(
        live.stream(open_feed, heartbeat=live.HEARTBEAT),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/agents/{employee_id}/status", response_model=AgentStatusOut)
async def get_agent_status(
    employee_id: uuid.UUID, p: CurrentPrincipal, runtime: MaybeRuntime, sup: Sup
) -> AgentStatusOut:
    return _status(await sup.get_status(p, runtime, employee_id))


@router.put("/agents/{employee_id}/status", response_model=AgentStatusOut)
async def set_agent_status(
    employee_id: uuid.UUID,
    body: AgentStatusIn,
    p: CurrentPrincipal,
    runtime: MaybeRuntime,
    sup: Sup,
) -> AgentStatusOut:
    """Set an agent's status (yours, or anybody's as a supervisor). On a call or ringing, the
    change waits for the call to end (``deferred``); ``online`` without a registered phone
    shows as ``unreachable``."""
    return _status(await sup.set_status(p, runtime, employee_id, body.status, body.reason))


@router.get("/agents/{employee_id}/status-intervals", response_model=StatusIntervalsOut)
async def agent_status_intervals(
    employee_id: uuid.UUID,
    since: Annotated[DayOrDateTime, Query(description=SINCE)],
    until: Annotated[DayOrDateTime, Query(description=UNTIL)],
    p: CurrentPrincipal,
    sup: Sup,
) -> StatusIntervalsOut:
    """Time in each status within ``[since, until)`` (at most 92 days) and the intervals."""
    report = await sup.status_intervals(p, employee_id, since, until)
    return StatusIntervalsOut(
        employee_id=report.employee_id,
        since=report.since,
        until=report.until,
        totals=report.totals,
        intervals=[IntervalOut.model_validate(i, from_attributes=True) for i in report.intervals],
        truncated=report.truncated,
    )


@router.post("/acd/calls/{call_id}/move", response_model=CallPlaceOut)
async def move_call(
    call_id: CallId, body: MoveIn, p: CurrentPrincipal, runtime: Runtime, sup: Sup
) -> CallPlaceOut:
    """Move a waiting caller to another queue (their wait keeps counting) or, with
    ``employee_id``, offer them to that employee now (as intercept)."""
    if body.queue is not None:
        return _place(await sup.move(p, runtime, call_id, body.queue))
    return _place(await sup.intercept(p, runtime, call_id, body.employee_id))


@router.post("/acd/calls/{call_id}/intercept", response_model=CallPlaceOut)
async def intercept_call(
    call_id: CallId, body: InterceptIn, p: CurrentPrincipal, runtime: Runtime, sup: Sup
) -> CallPlaceOut:
    """Ring an employee (default: yourself) for a waiting caller right away; if they do not
    answer, the caller goes back to their place."""
    return _place(await sup.intercept(p, runtime, call_id, body.employee_id))


@router.post("/acd/calls/{call_id}/transfer", response_model=TransferOut, status_code=202)
async def transfer_call(
    call_id: CallId, body: TransferIn, p: CurrentPrincipal, calls: Calls, sup: Sup
) -> TransferOut:
    """Blind-transfer an answered call (the operator's "transfer" button): ``to`` rings for
    the caller and the agent's phone is hung up; if nobody answers, the agent is rung back.
    Yours, or any call of the account as a supervisor. 202 once ``to`` rings."""
    await sup.transfer(p, calls[0], call_id, body.to)
    return TransferOut(call_id=call_id, to=body.to)


@router.post("/acd/calls/{call_id}/listen", response_model=ListenOut, status_code=202)
async def listen_to_call(
    call_id: CallId, body: ListenIn, p: CurrentPrincipal, calls: Calls, sup: Sup
) -> ListenOut:
    """Listen to an answered call silently: an employee's phones (default: yours) ring, and
    whoever answers hears both sides mixed while the call hears nothing of them. Hanging up
    ends only the listening; the end of the call hangs the listener up."""
    b2bua, phones = calls
    listening = await sup.listen(p, b2bua, phones, call_id, body.employee_id)
    return ListenOut.model_validate(listening, from_attributes=True)
