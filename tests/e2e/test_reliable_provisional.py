"""End to end: reliable provisional responses (RFC 3262, 100rel) with a carrier that uses
them, both ways.

* outbound: extension 101 dials out; the SIPp carrier answers our INVITE (which says
  ``Supported: 100rel``) with a reliable 183 (``Require: 100rel``, ``RSeq: 7``, early media)
  and goes on only once our PRACK (``RAck: 7 1 INVITE``) arrives; then 200.
* inbound: the carrier's INVITE *requires* 100rel (it got 420 before); 101 rings for 0.7 s;
  our 180 must come reliably (``Require: 100rel`` and an ``RSeq``), the carrier PRACKs it,
  then the call is answered and talks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.test_early_media import EARLY, TALK, _cmd, _dial_out, heard
from tests.e2e.test_early_media import app as app  # the fixture
from tests.e2e.test_listen import agent_answers
from tests.media.engine.phone import Phone
from tests.pbx.conftest import NUMBER, PASSWORD, seed_account
from tests.sip.peers.harness import (
    SIPP,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    start_sipp,
    wait_bound,
)
from zvonar.calls.events import Disposition
from zvonar.container import Container
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


def carrier_reliable(early: Path, talk: Path) -> str:
    """A carrier that sends its 183 reliably and answers only after the PRACK."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier with a reliable 183">
  <recv request="INVITE">
    <action>
      <ereg regexp="100rel" search_in="hdr" header="Supported:" check_it="true" assign_to="s"/>
      <ereg regexp=".*" search_in="hdr" header="Via:" assign_to="inv_via"/>
      <ereg regexp=".*" search_in="hdr" header="CSeq:" assign_to="inv_cseq"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 183 Session Progress{sippkit.REPLY}
      Require: 100rel
      RSeq: 7
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv request="PRACK">
    <action>
      <ereg regexp="^ *7 1 INVITE$" search_in="hdr" header="RAck:" check_it="true" assign_to="r"/>
    </action>
  </recv>
  {sippkit.OK_IN_DIALOG}
  <nop><action><exec play_pcap_audio="{early}"/></action></nop>
  <pause milliseconds="1200"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      Via: [$inv_via]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: [$inv_cseq]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv request="ACK"/>
  <nop><action><exec play_pcap_audio="{talk}"/></action></nop>
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>
  <Reference variables="s,r"/>
</scenario>
"""


def caller_requiring_100rel(number: str, talk_ms: int) -> str:
    """A carrier's INVITE with ``Require: 100rel``: it PRACKs our 180, then talks."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier requiring 100rel">
  <send retrans="500"><![CDATA[

      INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+79160000001@[local_ip]:[local_port]>;tag=[pid]UAC[call_number]
      To: <sip:{number}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>
      Require: 100rel
      Supported: 100rel
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" rrs="true">
    <action>
      <ereg regexp="100rel" search_in="hdr" header="Require:" check_it="true" assign_to="q"/>
      <ereg regexp="[0-9]+" search_in="hdr" header="RSeq:" check_it="true" assign_to="rseq"/>
    </action>
  </recv>
  <send retrans="500"><![CDATA[

      PRACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 PRACK
      RAck: [$rseq] 1 INVITE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
  <Reference variables="q"/>
</scenario>
"""


async def test_a_carriers_reliable_183_is_pracked_and_its_early_media_heard(
    app: Container, tmp_path: Path
) -> None:
    early, talk = tmp_path / "early.pcap", tmp_path / "talk.pcap"
    sippkit.write_tone_pcap(early, EARLY, 1.0, ssrc=0x880)
    sippkit.write_tone_pcap(talk, TALK, 1.0, ssrc=0x1000)
    ear = Phone()
    try:  # the carrier's SIPp fails the call without our PRACK (and its RAck)
        await _dial_out(app, tmp_path, ear, carrier_reliable(early, talk), refused=False)
    finally:
        ear.close()
    assert heard(ear) == [EARLY, TALK]


async def test_an_invite_that_requires_100rel_gets_a_reliable_180(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    pbx_port, phone_port = free_port(), free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    pcap = tmp_path / "talk.pcap"
    sippkit.write_tone_pcap(pcap, TALK, 0.5, ssrc=0x101)
    try:
        (tmp_path / "register.xml").write_text(register_scenario("101", alpha.realm))
        reg = await run_sipp(
            _cmd(tmp_path, remote, "register", phone_port, "-au", "101", "-ap", PASSWORD,
                 "-auth_uri", alpha.realm),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        (tmp_path / "phone.xml").write_text(agent_answers(ring_ms=700, pcap=pcap))
        phone_cmd = _cmd(tmp_path, "", "phone", phone_port)
        phone = await start_sipp(phone_cmd, workdir=tmp_path)
        await wait_bound(phone_port)
        (tmp_path / "caller.xml").write_text(caller_requiring_100rel(NUMBER.lstrip("+"), 500))
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port()), workdir=tmp_path, name="caller"
        )
        answered = await finish_sipp(phone, phone_cmd, workdir=tmp_path, name="phone", wait=10)
        assert caller.stats.successful == 1, caller.describe()  # reliable 180, PRACK's 200
        assert answered.stats.successful == 1, answered.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
        assert rt.ua.reliable.gave_up == 0  # PRACKed: never retransmitted to the end
    finally:
        await rt.stop()
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered
