"""End to end: a supervisor listens to a live call silently, through the real PBX and SIPp.

A SIPp carrier calls a number whose scheme rings agent 201 (a SIPp UAS): both play a tone
from a pcap once answered, the caller 440 Hz, the agent 880 Hz. Two supervisors' phones are
registered SIPp UASes; the API's ``POST /acd/calls/{id}/listen`` rings them:

* 900 (the supervisor asking, "yourself"): SIPp answers with an SDP whose media port is a
  Python UDP socket — the supervisor's ear, which decodes what it gets and itself says
  1500 Hz back — and waits for the PBX's BYE when the call ends;
* 901 (named by an admin): answers, hangs up after a second — the call must go on.

Checked: the ear gets one paced RTP stream carrying both tones and not its own; the engine's
counters show that everything the caller's and the agent's legs sent was relayed from the
other side (nothing of the supervisors'), while the supervisors' RTP did arrive; 901 leaving
changes nothing for the call or for 900; the call's end hangs 900 up; the journal row is an
ordinary answered call the caller hung up. Also: 409 while the agent's phone rings, 404 for
a call that does not exist.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.queues_kit import agent_scenario
from tests.e2e.schemes_kit import Device, Rig, carrier_talk
from tests.e2e.test_pickup_transfer import Sipps
from tests.media.engine.phone import Phone, pcm_samples, tone_power
from tests.sip.peers.harness import SIPP, free_port
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.app import create_app
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    Disposition,
    HangupSide,
)
from zvonar.calls.listen import ListenEnd
from zvonar.directory.schemas import EmployeeIn, NumberIn
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

PASSWORD = "listen-pass-42"
SLUG = "listen"
REALM = f"{SLUG}.zvonar"
NUMBER = "+74951234599"
CALLER = "+79160000042"
BOSS_EMAIL = "boss@listen.example"
API = "/api/v1"


def agent_answers(*, ring_ms: int, pcap: Path) -> str:
    """Agent 201: rings ``ring_ms``, answers, plays ``pcap``, waits for the PBX's BYE."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent answers and talks">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 180 Ringing{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv request="ACK"/>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>
</scenario>
"""


def supervisor_ear(media_port: int) -> str:
    """Supervisor 900: answers at once with media at ``media_port`` (the test's socket),
    then waits for the PBX to hang up."""
    sdp = f"""v=0
      o=boss 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio {media_port} RTP/AVP 0
      a=rtpmap:0 PCMU/8000"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="supervisor listens until the call ends">
  <recv request="INVITE"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sdp}

  ]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>
</scenario>
"""


@dataclass
class Env:
    rig: Rig
    api: httpx.AsyncClient
    admin: dict[str, str]  # request headers
    boss: dict[str, str]
    ids: dict[str, uuid.UUID]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    container = await sqlite_container(tmp_path)
    account = await container.accounts.create_account("Listen", SLUG, time_zone="UTC")
    p = Principal(account_id=account.id, role=Role.admin)
    ids = {}
    for ext, email in (("201", None), ("900", BOSS_EMAIL), ("901", None)):
        made = await container.directory.create_employee(
            p, EmployeeIn(name=f"Emp {ext}", extension=ext, sip_password=PASSWORD, email=email)
        )
        ids[ext] = made.view.employee.id
    ring = {"type": "ring", "targets": [{"employee": "201"}], "timeout": 8}
    scheme = await container.routing.create_scheme(
        p, "ring201", {"branches": {"working": [ring]}, "final": {"type": "hangup"}}
    )
    number = await container.directory.add_number(p, NumberIn(number=NUMBER))
    await container.routing.assign(p, number.id, scheme.id)
    admin = await container.accounts.create_user(
        account.id, email="admin@listen.example", name="Ada", role=Role.admin, password=PASSWORD
    )
    admin_token = await container.accounts.create_token(
        account.id, name="admin", role=Role.admin, created_by=admin.id
    )
    boss = await container.accounts.create_user(
        account.id, email=BOSS_EMAIL, name="Boss", role=Role.supervisor, password=PASSWORD
    )
    boss_token = await container.accounts.create_token(
        account.id, name="boss", role=Role.supervisor, created_by=boss.id
    )
    config = PbxConfig(sip_port=free_port(), media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(container, config)
    devices = {ext: Device(ext, ids[ext]) for ext in ids}
    rig = Rig(container, rt, REALM, PASSWORD, devices, tmp_path)
    app = create_app(container)
    app.state.pbx, app.state.acd = rt, rt.acd  # what the lifespan does with a PBX
    transport = httpx.ASGITransport(app=app)
    try:
        await rig.register_all()
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            yield Env(
                rig,
                api,
                {"Authorization": f"Bearer {admin_token.secret}"},
                {"Authorization": f"Bearer {boss_token.secret}"},
                ids,
            )
    finally:
        await rt.stop()
        await container.aclose()  # the journal's writes land before the db goes


async def until(check: Any, within: float = 8.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def tones(phone: Phone) -> dict[int, float]:
    samples = pcm_samples(phone.audio())
    return {f: tone_power(samples, f) for f in (440, 880, 1500)}


async def test_a_supervisor_listens_silently(env: Env) -> None:
    rig, api = env.rig, env.api
    b2bua, engine = rig.rt.b2bua, rig.rt.engine
    caller_pcap, agent_pcap = rig.workdir / "caller440.pcap", rig.workdir / "agent880.pcap"
    sippkit.write_tone_pcap(caller_pcap, 440, 4.0, ssrc=0x440)
    sippkit.write_tone_pcap(agent_pcap, 880, 4.0, ssrc=0x880)
    ear = Phone()  # the supervisor's media: RTP socket of 900's "phone"
    sipps = Sipps(rig)
    try:
        d = rig.devices
        agent = await sipps.start(
            "agent201",
            agent_answers(ring_ms=700, pcap=agent_pcap),
            port=d["201"].port,
            remote=False,
        )
        boss = await sipps.start(
            "boss900", supervisor_ear(ear.port), port=d["900"].port, remote=False
        )
        deputy = await sipps.start(
            "deputy901",
            agent_scenario("901", answer_ms=0, talk_ms=1000),
            port=d["901"].port,
            remote=False,
        )
        await asyncio.sleep(0.2)  # the UASes bind their ports
        start = len(rig.bus.events)
        caller = await sipps.start(
            "caller",
            carrier_talk(NUMBER, CALLER, talk_ms=4500, pcap=caller_pcap),
            port=free_port(),
            remote=True,
        )

        def mine(kind: type[Any]) -> list[Any]:
            return [e for e in rig.bus.events[start:] if isinstance(e, kind)]

        await until(lambda: mine(CallRinging))
        (started,) = mine(CallStarted)
        call_id = started.call_id
        path = f"{API}/acd/calls/{call_id}/listen"
        r = await api.post(path, json={}, headers=env.boss)  # the agent's phone still rings
        assert r.status_code == 409 and r.json()["error"]["code"] == "call_not_answered", r.text
        r = await api.post(f"{API}/acd/calls/cnosuchcall/listen", json={}, headers=env.boss)
        assert r.status_code == 404, r.text

        await until(lambda: mine(CallAnswered))
        r = await api.post(path, json={}, headers=env.boss)  # yourself: employee 900
        assert r.status_code == 202, r.text
        listening = r.json()
        assert listening["employee_id"] == str(env.ids["900"]) and listening["phones"] == 1
        r = await api.post(path, json={"employee_id": str(env.ids["901"])}, headers=env.admin)
        assert r.status_code == 202, r.text
        ear_listener = b2bua.listeners[listening["listener_id"]]
        deputy_listener = b2bua.listeners[r.json()["listener_id"]]
        assert await asyncio.wait_for(asyncio.shield(ear_listener.answered), 5)
        winner = ear_listener.winner
        assert winner is not None
        # The supervisor says something: 1500 Hz to the PBX, for 2 s.
        talking = asyncio.ensure_future(
            ear.send_tone((winner.endpoint.address, winner.endpoint.port), 1500, 2.0)
        )
        call = b2bua.calls[call_id]
        assert call.winner is not None and call.caller.media_id is not None
        caller_leg, agent_leg = call.caller.media_id, call.winner.media_id
        assert await asyncio.wait_for(asyncio.shield(deputy_listener.ended), 5) is (
            ListenEnd.listener_hung_up
        )
        deputy_left = time.monotonic()  # the ear's clock
        await talking
        # One instant of the engine's counters (no await suspends between these reads).
        c, a = await engine.stats(caller_leg), await engine.stats(agent_leg)
        heard_from_boss = (await engine.stats(winner.leg_id)).rx_packets
        assert heard_from_boss >= 90  # the supervisor's RTP reached the PBX...
        # ...and none of it went to the call: every packet sent to the caller was the
        # agent's, relayed, and vice versa.
        assert 0 < c.tx_packets <= a.rx_packets and 0 < a.tx_packets <= c.rx_packets
        assert call_id in b2bua.calls  # 901 hanging up did not end the call

        caller_run = await sipps.finish(caller)
        boss_run, agent_run = await sipps.finish(boss), await sipps.finish(agent)
        deputy_run = await sipps.finish(deputy)
        assert await asyncio.wait_for(asyncio.shield(ear_listener.ended), 5) is (
            ListenEnd.call_ended
        )
        await asyncio.wait_for(b2bua.wait_idle(), 5)
    finally:
        await sipps.kill_all()
        ear.close()
    for run in (caller_run, agent_run, boss_run, deputy_run):
        assert run.stats.successful == 1, run.describe()  # 900 got the PBX's BYE at the end
    (ended,) = [e for e in mine(CallEnded) if e.call_id == call_id]
    assert ended.disposition is Disposition.answered and ended.hangup is HangupSide.caller
    row = await rig.journal_row(call_id)
    assert row.disposition is Disposition.answered
    # Listening is no call of its own: the journal saw one call.
    assert {e.call_id for e in mine(CallStarted)} == {call_id}

    # What the supervisor heard: one stream, paced at 20 ms, both sides, not themselves.
    packets = [r.packet for r in ear.received]
    assert {p.payload_type for p in packets} == {0} and len({p.ssrc for p in packets}) == 1
    assert all(
        (b.sequence_number - a.sequence_number) & 0xFFFF == 1
        for a, b in itertools.pairwise(packets)
    )
    gaps = [b.at - a.at for a, b in itertools.pairwise(ear.received)]
    assert statistics.mean(gaps) == pytest.approx(0.02, abs=0.002)
    heard = tones(ear)
    assert heard[440] > 100 * heard[1500] and heard[880] > 100 * heard[1500]
    # 900 kept listening after 901 left.
    assert any(r.at > deputy_left + 1.0 for r in ear.received)
