"""End to end: session timers (RFC 4028) with a SIPp carrier that uses them.

The PBX runs with ``min_session_expires=2`` so sessions expire in seconds; 101 (SIPp UAS)
answers the carrier's calls and waits for the PBX's BYE.

* The carrier *requires* timers (``Require: timer``; a 420 before, every such call lost) and
  refreshes itself: our 200 must say ``Session-Expires: 6;refresher=uac`` with
  ``Require: timer``; its UPDATE at 2.5 s is answered with the timer again; then it falls
  silent, and the PBX hangs up both sides min(32, 6/3) = 2 s before the renewed expiry —
  ~6.5 s after the answer (a PBX that ignored the refresh would hang up at ~4 s, one that
  ignored timers never).
* The carrier makes us refresh (``refresher=uas`` and ``Allow: UPDATE``): it must get an
  UPDATE with ``Session-Expires: 4;refresher=uac`` every ~2 s; it takes two, then hangs up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.pbxkit import call_101
from tests.e2e.test_early_media import TALK
from tests.e2e.test_early_media import app as app  # the fixture
from tests.e2e.test_listen import agent_answers
from tests.pbx.conftest import NUMBER, seed_account
from tests.sip.peers.harness import SIPP, SippRun
from zvonar.accounts.access import Principal
from zvonar.calls.events import Disposition, HangupSide
from zvonar.container import Container
from zvonar.journal.service import CallFilter
from zvonar.pbx.runtime import PbxRuntime

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

_INVITE = """<send retrans="500"><![CDATA[

      INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+79160000001@[local_ip]:[local_port]>;tag=[pid]UAC[call_number]
      To: <sip:{number}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>
      {timer}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      {sdp}

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>"""

_ACK = """<send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>"""


def _check(header: str, regexp: str, var: str) -> str:
    return (
        f'<ereg regexp="{regexp}" search_in="hdr" header="{header}:" check_it="true" '
        f'assign_to="{var}"/>'
    )


def carrier_refreshes_then_falls_silent(number: str) -> str:
    timer = "Supported: timer\n      Require: timer\n      Session-Expires: 6;refresher=uac"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier requiring timers, refreshing once">
  {_INVITE.format(number=number, timer=timer, sdp=sippkit._SDP)}
  <recv response="200" rrs="true">
    <action>
      {_check("Session-Expires", "^ *6;refresher=uac$", "a")}
      {_check("Require", "timer", "b")}
    </action>
  </recv>
  {_ACK}
  <pause milliseconds="2500"/>
  <send retrans="500"><![CDATA[

      UPDATE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 UPDATE
      Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>
      Session-Expires: 6;refresher=uac
      Supported: timer
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200">
    <action>{_check("Session-Expires", "^ *6;refresher=uac$", "c")}</action>
  </recv>
  <recv request="BYE" timeout="10000"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>
  <Reference variables="a,b,c"/>
</scenario>
"""


def _refreshed_by_pbx(var: str) -> str:
    return f"""<recv request="UPDATE" timeout="5000">
    <action>{_check("Session-Expires", "^ *4;refresher=uac$", var)}</action>
  </recv>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Session-Expires: 4;refresher=uac
      Require: timer
      Content-Length: 0

  ]]></send>"""


def carrier_makes_us_refresh(number: str) -> str:
    timer = (
        "Supported: timer\n      Session-Expires: 4;refresher=uas\n"
        "      Allow: INVITE, ACK, CANCEL, BYE, UPDATE"
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier asking us to refresh">
  {_INVITE.format(number=number, timer=timer, sdp=sippkit._SDP)}
  <recv response="200" rrs="true">
    <action>{_check("Session-Expires", "^ *4;refresher=uas$", "a")}</action>
  </recv>
  {_ACK}
  {_refreshed_by_pbx("b")}
  {_refreshed_by_pbx("c")}
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+79160000001@[local_ip]:[local_port]>;tag=[pid]UAC[call_number]
      To: <sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
  <Reference variables="a,b,c"/>
</scenario>
"""


async def _carrier_calls_101(
    app: Container, tmp_path: Path, carrier: str
) -> tuple[PbxRuntime, SippRun, SippRun, Principal]:
    """101 answers (and waits for our BYE); the carrier's scenario calls the number."""
    alpha = await seed_account(app, "alpha")
    pcap = tmp_path / "talk.pcap"
    sippkit.write_tone_pcap(pcap, TALK, 0.5, ssrc=0x101)
    rt, runs = await call_101(
        app,
        tmp_path,
        alpha,
        phone=agent_answers(ring_ms=300, pcap=pcap),
        carrier=carrier,
        min_session_expires=2,
    )
    return rt, runs["carrier"], runs["phone"], alpha.principal


async def test_a_carrier_that_requires_timers_and_stops_refreshing_is_hung_up(
    app: Container, tmp_path: Path
) -> None:
    rt, caller, phone, principal = await _carrier_calls_101(
        app, tmp_path, carrier_refreshes_then_falls_silent(NUMBER.lstrip("+"))
    )
    assert caller.stats.successful == 1, caller.describe()  # 200 and the UPDATE's 200 checked
    assert phone.stats.successful == 1, phone.describe()  # 101 got our BYE too
    assert rt.ua.sessions.expired == 1
    (call,) = (await app.journal.list_calls(principal, CallFilter())).items
    assert call.disposition is Disposition.answered and call.hangup is HangupSide.system
    talked = call.talk_seconds
    assert talked is not None and 5.5 <= talked <= 8.0, talked  # renewed at 2.5 s, then 4 s


async def test_a_carrier_that_makes_us_refresh_gets_updates(app: Container, tmp_path: Path) -> None:
    rt, caller, phone, _ = await _carrier_calls_101(
        app, tmp_path, carrier_makes_us_refresh(NUMBER.lstrip("+"))
    )
    assert caller.stats.successful == 1, caller.describe()  # two UPDATEs with our timer
    assert phone.stats.successful == 1, phone.describe()
    assert rt.ua.sessions.refreshed == 2 and rt.ua.sessions.expired == 0
