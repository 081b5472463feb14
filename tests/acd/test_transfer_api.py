"""``POST /acd/calls/{call_id}/transfer`` of an outbound call over a real B2BUA on loopback
(the rig of test_listen_api.py): the employee who dialed out transfers the customer; an
operator who is not on the call may not. Inbound calls' transfers are tested end to end in
tests/e2e/test_api_transfer.py."""

from __future__ import annotations

import asyncio

from tests.acd.test_listen_api import REALM, Rig, until
from tests.acd.test_listen_api import rig as rig  # the fixture
from tests.acd.test_live_api import API, err, ok, staff
from tests.conftest import Tenant
from zvonar.accounts.models import Role
from zvonar.calls.events import Direction, Target, TargetKind
from zvonar.calls.plan import CallerAuth, Plan, RingTarget, Wave
from zvonar.container import Container
from zvonar.sip.ua import IncomingRequest

CUSTOMER = "+79160000001"


async def _operator(container: Container, tenant: Tenant, email: str) -> dict[str, str]:
    """A token of an operator whose user is the employee with ``email``."""
    user = await container.accounts.create_user(
        tenant.account_id, email=email, name=email, role=Role.operator, password="x" * 12
    )
    issued = await container.accounts.create_token(
        tenant.account_id, name=email, role=Role.operator, created_by=user.id
    )
    return {"Authorization": f"Bearer {issued.secret}"}


async def test_an_operator_transfers_the_outbound_call_it_placed(
    rig: Rig, container: Container, tenant_a: Tenant
) -> None:
    api, b2bua = rig.api, rig.pbx.b2bua
    await staff(api, tenant_a, "101", "102", e101="op@alpha.example", e102="bo@alpha.example")
    mine = await _operator(container, tenant_a, "op@alpha.example")
    theirs = await _operator(container, tenant_a, "bo@alpha.example")

    def gate(inc: IncomingRequest, now: float) -> CallerAuth:
        return CallerAuth(account_id=tenant_a.account_id, user="101", realm=REALM)

    b2bua.gate = gate  # the caller passed digest as phone 101
    customer = RingTarget(
        rig.callee.uri("answer"), rig.callee.flow, Target(TargetKind.external, CUSTOMER)
    )
    plans = rig.pbx.resolver.plans
    plans[CUSTOMER] = Plan(
        tenant_a.account_id, (Wave((customer,), 10),), direction=Direction.outbound
    )
    plans["102"] = Plan(
        tenant_a.account_id, (Wave((RingTarget(rig.boss.uri("answer"), rig.boss.flow),), 10),)
    )
    leg = rig.caller.app.originate(
        f"sip:{CUSTOMER}@{rig.pbx.address}", rig.pbx.flow, rig.caller.runner.loop.time()
    )
    rig.caller.runner.pump()
    assert await asyncio.wait_for(leg.answered, 5) == 200  # type: ignore[arg-type]
    (call_id,) = b2bua.calls
    path = f"{API}/acd/calls/{call_id}/transfer"
    r = await api.post(path, json={"to": "102"}, headers=theirs)  # not 102's call
    err(r, 403, "permission_denied")
    r = await api.post(path, json={"to": "102"}, headers=mine)
    assert ok(r, 202) == {"call_id": call_id, "to": "102"}
    await until(lambda: rig.boss.app.calls_answered == 1 and rig.caller.app.calls_ended == 1)
    assert rig.callee.app.calls_ended == 0  # the customer talks to 102 now
    (leg102,) = list(rig.boss.app._legs.values())
    await until(lambda: leg102.state == "confirmed")  # our ACK arrived
    (leg102.dialog,) = list(rig.boss.runner.ua.dialogs)  # the test server keeps none
    rig.boss.app.hangup(leg102, rig.boss.runner.loop.time())
    rig.boss.runner.pump()
    await until(lambda: rig.callee.app.calls_ended == 1)  # our BYE to the customer
    await asyncio.wait_for(b2bua.wait_idle(), 5)
