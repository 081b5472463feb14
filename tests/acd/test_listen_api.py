"""``POST /acd/calls/{call_id}/listen`` over a real B2BUA on loopback (signalling peers from
the SIP stack's EchoPbx; registrations stand in for the PBX's registrar). What the listener
hears is tested in tests/media/engine/test_monitor.py and end to end in tests/e2e."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import httpx
import pytest

from tests.acd.test_live_api import err, live_app, ok, req, staff
from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import Pbx, start_pbx
from tests.conftest import Tenant, make_tenant
from zvonar.accounts.models import Role
from zvonar.calls.plan import Plan, RingTarget, Wave
from zvonar.container import Container
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.sip.io.testserver import CallLeg
from zvonar.sip.location import Binding

REALM = "alpha.zvonar"


@dataclass
class Registrations:
    """What the PBX's registrar would answer: AOR → bindings (a phone's "answer" user)."""

    phones: dict[str, Phone] = field(default_factory=dict)

    def __call__(self, aor: str) -> list[Binding]:
        phone = self.phones.get(aor)
        if phone is None:
            return []
        flow = phone.flow
        return [
            Binding(aor, phone.uri("answer"), 1e12, source=(flow.host, flow.port), transport="UDP")
        ]


@dataclass
class Rig:
    pbx: Pbx
    caller: Phone
    callee: Phone
    boss: Phone
    registrations: Registrations
    api: httpx.AsyncClient


@pytest.fixture
async def rig(container: Container, tenant_a: Tenant) -> AsyncIterator[Rig]:
    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)
    pbx = await start_pbx(engine)
    caller, callee, boss = await make_phone(), await make_phone(), await make_phone()
    registrations = Registrations()
    credentials = SimpleNamespace(realm_of=lambda account_id: REALM)
    app = live_app(container, None)
    app.state.pbx = SimpleNamespace(b2bua=pbx.b2bua, credentials=credentials, lookup=registrations)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        yield Rig(pbx, caller, callee, boss, registrations, api)
    await pbx.close()
    await engine.close()
    for phone in (caller, callee, boss):
        await phone.runner.close()


def dial(rig: Rig, account_id: uuid.UUID, user: str) -> CallLeg:
    """The caller calls the callee's ``user`` ("answer" or "ring") through the B2BUA."""
    target = RingTarget(rig.callee.uri(user), rig.callee.flow)
    rig.pbx.resolver.plans[user] = Plan(account_id, (Wave((target,), 10),))
    leg = rig.caller.app.originate(
        f"sip:{user}@{rig.pbx.address}", rig.pbx.flow, rig.caller.runner.loop.time()
    )
    rig.caller.runner.pump()
    return leg


def hang_up(phone: Phone, leg: CallLeg) -> None:
    phone.app.hangup(leg, phone.runner.loop.time())
    phone.runner.pump()


async def until(check: object, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)


async def test_listen_rings_the_supervisor_for_an_answered_call(
    rig: Rig, container: Container, tenant_a: Tenant
) -> None:
    api, b2bua = rig.api, rig.pbx.b2bua
    ids = await staff(api, tenant_a, "101", "900", e900="boss@alpha.example")
    boss = ids["900"]
    listen = "/acd/calls/{}/listen"
    err(await req(api, tenant_a, "POST", listen.format("cnope"), {}), 404, "not_found")
    ringing = dial(rig, tenant_a.account_id, "ring")
    await until(lambda: bool(b2bua.calls))
    (ringing_id,) = b2bua.calls
    r = await req(api, tenant_a, "POST", listen.format(ringing_id), {"employee_id": boss})
    err(r, 409, "call_not_answered")
    hang_up(rig.caller, ringing)
    await asyncio.wait_for(b2bua.wait_idle(), 5)

    leg = dial(rig, tenant_a.account_id, "answer")
    assert await asyncio.wait_for(leg.answered, 5) == 200  # type: ignore[arg-type]
    (call_id,) = b2bua.calls
    path = listen.format(call_id)
    err(await req(api, tenant_a, "POST", path, {"employee_id": boss}), 409, "agent_unreachable")
    err(await req(api, tenant_a, "POST", path, {}), 422, "employee_required")
    err(
        await req(api, tenant_a, "POST", path, {"employee_id": str(uuid.uuid4())}), 404, "not_found"
    )
    other = await make_tenant(container, "charlie")
    err(await req(api, other, "POST", path, {}), 404, "not_found")  # another account's call
    operator = await make_tenant(container, "delta", Role.operator)
    err(await req(api, operator, "POST", path, {}), 403, "permission_denied")
    assert not b2bua.listeners

    rig.registrations.phones[f"sip:900@{REALM}"] = rig.boss
    got = ok(await req(api, tenant_a, "POST", path, {"employee_id": boss}), 202)
    assert got["call_id"] == call_id and got["employee_id"] == boss and got["phones"] == 1
    (listener,) = b2bua.listeners.values()
    assert got["listener_id"] == listener.call_id
    assert await asyncio.wait_for(asyncio.shield(listener.answered), 5)
    assert rig.boss.app.calls_answered == 1
    # The call ends: the supervisor's phone gets our BYE.
    hang_up(rig.caller, leg)
    await until(lambda: rig.boss.app.calls_ended == 1)
    await asyncio.wait_for(b2bua.wait_idle(), 5)
    assert not b2bua.listeners


async def test_listen_without_a_pbx(container: Container, tenant_a: Tenant) -> None:
    transport = httpx.ASGITransport(app=live_app(container, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        r = await req(api, tenant_a, "POST", "/acd/calls/c1/listen", {})
        err(r, 503, "acd_unavailable")
