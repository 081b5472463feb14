"""``GET /acd/parked`` (the parking lot) over a real B2BUA on loopback (the rig of
test_listen_api.py): an agent's call parked by the API's transfer to ``*51`` is listed with
its slot, caller, time and who parked it; another account sees none of it; the call's end
empties the lot. Parking itself is tested in tests/calls/test_park.py and end to end in
tests/e2e/test_phone_codes.py."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx

from tests.acd.test_listen_api import Rig, hang_up, until
from tests.acd.test_listen_api import rig as rig  # the fixture
from tests.acd.test_live_api import err, live_app, ok, req, staff
from tests.conftest import Tenant
from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import Plan, RingTarget, Wave
from zvonar.container import Container


async def test_the_parking_lot_lists_the_accounts_parked_calls(
    rig: Rig, container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    api, b2bua = rig.api, rig.pbx.b2bua
    ids = await staff(api, tenant_a, "101")
    anna = uuid.UUID(ids["101"])
    agent = RingTarget(
        rig.callee.uri("answer"), rig.callee.flow, Target(TargetKind.employee, "Anna", anna)
    )
    rig.pbx.resolver.plans["100"] = Plan(tenant_a.account_id, (Wave((agent,), 10),))
    assert ok(await req(api, tenant_a, "GET", "/acd/parked")) == {"parked": []}
    leg = rig.caller.app.originate(
        f"sip:100@{rig.pbx.address}", rig.pbx.flow, rig.caller.runner.loop.time()
    )
    rig.caller.runner.pump()
    await until(lambda: rig.callee.app.calls_answered == 1)
    (call_id,) = b2bua.calls
    r = await req(api, tenant_a, "POST", f"/acd/calls/{call_id}/transfer", {"to": "*51"})
    assert ok(r, 202) == {"call_id": call_id, "to": "*51"}
    await until(lambda: rig.callee.app.calls_ended == 1)  # Anna's phone got our BYE
    (parked,) = ok(await req(api, tenant_a, "GET", "/acd/parked"))["parked"]
    caller = b2bua.calls[call_id].facts.caller
    assert caller  # the caller phone's From user
    assert (parked["slot"], parked["call_id"], parked["caller"]) == ("*51", call_id, caller)
    assert parked["parked_by"] == str(anna)
    assert datetime.fromisoformat(parked["since"]).tzinfo is not None
    assert ok(await req(api, tenant_b, "GET", "/acd/parked")) == {"parked": []}
    hang_up(rig.caller, leg)  # the customer gives up waiting
    await until(lambda: not b2bua.calls)
    assert ok(await req(api, tenant_a, "GET", "/acd/parked")) == {"parked": []}


async def test_without_a_pbx_the_parking_lot_is_unavailable(
    container: Container, tenant_a: Tenant
) -> None:
    transport = httpx.ASGITransport(app=live_app(container, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        err(await req(api, tenant_a, "GET", "/acd/parked"), 503, "acd_unavailable")
