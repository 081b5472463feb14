"""End to end: an answered call transferred through the API (the operator's "transfer"
button in a CRM or the web): ``POST /api/v1/acd/calls/{id}/transfer``.

A SIPp carrier calls the number, whose scheme rings agent 201 (a SIPp phone that rings
0.7 s, answers and talks until our BYE). While it rings the transfer is refused (409); once
it talks, a supervisor transfers the call to 901 (a SIPp phone that answers and waits for the
end): 201 gets our BYE, 901 rings and answers, the customer talks to 901 until it hangs up
and 901 gets our BYE. The journal: one call answered by 201, a blind transfer to 901, and
901's leg answered. Bad input and other people's calls get the API's stable errors.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e import sippkit
from tests.e2e.schemes_kit import carrier_talk
from tests.e2e.test_listen import CALLER, NUMBER, Env, agent_answers, until
from tests.e2e.test_listen import env as env  # the fixture
from tests.e2e.test_pickup_transfer import Sipps
from tests.sip.peers.harness import SIPP, free_port
from zvonar.accounts.models import Role
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    CallTransferred,
    Disposition,
    TransferKind,
)
from zvonar.directory.models import Employee

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

API = "/api/v1"


async def test_a_supervisor_transfers_an_answered_call_to_another_employee(env: Env) -> None:
    rig, api = env.rig, env.api
    pcap = rig.workdir / "a440.pcap"
    sippkit.write_tone_pcap(pcap, 440, 1.0, ssrc=0x440)
    async with rig.container.db.read() as s:
        account_id = await s.scalar(
            select(Employee.account_id).where(Employee.id == env.ids["201"])
        )
    assert account_id is not None
    operator = await rig.container.accounts.create_user(
        account_id,
        email="op@listen.example",
        name="Op",
        role=Role.operator,
        password="x" * 12,
    )
    token = await rig.container.accounts.create_token(
        operator.account_id, name="op", role=Role.operator, created_by=operator.id
    )
    op = {"Authorization": f"Bearer {token.secret}"}
    sipps = Sipps(rig)
    try:
        d = rig.devices
        agent = await sipps.start(
            "agent201", agent_answers(ring_ms=700, pcap=pcap), port=d["201"].port, remote=False
        )
        colleague = await sipps.start(
            "colleague901", sippkit.uas_answer(), port=d["901"].port, remote=False
        )
        await asyncio.sleep(0.2)  # the UASes bind their ports
        start = len(rig.bus.events)
        caller = await sipps.start(
            "caller", carrier_talk(NUMBER, CALLER, talk_ms=4000), port=free_port(), remote=True
        )

        def mine(kind: type[Any]) -> list[Any]:
            return [e for e in rig.bus.events[start:] if isinstance(e, kind)]

        await until(lambda: mine(CallRinging))
        (started,) = mine(CallStarted)
        path = f"{API}/acd/calls/{started.call_id}/transfer"
        r = await api.post(path, json={"to": "901"}, headers=env.boss)  # 201 still rings
        assert r.status_code == 409 and r.json()["error"]["code"] == "call_not_answered", r.text
        r = await api.post(
            f"{API}/acd/calls/cnosuch/transfer", json={"to": "901"}, headers=env.boss
        )
        assert r.status_code == 404, r.text
        r = await api.post(path, json={"to": "9 01"}, headers=env.boss)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text

        await until(lambda: mine(CallAnswered))
        r = await api.post(path, json={"to": "901"}, headers=op)  # not on this call
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied", r.text
        r = await api.post(path, json={"to": "555"}, headers=env.boss)  # no such extension
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "transfer_target_unknown", r.text
        r = await api.post(path, json={"to": "901"}, headers=env.boss)
        assert r.status_code == 202 and r.json() == {"call_id": started.call_id, "to": "901"}

        caller_run = await sipps.finish(caller)
        agent_run, colleague_run = await sipps.finish(agent), await sipps.finish(colleague)
        await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 5)
    finally:
        await sipps.kill_all()
    assert caller_run.stats.successful == 1, caller_run.describe()
    assert agent_run.stats.successful == 1, agent_run.describe()  # our BYE at the transfer
    assert colleague_run.stats.successful == 1, colleague_run.describe()  # our BYE at the end
    (moved,) = mine(CallTransferred)
    assert moved.kind is TransferKind.blind and moved.to.target_id == env.ids["901"]
    assert [a.by for a in mine(CallAnswered)] == [env.ids["201"], env.ids["901"]]
    (ended,) = mine(CallEnded)
    assert ended.disposition is Disposition.answered
    row = await rig.journal_row(started.call_id)
    assert row.answered_by == env.ids["201"] and len(row.transfers) == 1
