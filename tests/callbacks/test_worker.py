"""The callback worker over a loopback B2BUA (EchoPbx phones as agents and customer) and the
real service (SQLite and PostgreSQL): cancel during a call, recovery on start, and how side A
is read from a live route."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import Pbx, start_pbx
from tests.conftest import Tenant
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.callbacks.events import CallbackStatus
from zvonar.callbacks.schemas import CallbackRequestIn
from zvonar.callbacks.service import CallbackService, Retry
from zvonar.callbacks.worker import CallbackWorker, first_side
from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import (
    InboundCall,
    Plan,
    Reject,
    RingTarget,
    StepResult,
    StepResultKind,
    Wave,
)
from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.sip.location import Binding
from zvonar.sip.ua import Flow

AGENT = Target(TargetKind.employee, "Ann")


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)
    rig = await start_pbx(engine)
    yield rig
    await rig.close()
    await engine.close()


@pytest.fixture
async def phones() -> AsyncIterator[tuple[Phone, Phone]]:
    agents, customers = await make_phone(), await make_phone()
    yield agents, customers
    await agents.runner.close()
    await customers.runner.close()


def _worker(
    container: Container,
    svc: CallbackService,
    pbx: Pbx,
    first: Callable[[], Plan | Reject],
    then: RingTarget,
    bindings: list[Binding] | None = None,
) -> CallbackWorker:
    async def routing(_call: InboundCall) -> Plan | Reject:
        return first()

    async def outbound(call: InboundCall, _internal: object) -> Plan | Reject:
        assert call.auth is not None and call.dialed == "+79161234567"
        return Plan(call.auth.account_id, (Wave((then,), 30),))

    class NoRealm:
        def realm_of(self, _account: uuid.UUID) -> str:
            return "x.zvonar"

    return CallbackWorker(
        svc,
        pbx.b2bua,
        routing,
        outbound,
        container.db,
        NoRealm(),  # type: ignore[arg-type]
        lambda _aor: list(bindings or []),
        container.bus,
        retry=Retry(max_attempts=2, interval=0),
        poll_interval=0.05,
    )


async def _request(container: Container, svc: CallbackService, t: Tenant) -> uuid.UUID:
    p = Principal(account_id=t.account_id, role=Role.admin)
    emp = await container.directory.create_employee(p, EmployeeIn(name="Ann", extension="101"))
    row = await svc.create(
        p, CallbackRequestIn(phone="+79161234567", employee_id=emp.view.employee.id)
    )
    return row.id


async def _status(svc: CallbackService, t: Tenant, rid: uuid.UUID, want: CallbackStatus) -> None:
    p = Principal(account_id=t.account_id, role=Role.admin)
    for _ in range(300):
        if (await svc.get(p, rid)).status is want:
            return
        await asyncio.sleep(0.03)
    raise AssertionError(f"not {want}: {(await svc.get(p, rid)).status}")


async def test_cancel_hangs_up_the_call_under_way(
    container: Container,
    callbacks: CallbackService,
    tenant_a: Tenant,
    pbx: Pbx,
    phones: tuple[Phone, Phone],
) -> None:
    agents, customers = phones
    rid = await _request(container, callbacks, tenant_a)
    # An employee request rings that employee's registered phones (here: one binding).
    worker = _worker(
        container,
        callbacks,
        pbx,
        lambda: Reject(),
        RingTarget(customers.uri("ring"), customers.flow, Target(TargetKind.external, "c")),
        [_binding(agents)],
    )
    await worker.start()
    try:
        await _status(callbacks, tenant_a, rid, CallbackStatus.calling)
        for _ in range(300):
            call = worker.live.get(rid)
            if call is not None and call.customer is not None:
                break
            await asyncio.sleep(0.03)
        assert call is not None and call.customer is not None  # the customer is ringing
        p = Principal(account_id=tenant_a.account_id, role=Role.admin)
        await callbacks.cancel(p, rid)
        await asyncio.wait_for(asyncio.shield(call.ended), 10)
        await _status(callbacks, tenant_a, rid, CallbackStatus.cancelled)
        for _ in range(300):  # the attempt is recorded after the call's outcome is known
            row = await callbacks.get(p, rid)
            if row.last_outcome is not None:
                break
            await asyncio.sleep(0.03)
        assert row.last_outcome == "cancelled" and row.call_ids == [call.call_id]
        assert row.status is CallbackStatus.cancelled
        for _ in range(200):
            if agents.app.calls_ended and customers.app.calls_ended:
                break
            await asyncio.sleep(0.02)
        assert agents.app.calls_ended == 1 and customers.app.calls_ended == 1
    finally:
        await worker.stop()


async def test_nobody_to_ring_is_retried_then_fails_on_agents(
    container: Container, callbacks: CallbackService, tenant_a: Tenant, pbx: Pbx
) -> None:
    rid = await _request(container, callbacks, tenant_a)
    flow = Flow("UDP", "127.0.0.1", 9)
    worker = _worker(
        container, callbacks, pbx, lambda: Reject(), RingTarget("sip:x@127.0.0.1", flow)
    )
    await worker.start()
    try:
        await _status(callbacks, tenant_a, rid, CallbackStatus.failed)
    finally:
        await worker.stop()
    row = await callbacks.get(Principal(account_id=tenant_a.account_id, role=Role.admin), rid)
    assert row.attempts == 2 and row.failed_side is not None
    assert row.failed_side.value == "agents" and row.call_ids == []


async def test_stop_leaves_it_calling_and_start_takes_it_again(
    container: Container, callbacks: CallbackService, tenant_a: Tenant
) -> None:
    rid = await _request(container, callbacks, tenant_a)
    (claimed,) = await callbacks.claim_due(datetime.now(UTC), 5)  # a process that then died
    assert claimed.id == rid
    assert await callbacks.recover() == 1
    assert [r.id for r in await callbacks.claim_due(datetime.now(UTC), 5)] == [rid]


class _Route:
    def __init__(self, steps: list[object]) -> None:
        self.steps = steps
        self.seen: list[StepResult | None] = []

    async def next(self, result: StepResult | None) -> object:
        self.seen.append(result)
        return self.steps.pop(0)


async def test_first_side_walks_a_live_route_up_to_its_first_non_ring_step() -> None:
    flow = Flow("UDP", "127.0.0.1", 9)
    w1 = Wave((RingTarget("sip:a@127.0.0.1", flow, AGENT),), 5)
    w2 = Wave((RingTarget("sip:b@127.0.0.1", flow, AGENT),), 7)
    route = _Route([w1, w2, Reject(), w1])
    account = uuid.uuid4()

    async def routing(_call: InboundCall) -> Plan:
        return Plan(account, (), route=route)  # type: ignore[arg-type]

    call = InboundCall("c1", "+74951112233", "+79161234567", None, "", "", flow, datetime.now(UTC))
    assert await first_side(routing, call) == (w1, w2)
    no_answer = StepResult(StepResultKind.no_answer)
    assert route.seen == [None, no_answer, no_answer]

    async def plain(_call: InboundCall) -> Plan | Reject:
        return Plan(account, (w2,))

    assert await first_side(plain, call) == (w2,)

    async def refused(_call: InboundCall) -> Reject:
        return Reject(404)

    assert await first_side(refused, call) == ()


def _binding(phone: Phone) -> Binding:
    """Employee 101 registered from ``phone`` (its user "answer" answers at once)."""
    return Binding(
        aor="sip:101@x.zvonar",
        contact=phone.uri("answer"),
        expires_at=1e12,
        source=(phone.flow.host, phone.flow.port),
    )
