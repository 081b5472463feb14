"""Stored intervals and facts give the same KPIs as the pure functions, per tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from zvonar.accounts.access import Principal
from zvonar.accounts.models import Account, Role
from zvonar.acd import agents as ag
from zvonar.acd.agents import Agent, AgentConfig, StatusInterval
from zvonar.acd.dispatcher import Dispatcher, facts_of
from zvonar.acd.facts import abandonment_rate, asa, service_level
from zvonar.acd.queue import QueueConfig, Strategy
from zvonar.acd.service import AcdService
from zvonar.container import Container

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()


def scripted_day() -> tuple[list[object], str]:
    agent = str(uuid.uuid4())
    d = Dispatcher()
    d.add_agent(Agent(agent, T0, AgentConfig(wrapup_seconds=30), registered=True))
    d.add_queue(QueueConfig("sales", Strategy.in_turn, {agent: 1}))
    d.agent_input(agent, ag.set_online(), T0 + 60)
    d.enter("sales", "c1", T0 + 100)
    d.enter("sales", "c2", T0 + 110)
    d.decide(T0 + 105)
    d.agent_input(agent, ag.answered("c1"), T0 + 115)  # c1 waited 15 s
    d.abandon("c2", T0 + 150)  # c2 gave up after 40 s
    d.agent_input(agent, ag.call_ended("c1"), T0 + 400)
    d.handle_timer(T0 + 430)
    d.enter("sales", "c3", T0 + 500)
    d.decide(T0 + 525)
    d.agent_input(agent, ag.answered("c3"), T0 + 530)  # 30 s
    d.agent_input(agent, ag.call_ended("c3"), T0 + 600)
    d.agent_input(agent, ag.set_break("lunch"), T0 + 610)
    d.handle_timer(T0 + 700)
    d.agent_input(agent, ag.set_offline(), T0 + 3600)
    return list(d.events()), agent


async def test_record_then_report_matches_pure_kpis(container: Container, tenant_a, tenant_b):
    events, agent = scripted_day()
    svc = AcdService(container.db)
    written = await svc.record(tenant_a.account_id, events)
    facts = facts_of(events)
    intervals = [e for e in events if isinstance(e, StatusInterval)]
    assert written == len(facts) + len(intervals)

    sup = Principal(tenant_a.account_id, Role.supervisor)
    day = datetime.fromtimestamp(T0, UTC)
    window = (day, day + timedelta(days=1))
    stored = await svc.queue_facts(sup, "sales", *window)
    assert stored == facts
    summary = await svc.queue_summary(sup, "sales", *window, threshold=20)
    assert (summary.entered, summary.answered, summary.abandoned) == (3, 2, 1)
    assert summary.service_level == service_level(facts, 20) == 1 / 3
    assert summary.asa == asa(facts) == 22.5
    assert summary.abandonment_rate == abandonment_rate(facts) == 1 / 3

    totals = await svc.time_in_status(sup, uuid.UUID(agent), *window)
    assert totals == {
        "offline": 60.0,
        "online": 45.0 + 95,
        "ringing": 10.0 + 5,
        "on_call": 285.0 + 70,
        "wrap_up": 30.0 + 10,
        "break": 2990.0,
    }
    # The window clips intervals.
    first_hour = (day, day + timedelta(seconds=100))
    assert await svc.time_in_status(sup, uuid.UUID(agent), *first_hour) == {
        "offline": 60.0,
        "online": 40.0,
    }

    other = Principal(tenant_b.account_id, Role.admin)
    assert await svc.queue_facts(other, "sales", *window) == []
    assert await svc.time_in_status(other, uuid.UUID(agent), *window) == {}


async def test_summary_endpoint(container: Container, tenant_a, tenant_b) -> None:
    import httpx

    from zvonar.app import create_app

    events, _ = scripted_day()
    await AcdService(container.db).record(tenant_a.account_id, events)
    app = create_app(container)
    params = {"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z", "threshold": 20}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get(
            "/api/v1/queues/sales/summary", params=params, headers=tenant_a.headers
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["entered"], body["answered"], body["asa"]) == (3, 2, 22.5)
        r = await client.get(
            "/api/v1/queues/sales/summary", params=params, headers=tenant_b.headers
        )
        assert r.json()["entered"] == 0
        bad = dict(params, until="2026-03-01T00:00:00Z")
        r = await client.get("/api/v1/queues/sales/summary", params=bad, headers=tenant_a.headers)
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "invalid_input"
        r = await client.get("/api/v1/queues/sales/summary", params=params)
        assert r.status_code == 401
        # Days are the account's: 09:00 UTC on March 2 is 23:00 on March 1 in Honolulu.
        async with container.db.unit_of_work() as uow:
            account = await uow.session.get(Account, tenant_a.account_id)
            assert account is not None
            account.time_zone = "Pacific/Honolulu"
        for day, entered in (("2026-03-01", 3), ("2026-03-02", 0)):
            days = {"since": day, "until": day}
            r = await client.get(
                "/api/v1/queues/sales/summary", params=days, headers=tenant_a.headers
            )
            assert r.status_code == 200, r.text
            assert r.json()["entered"] == entered, day
