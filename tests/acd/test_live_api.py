"""The supervisor API over a real AcdRuntime (no SIP: sessions record the signals they get)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.models import Account, Role
from zvonar.acd.agents import Status, StatusInterval
from zvonar.acd.events import AgentStatusChanged, QueueCallerChanged
from zvonar.acd.live_router import router as live_router
from zvonar.acd.runtime import AcdRuntime
from zvonar.app import create_app
from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import QueueOffer, QueueSignal, QueueWithdraw, RingTarget
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.pbx.queues import queue_runtime
from zvonar.sip.ua import Flow

API = "/api/v1"


@pytest.fixture
async def runtime(container: Container) -> AsyncIterator[AcdRuntime]:
    rt = queue_runtime(container.db, container.bus, container.acd)
    await rt.start()
    yield rt
    await rt.close()


def live_app(container: Container, runtime: AcdRuntime | None) -> FastAPI:
    app = create_app(container)
    if not any(getattr(r, "path", "") == f"{API}/acd/live" for r in app.routes):
        app.include_router(live_router, prefix=API)  # until app.py includes it
    app.state.acd = runtime  # what the lifespan does when the PBX runs
    return app


@pytest.fixture
async def api(container: Container, runtime: AcdRuntime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=live_app(container, runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def no_pbx(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=live_app(container, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Phones:
    """Which employees have a registered phone (what the PBX's resolver would find)."""

    by_agent: dict[str, tuple[RingTarget, ...]] = field(default_factory=dict)

    def give(self, employee_id: str) -> None:
        self.by_agent[employee_id] = (
            RingTarget(
                f"sip:{employee_id[:8]}@127.0.0.1:5099",
                Flow("UDP", "127.0.0.1", 5099),
                Target(TargetKind.employee, "agent", uuid.UUID(employee_id)),
            ),
        )

    def __call__(self, agent_id: str) -> tuple[RingTarget, ...]:
        return self.by_agent.get(agent_id, ())


async def req(
    c: httpx.AsyncClient, t: Tenant, method: str, path: str, body: Any = None, **kw: Any
) -> httpx.Response:
    return await c.request(method, f"{API}{path}", json=body, headers=t.headers, **kw)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def err(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    e: dict[str, Any] = r.json()["error"]
    assert e["code"] == code, e
    return e


async def staff(c: httpx.AsyncClient, t: Tenant, *exts: str, **emails: str) -> dict[str, str]:
    ids = {}
    for ext in exts:
        body: dict[str, Any] = {"name": f"Agent {ext}", "extension": ext}
        if f"e{ext}" in emails:
            body["email"] = emails[f"e{ext}"]
        ids[ext] = ok(await req(c, t, "POST", "/employees", body), 201)["id"]
    return ids


async def queue(c: httpx.AsyncClient, t: Tenant, name: str, *exts: str, **kw: Any) -> None:
    body = {"name": name, "members": [{"extension": e} for e in exts], **kw}
    ok(await req(c, t, "POST", "/queues", body), 201)


async def wait_in(
    rt: AcdRuntime, t: Tenant, name: str, call_id: str, phones: Phones, priority_tags: str = ""
) -> tuple[Any, list[QueueSignal]]:
    tags = frozenset({priority_tags}) if priority_tags else frozenset()
    opened = await rt.open(
        t.account_id,
        name,
        call_id,
        caller_tags=tags,
        language="en",
        prompts_dir=None,
        targets=phones,
        caller="+74951110000",
    )
    assert opened is not None
    session, _music = opened
    signals: list[QueueSignal] = []
    assert await session.enter(signals.append)
    return session, signals


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """The runtime publishes live events from its writer task, a moment after the change."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.01)


def waiting(live: dict[str, Any], name: str) -> list[tuple[str, int | None]]:
    (q,) = [q for q in live["queues"] if q["name"] == name]
    return [(w["call_id"], w["position"]) for w in q["waiting"]]


async def test_live_view_lists_waiting_callers_and_agents(
    api: httpx.AsyncClient, runtime: AcdRuntime, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ids = await staff(api, tenant_a, "101", "102")
    await queue(api, tenant_a, "sales", "101", "102")
    phones = Phones()  # nobody has a phone: callers wait
    await wait_in(runtime, tenant_a, "sales", "c1", phones)
    await wait_in(runtime, tenant_a, "sales", "c2", phones, priority_tags="vip")
    live = ok(await req(api, tenant_a, "GET", "/acd/live"))
    assert waiting(live, "sales") == [("c2", 1), ("c1", 2)]
    (q,) = live["queues"]
    assert q["waiting"][0]["priority"] == 1 and q["waiting"][0]["caller"] == "+74951110000"
    assert {a["employee_id"]: a["status"] for a in q["agents"]} == {
        ids["101"]: "unreachable",
        ids["102"]: "unreachable",
    }
    assert {a["extension"] for a in q["agents"]} == {"101", "102"}
    # Another account sees none of it, and cannot touch it.
    assert ok(await req(api, tenant_b, "GET", "/acd/live")) == {"queues": []}
    for action, body in (("move", {"queue": "sales"}), ("intercept", {})):
        r = await req(api, tenant_b, "POST", f"/acd/calls/c1/{action}", body)
        err(r, 404, "not_found")
    r = await req(api, tenant_b, "PUT", f"/agents/{ids['101']}/status", {"status": "dnd"})
    assert "c1" not in r.text
    err(r, 404, "not_found")
    err(await req(api, tenant_b, "GET", f"/agents/{ids['101']}/status"), 404, "not_found")
    assert waiting(ok(await req(api, tenant_a, "GET", "/acd/live")), "sales") == [
        ("c2", 1),
        ("c1", 2),
    ]


async def test_move_keeps_the_wait_and_refuses_a_ringing_caller(
    api: httpx.AsyncClient, runtime: AcdRuntime, tenant_a: Tenant, bus: RecordingBus
) -> None:
    ids = await staff(api, tenant_a, "101", "103")
    await queue(api, tenant_a, "sales", "101")
    await queue(api, tenant_a, "support", "103")
    phones = Phones()
    _, sig1 = await wait_in(runtime, tenant_a, "sales", "c1", phones)
    clock = runtime.now
    runtime.now = lambda: clock() + 42  # 42 seconds later
    moved = ok(await req(api, tenant_a, "POST", "/acd/calls/c1/move", {"queue": "support"}))
    assert moved == {"call_id": "c1", "queue": "support", "position": 1, "offered_to": []}
    live = ok(await req(api, tenant_a, "GET", "/acd/live"))
    assert waiting(live, "sales") == [] and waiting(live, "support") == [("c1", 1)]
    (w,) = next(q for q in live["queues"] if q["name"] == "support")["waiting"]
    assert w["waited"] >= 42

    def changes() -> list[tuple[str, str]]:
        return [(e.queue, e.what) for e in bus.of_type(QueueCallerChanged) if e.call_id == "c1"]

    await eventually(lambda: changes()[-2:] == [("sales", "moved_out"), ("support", "moved_in")])

    # Errors, each leaving the caller where they are.
    r = await req(api, tenant_a, "POST", "/acd/calls/c1/move", {"queue": "nowhere"})
    err(r, 404, "queue_not_found")
    err(
        await req(api, tenant_a, "POST", "/acd/calls/c1/move", {"queue": "support"}),
        409,
        "same_queue",
    )
    err(
        await req(api, tenant_a, "POST", "/acd/calls/ghost/move", {"queue": "sales"}),
        404,
        "not_found",
    )
    for body in ({}, {"queue": "sales", "employee_id": ids["101"]}, {"queue": "bad name"}):
        r = await req(api, tenant_a, "POST", "/acd/calls/c1/move", body)
        err(r, 422, "validation_error")
    r = await req(api, tenant_a, "POST", "/acd/calls/%20bad/move", {"queue": "sales"})
    err(r, 422, "validation_error")

    # A phone for 103: the caller is offered at once, and cannot be moved while it rings.
    phones.give(ids["103"])
    await wait_in(runtime, tenant_a, "support", "c2", phones)
    offer = next(s for s in sig1 if isinstance(s, QueueOffer))
    assert [t.target.target_id for t in offer.targets] == [uuid.UUID(ids["103"])]
    r = await req(api, tenant_a, "POST", "/acd/calls/c1/move", {"queue": "sales"})
    err(r, 409, "call_being_offered")
    live = ok(await req(api, tenant_a, "GET", "/acd/live"))
    assert waiting(live, "support") == [("c1", None), ("c2", 1)]


async def test_intercept_takes_a_ringing_call_from_the_agent_without_a_miss(
    api: httpx.AsyncClient, runtime: AcdRuntime, container: Container, tenant_a: Tenant
) -> None:
    ids = await staff(api, tenant_a, "101", "900", e900="boss@alpha.example")
    await queue(api, tenant_a, "sales", "101")
    phones = Phones()
    phones.give(ids["101"])
    phones.give(ids["900"])
    session, signals = await wait_in(runtime, tenant_a, "sales", "c1", phones)
    (first,) = signals
    assert isinstance(first, QueueOffer) and first.targets == phones(ids["101"])
    boss = ids["900"]
    r = await req(api, tenant_a, "POST", "/acd/calls/c1/intercept", {"employee_id": ids["101"]})
    err(r, 409, "call_being_offered")  # it already rings them
    r = await req(api, tenant_a, "POST", "/acd/calls/c1/intercept", {"employee_id": boss})
    assert ok(r)["call_id"] == "c1"
    assert signals[1:] == [QueueWithdraw(first.offer)]  # the call stops ringing 101 first
    session.withdrawn(first.offer)  # ...and says so (nobody had answered)
    (then,) = signals[2:]
    assert isinstance(then, QueueOffer) and then.targets == phones(boss)
    agent = ok(await req(api, tenant_a, "GET", f"/agents/{ids['101']}/status"))
    assert agent["status"] == "online"  # not ringing, and not counted as a miss
    session.answered(then.offer, phones(boss)[0].target)
    live = ok(await req(api, tenant_a, "GET", "/acd/live"))
    assert waiting(live, "sales") == []
    assert ok(await req(api, tenant_a, "GET", f"/agents/{boss}/status"))["status"] == "on_call"


async def test_intercept_rings_the_supervisor_and_gives_the_place_back(
    api: httpx.AsyncClient, runtime: AcdRuntime, container: Container, tenant_a: Tenant
) -> None:
    ids = await staff(api, tenant_a, "101", "900", e900="boss@alpha.example")
    await queue(api, tenant_a, "sales", "101")
    phones = Phones()
    s1, sig1 = await wait_in(runtime, tenant_a, "sales", "c1", phones)
    s2, sig2 = await wait_in(runtime, tenant_a, "sales", "c2", phones)
    boss = ids["900"]
    r = await req(api, tenant_a, "POST", "/acd/calls/c2/intercept", {"employee_id": boss})
    err(r, 409, "agent_unreachable")
    phones.give(boss)
    r = await req(api, tenant_a, "POST", "/acd/calls/c2/intercept", {"employee_id": boss})
    assert ok(r) == {"call_id": "c2", "queue": "sales", "position": None, "offered_to": [boss]}
    (offer,) = sig2
    assert isinstance(offer, QueueOffer) and offer.targets == phones(boss) and sig1 == []
    r = await req(api, tenant_a, "POST", "/acd/calls/c2/intercept", {"employee_id": boss})
    err(r, 409, "call_being_offered")
    r = await req(api, tenant_a, "POST", "/acd/calls/c1/intercept", {"employee_id": boss})
    err(r, 409, "agent_unavailable")  # ringing for c2
    s2.not_answered(offer.offer)  # rang out: c2 is back behind c1, where it was
    live = ok(await req(api, tenant_a, "GET", "/acd/live"))
    assert waiting(live, "sales") == [("c1", 1), ("c2", 2)]
    # Omitting employee_id means "me": the token's user is the employee with the same email.
    sup = await make_tenant(container, "charlie")
    other = await req(api, sup, "POST", "/acd/calls/c1/intercept", {})
    err(other, 404, "not_found")  # another account
    err(await req(api, tenant_a, "POST", "/acd/calls/c1/intercept", {}), 422, "employee_required")
    user = await container.accounts.create_user(
        tenant_a.account_id,
        email="Boss@alpha.example",
        name="Boss",
        role=Role.supervisor,
        password="correct horse battery",
    )
    issued = await container.accounts.create_token(
        tenant_a.account_id, name="boss", role=Role.supervisor, created_by=user.id
    )
    boss_t = Tenant(tenant_a.account_id, "boss@alpha.example", "", issued.secret)
    r = await req(api, boss_t, "POST", "/acd/calls/c1/intercept", {})
    assert ok(r)["offered_to"] == [boss]
    (offer1,) = sig1
    assert isinstance(offer1, QueueOffer)
    s1.answered(offer1.offer, phones(boss)[0].target)
    live = ok(await req(api, tenant_a, "GET", "/acd/live"))
    assert waiting(live, "sales") == [("c2", 1)]
    got = ok(await req(api, boss_t, "GET", f"/agents/{boss}/status"))
    assert got["status"] == "on_call" and got["call_id"] == "c1"
    # A supervisor without a 'move to agent' shortcut: move with employee_id intercepts too.
    s1.call_ended()
    r = await req(api, tenant_a, "POST", "/acd/calls/c2/move", {"employee_id": boss})
    assert ok(r)["offered_to"] == [boss]


async def test_agent_status_by_supervisor_and_by_the_agent(
    api: httpx.AsyncClient,
    runtime: AcdRuntime,
    container: Container,
    tenant_a: Tenant,
    bus: RecordingBus,
) -> None:
    ids = await staff(api, tenant_a, "101", "102", "103", e101="ann@alpha.example")
    await queue(api, tenant_a, "sales", "101", "102")
    phones = Phones()
    phones.give(ids["101"])
    await wait_in(runtime, tenant_a, "sales", "c0", phones)  # agents are loaded; 101 rings
    a101, a102 = ids["101"], ids["102"]
    r = ok(await req(api, tenant_a, "PUT", f"/agents/{a102}/status", {"status": "dnd"}))
    assert r["status"] == "dnd" and r["presence"] == "dnd" and not r["deferred"]
    await eventually(
        lambda: (a102, "dnd") in {(e.agent_id, e.new) for e in bus.of_type(AgentStatusChanged)}
    )
    # Do not disturb as the agent status is the employee's: no routing rings them either.
    assert ok(await req(api, tenant_a, "GET", f"/employees/{a102}"))["dnd"] is True
    body = {"status": "break", "reason": "lunch"}
    r = ok(await req(api, tenant_a, "PUT", f"/agents/{a102}/status", body))
    assert (r["status"], r["reason"]) == ("break", "lunch")
    assert ok(await req(api, tenant_a, "GET", f"/employees/{a102}"))["dnd"] is False
    # Ringing: the choice waits for the call.
    r = ok(await req(api, tenant_a, "PUT", f"/agents/{a101}/status", {"status": "away"}))
    assert (r["status"], r["presence"], r["deferred"]) == ("ringing", "away", True)
    assert r["call_id"] == "c0"
    # Errors.
    r = await req(api, tenant_a, "PUT", f"/agents/{a102}/status", {"status": "break"})
    err(r, 422, "reason_required")
    for bad in ({"status": "on_call"}, {"status": "dnd", "reason": ""}, {"status": "dnd", "x": 1}):
        err(await req(api, tenant_a, "PUT", f"/agents/{a102}/status", bad), 422, "validation_error")
    r = await req(api, tenant_a, "PUT", f"/agents/{uuid.uuid4()}/status", {"status": "dnd"})
    err(r, 404, "not_found")
    r = await req(api, tenant_a, "PUT", f"/agents/{ids['103']}/status", {"status": "dnd"})
    err(r, 404, "agent_not_found")  # an employee in no queue
    err(
        await req(api, tenant_a, "PUT", "/agents/nope/status", {"status": "dnd"}),
        422,
        "validation_error",
    )
    # An operator sets their own status only.
    user = await container.accounts.create_user(
        tenant_a.account_id,
        email="ann@alpha.example",
        name="Ann",
        role=Role.operator,
        password="correct horse battery",
    )
    issued = await container.accounts.create_token(
        tenant_a.account_id, name="ann", role=Role.operator, created_by=user.id
    )
    ann = Tenant(tenant_a.account_id, "ann@alpha.example", "", issued.secret)
    r = await req(api, ann, "PUT", f"/agents/{a102}/status", {"status": "online"})
    err(r, 403, "permission_denied")
    r = await req(api, ann, "PUT", f"/agents/{a101}/status", {"status": "online"})
    assert ok(r)["presence"] == "online"
    err(await req(api, ann, "GET", "/acd/live"), 403, "permission_denied")
    err(await req(api, ann, "POST", "/acd/calls/c0/intercept", {}), 403, "permission_denied")


async def test_status_intervals_report(
    api: httpx.AsyncClient, container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ids = await staff(api, tenant_a, "101")
    agent = ids["101"]
    t0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC).timestamp()
    await container.acd.record(
        tenant_a.account_id,
        [
            StatusInterval(agent, Status.online, None, t0, t0 + 600),
            StatusInterval(agent, Status.on_break, "lunch", t0 + 600, t0 + 2400),
            StatusInterval(agent, Status.online, None, t0 + 2400, t0 + 3600),
        ],
    )
    params = {"since": "2026-01-15T09:05:00+00:00", "until": "2026-01-15T09:50:00+00:00"}
    path = f"/agents/{agent}/status-intervals"
    r = ok(await req(api, tenant_a, "GET", path, params=params))
    assert r["totals"] == {"online": 900.0, "break": 1800.0}
    assert [
        (i["status"], i["reason"], i["start"][11:19], i["end"][11:19]) for i in r["intervals"]
    ] == [
        ("online", None, "09:05:00", "09:10:00"),
        ("break", "lunch", "09:10:00", "09:40:00"),
        ("online", None, "09:40:00", "09:50:00"),
    ]
    assert r["truncated"] is False
    since, until = (datetime.fromisoformat(params[k]) for k in ("since", "until"))
    p = await container.accounts.resolve_token(tenant_a.token)
    assert await container.acd.time_in_status(p, uuid.UUID(agent), since, until) == r["totals"]
    err(await req(api, tenant_b, "GET", path, params=params), 404, "not_found")
    bad = {"since": params["until"], "until": params["since"]}
    err(await req(api, tenant_a, "GET", path, params=bad), 422, "invalid_input")
    naive = {"since": "2026-01-15T09:05:00", "until": "2026-01-15T09:50:00"}
    err(await req(api, tenant_a, "GET", path, params=naive), 422, "invalid_input")
    long = {"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    err(await req(api, tenant_a, "GET", path, params=long), 422, "invalid_input")
    # Days are the account's: 09:00-10:00 UTC on January 15 is the last hour of the 14th in
    # Honolulu, and ``until``'s day is included.
    async with container.db.unit_of_work() as uow:
        account = await uow.session.get(Account, tenant_a.account_id)
        assert account is not None
        account.time_zone = "Pacific/Honolulu"
    day = {"since": "2026-01-14", "until": "2026-01-14"}
    r = ok(await req(api, tenant_a, "GET", path, params=day))
    assert r["totals"] == {"online": 1800.0, "break": 1800.0}
    assert (r["since"], r["until"]) == ("2026-01-14T10:00:00Z", "2026-01-15T10:00:00Z")
    day = {"since": "2026-01-15", "until": "2026-01-15"}
    assert ok(await req(api, tenant_a, "GET", path, params=day))["totals"] == {}


async def test_without_a_pbx_the_live_endpoints_say_so(
    no_pbx: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    client = no_pbx
    ids = await staff(client, tenant_a, "101")
    for method, path, body in (
        ("GET", "/acd/live", None),
        ("GET", "/acd/events", None),
        ("POST", "/acd/calls/c1/move", {"queue": "sales"}),
        ("POST", "/acd/calls/c1/intercept", {}),
        ("PUT", f"/agents/{ids['101']}/status", {"status": "dnd"}),
        ("GET", f"/agents/{ids['101']}/status", None),
    ):
        err(await req(client, tenant_a, method, path, body), 503, "acd_unavailable")
    r = await req(
        client,
        tenant_a,
        "GET",
        f"/agents/{ids['101']}/status-intervals",
        params={"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"},
    )
    assert ok(r) == {
        "employee_id": ids["101"],
        "since": "2026-01-01T00:00:00Z",
        "until": "2026-01-02T00:00:00Z",
        "totals": {},
        "intervals": [],
        "truncated": False,
    }
