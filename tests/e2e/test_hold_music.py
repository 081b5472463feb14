"""End to end: the customer hears hold music while the employee holds the call.

A customer (SIPp, its media a Python RTP socket) calls the number; employee 101 (a SIPp
phone) answers, holds the call (re-INVITE ``a=sendonly``, RFC 3264 §8.4) for 1.5 s, resumes
it (``a=sendrecv``) and stays silent until the customer hangs up 2.5 s later. The customer
must get audio only while held: the account's hold music, then nothing once resumed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.test_early_media import _cmd, _sdp
from tests.e2e.test_early_media import app as app  # the fixture
from tests.media.engine.phone import Phone, pcm_samples
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
from zvonar.container import Container
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

HOLD_MS, AFTER_MS = 1500, 2500


def agent_holds() -> str:
    held = sippkit._SDP.replace("a=fmtp:101 0-15", "a=fmtp:101 0-15\n      a=sendonly")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="101 answers, holds, resumes">
  {sippkit.RECV_INVITE_KEEP_FROM}
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv request="ACK"/>
  <pause milliseconds="300"/>
  {sippkit.uas_request("INVITE", 2, held)}
  <recv response="200">
    <action><ereg regexp="a=recvonly" search_in="body" check_it="true" assign_to="ans"/></action>
  </recv>
  {sippkit.uas_request("ACK", 2)}
  <pause milliseconds="{HOLD_MS}"/>
  {sippkit.uas_request("INVITE", 3, sippkit._SDP)}
  <recv response="200"/>
  {sippkit.uas_request("ACK", 3)}
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>
  <Reference variables="ans"/>
</scenario>
"""


async def test_the_customer_hears_hold_music_only_while_held(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    phone_port = free_port()
    ear = Phone()
    try:
        (tmp_path / "register.xml").write_text(register_scenario("101", alpha.realm, expires=300))
        reg = await run_sipp(
            _cmd(tmp_path, remote, "register", phone_port, "-au", "101", "-ap", PASSWORD,
                 "-auth_uri", alpha.realm),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        (tmp_path / "phone.xml").write_text(agent_holds())
        phone_cmd = _cmd(tmp_path, "", "phone", phone_port, "-trace_msg")
        phone = await start_sipp(phone_cmd, workdir=tmp_path)
        await wait_bound(phone_port)
        caller_xml = sippkit.uac(NUMBER.lstrip("+"), talk_ms=300 + HOLD_MS + AFTER_MS)
        (tmp_path / "caller.xml").write_text(caller_xml.replace(sippkit._SDP, _sdp(ear.port), 1))
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port()), workdir=tmp_path, name="caller"
        )
        held = await finish_sipp(phone, phone_cmd, workdir=tmp_path, name="phone", wait=10)
        assert caller.stats.successful == 1, caller.describe()
        assert held.stats.successful == 1, held.describe()  # our answers: recvonly, then 200
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
        ear.close()
    # 20 ms packets: about HOLD_MS of music (the hold's round trips aside), none after the
    # resume although the customer stayed on the line 2.5 s longer; and music, not silence.
    packets = len(ear.received)
    assert 0.6 * HOLD_MS / 20 <= packets <= 1.3 * HOLD_MS / 20, packets
    samples = pcm_samples(ear.audio())
    assert max(abs(v) for v in samples) > 2000
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.answered_at is not None
