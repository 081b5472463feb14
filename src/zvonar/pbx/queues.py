"""The ACD runtime as the PBX runs it: queue definitions and staff from the database, kept
fresh by the bus, history into ``AcdService``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy import select

from zvonar.acd.definitions import QueueDef
from zvonar.acd.queue_callbacks import CALLBACK_RETRY_DELAY, CallbackDialer, CallbackOutcome
from zvonar.acd.queues import AcdQueueService, QueueDefined, QueueDeleted
from zvonar.acd.runtime import AcdRuntime
from zvonar.acd.service import AcdService
from zvonar.calls.originate import OriginatedCall
from zvonar.calls.origination import Origination, OriginationOutcome
from zvonar.calls.plan import RingTarget, Wave
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.directory.events import EmployeeDndChanged, EmployeeEvent
from zvonar.directory.models import Employee
from zvonar.store.db import Database

__all__ = ["attach_queues", "queue_callback_dialer", "queue_runtime"]

log = logging.getLogger(__name__)

CustomerSide = Callable[[uuid.UUID, str, str], Awaitable[RingTarget | None]]
"""``(account, call id, customer number)`` → how to ring the customer (the outbound path:
trunk and caller ID, as ``callbacks.worker.customer_side``), or None when they cannot be."""


def queue_runtime(
    db: Database,
    bus: EventBus,
    history: AcdService,
    *,
    dial_callback: CallbackDialer | None = None,
    callback_retry_delay: float = CALLBACK_RETRY_DELAY,
) -> AcdRuntime:
    definitions = AcdQueueService(db)

    async def load(
        account_id: uuid.UUID,
    ) -> tuple[Mapping[str, QueueDef], Mapping[str, str], frozenset[str]]:
        defs = await definitions.load(account_id)
        async with db.read() as s:
            rows = (
                await s.execute(
                    select(Employee.extension, Employee.id, Employee.dnd).where(
                        Employee.account_id == account_id, Employee.active.is_(True)
                    )
                )
            ).all()
        staff = {ext: str(emp_id) for ext, emp_id, _dnd in rows}
        return defs, staff, frozenset(str(emp_id) for _ext, emp_id, dnd in rows if dnd)

    return AcdRuntime(
        load,
        bus,
        record=history.record,
        dial_callback=dial_callback,
        callback_retry_delay=callback_retry_delay,
    )


def attach_queues(runtime: AcdRuntime, bus: EventBus) -> Callable[[], None]:
    """Reload an account's queues when they or its staff change; returns the detach."""

    async def changed(event: Event) -> None:
        runtime.invalidate(event.account_id)

    async def dnd(event: Event) -> None:
        if isinstance(event, EmployeeDndChanged):
            runtime.employee_dnd(event.account_id, str(event.employee_id), event.dnd)

    offs = [bus.subscribe(kind, changed) for kind in (QueueDefined, QueueDeleted, EmployeeEvent)]
    offs.append(bus.subscribe(EmployeeDndChanged, dnd))

    def detach() -> None:
        for off in offs:
            off()

    return detach


def queue_callback_dialer(
    originate: Callable[[Origination], Awaitable[OriginatedCall]],
    customer: CustomerSide,
    *,
    then_timeout: float = 30.0,
) -> CallbackDialer:
    """The ACD's queue callbacks placed as originations (``B2bua.originate``): the offered
    agents first, then the customer; ``connected`` as soon as the customer answers (the
    queue's answer), the outcome once the call is over (an agent who talked is then freed
    into wrap-up by the runtime)."""
    seq = 0

    async def dial(
        account_id: uuid.UUID,
        call_id: str,
        agents: tuple[RingTarget, ...],
        ring_for: float,
        phone: str,
        *,
        connected: Callable[[str | None], None],
    ) -> CallbackOutcome:
        nonlocal seq
        seq += 1
        # The waiting call's id is taken by its (ended) inbound call: the callback gets its own.
        own_id = f"{call_id}.cb{seq}"
        then = await customer(account_id, own_id, phone)
        if then is None:
            log.warning("queue callback %s: cannot ring %s", call_id, phone)
            return CallbackOutcome.customer_missed
        spec = Origination(
            account_id=account_id,
            first=(Wave(agents, ring_for),),
            then=then,
            then_timeout=then_timeout,
            caller=phone,
            dialed=phone,
            call_id=own_id,
        )
        call = await originate(spec)
        outcome = await call.result
        if outcome is OriginationOutcome.connected:
            agent = call.agent.target.target if call.agent is not None else None
            connected(str(agent.target_id) if agent and agent.target_id else None)
        await call.ended
        if outcome is OriginationOutcome.connected:
            return CallbackOutcome.talked
        if outcome is OriginationOutcome.first_no_answer:
            return CallbackOutcome.agent_missed
        return CallbackOutcome.customer_missed  # busy, no answer, or it could not be placed

    return dial
