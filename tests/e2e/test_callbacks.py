"""End to end, callbacks: a real app container and PBX runtime, a callback request POSTed to
the API, the worker placing it. Employee 101 is a SIPp phone (registered with digest, then a
SIPp UAS on the same port); the customer is a SIPp UAS behind the account's trunk on loopback.

Connected: 101 rings and answers, then the customer rings (From: the account's number) and
answers; RTP flows both ways through the relay (both engine legs receive and send tones); 101
hangs up. The journal has one row, direction ``callback``, answered by 101, and the request
is completed. Retry: the customer never answers; the request is retried and fails after the
configured attempts, blaming the customer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.test_trunk_challenge import CARRIER_PASSWORD, CARRIER_USER, carrier_xml
from tests.pbx.conftest import NUMBER, PASSWORD, Seeded, seed_account
from tests.sip.peers.harness import (
    SIPP,
    SippRun,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    sipp_command,
    sipp_media_port,
    start_sipp_bound,
)
from zvonar.accounts.models import Role
from zvonar.app import create_app
from zvonar.callbacks.service import CallbackService, Retry
from zvonar.callbacks.worker import CallbackWorker
from zvonar.calls.events import Direction, Disposition
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn, TrunkPatch
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import PbxRuntime, start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

CUSTOMER = "+79161234567"
TONE_SECONDS = 3.0

# 101 answers, plays its tone, and hangs up itself: BYE to the PBX's Contact, in the dialog
# the INVITE made (our tag in From, the PBX's From with its tag as To).
AGENT_HANGS_UP = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent answers a callback, talks, hangs up">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp="&lt;.*" search_in="hdr" header="From:" assign_to="pbx_from"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 180 Ringing{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv request="ACK"/>
  PLAY_HERE
  <pause milliseconds="{int(TONE_SECONDS * 1000) + 500}"/>
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:101@[local_ip]:[local_port]>;tag=[pid]UAS[call_number]
      To: [$pbx_from]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


def _checked_from(xml: str) -> str:
    """The customer's UAS fails the call unless From shows the account's number."""
    check = (
        '<recv request="INVITE"><action>'
        f'<ereg regexp="sip:\\{NUMBER}@" search_in="hdr" header="From:" check_it="true" '
        'assign_to="f"/></action></recv><Reference variables="f"/>'
    )
    return xml.replace('<recv request="INVITE"/>', check, 1)


@dataclass
class Rig:
    app: Container
    rt: PbxRuntime
    seeded: Seeded
    callbacks: CallbackService
    client: httpx.AsyncClient
    headers: dict[str, str]
    trunk_port: int
    agent_port: int
    tmp: Path

    def worker(self, **kw: object) -> CallbackWorker:
        rt = self.rt
        return CallbackWorker(
            self.callbacks,
            rt.b2bua,
            rt.resolver,
            rt.resolver.extension_calls,  # type: ignore[arg-type]  # the OutboundCalls
            self.app.db,
            rt.credentials,
            rt.lookup,
            self.app.bus,
            poll_interval=0.2,
            **kw,  # type: ignore[arg-type]
        )

    def cmd(self, name: str, port: int, calls: int = 1, remote: str = "") -> list[str]:
        return sipp_command(
            remote,
            workdir=self.tmp,
            local_port=port,
            calls=calls,
            timeout=25,
            scenario_file=self.tmp / f"{name}.xml",
            name=name,
            extra=("-mp", str(sipp_media_port())),
        )

    async def register_agent(self) -> None:
        realm = self.seeded.realm
        (self.tmp / "reg.xml").write_text(register_scenario("101", realm, expires=600))
        cmd = self.cmd("reg", self.agent_port, remote=f"127.0.0.1:{self.rt.udp.port}")
        cmd += ["-au", "101", "-ap", PASSWORD, "-auth_uri", realm]
        run = await run_sipp(cmd, workdir=self.tmp, name="reg")
        assert run.stats.successful == 1, run.describe()
        assert self.rt.lookup(f"sip:101@{realm}")

    async def request(self, body: dict[str, object]) -> dict[str, object]:
        r = await self.client.post("/api/v1/callback-requests", json=body, headers=self.headers)
        assert r.status_code == 202, r.text
        data: dict[str, object] = r.json()
        return data

    async def status(self, request_id: object, want: str, within: float) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            r = await self.client.get(
                f"/api/v1/callback-requests/{request_id}", headers=self.headers
            )
            data: dict[str, object] = r.json()
            if data["status"] == want:
                return data
            if loop.time() > deadline:
                raise AssertionError(f"request still {data['status']}: {data}")
            await asyncio.sleep(0.1)

    async def call_employee(
        self,
        agent_xml: str,
        customer_xml: str,
        want: str,
        within: float,
        *,
        calls: int = 1,
        **worker: object,
    ) -> tuple[dict[str, object], SippRun, SippRun]:
        """A callback request for employee 101 (registered here) to CUSTOMER: SIPp plays 101's
        phone and the customer behind the trunk; returns the request once ``want`` and both
        SIPp runs."""
        await self.register_agent()
        (self.tmp / "agent.xml").write_text(agent_xml)
        (self.tmp / "customer.xml").write_text(customer_xml)
        agent_cmd = self.cmd("agent", self.agent_port, calls=calls)
        customer_cmd = self.cmd("customer", self.trunk_port, calls=calls)
        agent = await start_sipp_bound(agent_cmd, workdir=self.tmp, port=self.agent_port)
        customer = await start_sipp_bound(customer_cmd, workdir=self.tmp, port=self.trunk_port)
        placing = self.worker(**worker)
        try:
            made = await self.request(
                {"phone": CUSTOMER, "employee_id": str(self.seeded.employee_id)}
            )
            await placing.start()
            reached = await self.status(made["id"], want, within)
            agent_run = await finish_sipp(agent, agent_cmd, workdir=self.tmp, name="agent")
            customer_run = await finish_sipp(
                customer, customer_cmd, workdir=self.tmp, name="customer"
            )
        finally:
            await placing.stop()
            for proc in (agent, customer):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        return reached, agent_run, customer_run


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    app = await sqlite_container(tmp_path)
    callbacks = app.callbacks
    seeded = await seed_account(app, "alpha")
    trunk_port = free_port()
    await app.directory.create_trunk(
        seeded.principal,
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=trunk_port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],  # only an allow-list: never contacted
        ),
    )
    user = await app.accounts.create_user(
        seeded.account_id, email="a@alpha.example", name="A", role=Role.admin, password="x" * 12
    )
    token = await app.accounts.create_token(
        seeded.account_id, name="crm", role=Role.operator, created_by=user.id
    )
    rt = await start_pbx(
        app, PbxConfig(sip_port=free_port(), media_timeout=0, digest_algorithms=("MD5",))
    )
    await rt.callbacks.stop()  # each test runs its own worker, with test timings
    api = create_app(app)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            yield Rig(
                app,
                rt,
                seeded,
                callbacks,
                client,
                {"Authorization": f"Bearer {token.secret}"},
                trunk_port,
                free_port(),
                tmp_path,
            )
        finally:
            await rt.stop()
            await app.aclose()  # the journal's writes land before the db goes


async def _journal(app: Container, call_id: str) -> tuple[CallRecord, list[CallLeg]]:
    for _ in range(200):
        await app.journal.flush()
        async with app.db.read() as s:
            row = await s.scalar(select(CallRecord).where(CallRecord.call_id == call_id))
            legs = (
                list(await s.scalars(select(CallLeg).where(CallLeg.call_pk == row.id)))
                if row is not None
                else []
            )
        if row is not None and row.ended_at is not None:
            return row, legs
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} never closed in the journal")


async def test_callback_rings_the_agent_then_the_customer_and_bridges(rig: Rig) -> None:
    agent_pcap, customer_pcap = rig.tmp / "a440.pcap", rig.tmp / "c880.pcap"
    sent = sippkit.write_tone_pcap(agent_pcap, 440, TONE_SECONDS, ssrc=0x1111)
    sippkit.write_tone_pcap(customer_pcap, 880, TONE_SECONDS, ssrc=0x2222)
    await rig.register_agent()
    play = f'<nop><action><exec play_pcap_audio="{agent_pcap}"/></action></nop>'
    (rig.tmp / "agent.xml").write_text(AGENT_HANGS_UP.replace("PLAY_HERE", play))
    (rig.tmp / "customer.xml").write_text(_checked_from(sippkit.uas_answer(pcap=customer_pcap)))
    agent_cmd = rig.cmd("agent", rig.agent_port)
    customer_cmd = rig.cmd("customer", rig.trunk_port)
    agent = await start_sipp_bound(agent_cmd, workdir=rig.tmp, port=rig.agent_port)
    customer = await start_sipp_bound(customer_cmd, workdir=rig.tmp, port=rig.trunk_port)
    worker = rig.worker()
    try:
        made = await rig.request(
            {"phone": "8 916 123-45-67", "number": NUMBER, "params": {"utm_source": "site"}}
        )
        await worker.start()
        # Connected: both engine legs receive their peer's tone and send the other's.
        call = None
        for _ in range(300):
            call = next(iter(rig.rt.b2bua.originated.values()), None)
            if call is not None and call.connected:
                break
            await asyncio.sleep(0.03)
        assert call is not None and call.connected and call.agent and call.customer
        want = int(sent * 0.6)
        for _ in range(200):
            a = await rig.rt.engine.stats(call.agent.media_id)
            b = await rig.rt.engine.stats(call.customer.media_id)
            if min(a.rx_packets, a.tx_packets, b.rx_packets, b.tx_packets) >= want:
                break
            await asyncio.sleep(0.05)
        assert min(a.rx_packets, b.rx_packets) >= want, (a, b)  # both peers reached the relay
        assert min(a.tx_packets, b.tx_packets) >= want, (a, b)  # … and were relayed across
        done = await rig.status(made["id"], "completed", 15)
        agent_run = await finish_sipp(agent, agent_cmd, workdir=rig.tmp, name="agent")
        customer_run = await finish_sipp(customer, customer_cmd, workdir=rig.tmp, name="customer")
        assert agent_run.stats.successful == 1, agent_run.describe()
        assert customer_run.stats.successful == 1, customer_run.describe()
        await asyncio.wait_for(rig.rt.b2bua.wait_idle(), 10)
    finally:
        await worker.stop()
        for proc in (agent, customer):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    assert done["attempts"] == 1 and done["call_ids"] == [call.call_id]
    assert done["last_outcome"] == "connected" and done["phone"] == CUSTOMER
    row, legs = await _journal(rig.app, call.call_id)
    assert row.direction is Direction.callback and row.disposition is Disposition.answered
    assert row.caller == CUSTOMER and row.dialed == NUMBER
    assert row.answered_by == rig.seeded.employee_id
    assert row.tracking == {"utm_source": "site"}
    assert {leg.leg_id.rsplit(".", 1)[-1] for leg in legs} == {"a0t0", "b"}
    assert all(leg.answered_at is not None for leg in legs)


async def test_customer_never_answers_retried_then_failed(rig: Rig) -> None:
    failed, agent_run, customer_run = await rig.call_employee(
        sippkit.uas_answer(), sippkit.uas_ring_forever(), "failed", 30, calls=2,
        retry=Retry(max_attempts=2, interval=0.5), then_timeout=1.5,
    )  # fmt: skip
    assert agent_run.stats.successful == 2, agent_run.describe()
    assert customer_run.stats.successful == 2, customer_run.describe()
    assert failed["attempts"] == 2 and failed["failed_side"] == "customer"
    assert failed["last_outcome"] == "then_no_answer"
    call_ids = failed["call_ids"]
    assert isinstance(call_ids, list) and len(call_ids) == 2
    for call_id in call_ids:
        row, legs = await _journal(rig.app, str(call_id))
        assert row.direction is Direction.callback and row.disposition is Disposition.missed
        assert row.answered_at is None and len(legs) == 2


async def test_the_customers_carrier_challenges_and_gets_the_trunks_credentials(
    rig: Rig,
) -> None:
    # The PBX places the customer side itself (originate.py): a 401 from the carrier is
    # answered with the trunk's account, checked by SIPp's verifyauth.
    p = rig.seeded.principal
    [trunk] = (await rig.app.directory.list_trunks(p)).items
    await rig.app.directory.update_trunk(
        p, trunk.id, TrunkPatch(username=CARRIER_USER, password=CARRIER_PASSWORD)
    )
    done, agent_run, customer_run = await rig.call_employee(
        AGENT_HANGS_UP.replace("PLAY_HERE", ""), carrier_xml(401, accept=True), "completed", 20
    )
    assert agent_run.stats.successful == 1, agent_run.describe()
    assert customer_run.stats.successful == 1, customer_run.describe()
    assert customer_run.stats.failed == 0, customer_run.describe()
    assert done["attempts"] == 1 and done["last_outcome"] == "connected"


async def test_the_agent_hears_ringback_then_the_customers_carrier_announcement(
    rig: Rig,
) -> None:
    # 101 answers the callback (its media is the test's socket); the customer's carrier rings
    # (180), then announces (183 with SDP, 880 Hz) and refuses (480). 101 hears our ringback
    # while it rings, then the announcement — not silence, and not the ringback over it.
    from tests.e2e.test_early_media import EARLY, RINGBACK, carrier_early, heard
    from tests.e2e.test_listen import supervisor_ear
    from tests.media.engine.phone import Phone

    announcement = rig.tmp / "early880.pcap"
    sippkit.write_tone_pcap(announcement, EARLY, 1.0, ssrc=0x880)
    carrier = carrier_early(
        announcement, ring_ms=1500, silent_ms=1500, final="480 Temporarily Unavailable"
    )
    ear = Phone()
    try:
        failed, agent_run, customer_run = await rig.call_employee(
            supervisor_ear(ear.port), carrier, "failed", 30,
            retry=Retry(max_attempts=1, interval=0.5),
        )  # fmt: skip
    finally:
        ear.close()
    assert agent_run.stats.successful == 1, agent_run.describe()  # our BYE after the 480
    assert customer_run.stats.successful == 1, customer_run.describe()
    assert failed["failed_side"] == "customer" and failed["last_outcome"] == "then_no_answer"
    assert heard(ear) == [RINGBACK, EARLY]
