"""End to end: an extension hands the customer it called to a colleague.

SIPp as extension 101 dials out through the SIPp carrier (digest, as in
test_outbound_transfer.py), speaks, and presses "transfer" (REFER from the caller's side,
``Refer-To: 102``). The customer's media is a Python RTP socket; 102 is a registered SIPp
phone that answers and speaks. The customer's leg becomes the call's caller, 102 rings for
it, and the recording goes on. Or 101 parks the customer (``Refer-To: *51``): they hear
our music, and 102's SIPp phone dials ``*51`` and takes the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.schemes_kit import dialer_xml, until
from tests.e2e.test_early_media import _cmd as _media_cmd
from tests.e2e.test_early_media import _sdp, heard, tones_in
from tests.e2e.test_outbound_transfer import CALLER_XML, NSK
from tests.e2e.test_outbound_transfer import app as app  # the fixture
from tests.media.engine.phone import Phone
from tests.pbx.conftest import PASSWORD, Seeded, seed_account
from tests.sip.peers.harness import (
    SIPP,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    start_sipp,
    wait_bound,
)
from zvonar.calls.events import Direction, Disposition, LegEndReason
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import EmployeeIn, NumberIn, TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.media.wav import parse_wav
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import PbxRuntime, start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


VOICE_101, VOICE_102 = 440, 1000  # Hz
CUSTOMER = "+73831234567"  # what 101 dials (83831234567), normalized


def refer_after_talk(media_port: int, pcap: Path, to: str = "102") -> str:
    """101 dials out (as CALLER_XML), speaks (``pcap``), then REFERs the customer to ``to``:
    202, NOTIFY 100 and 200 (each answered), our BYE."""
    xml = CALLER_XML.replace("SDP_HERE", _sdp(media_port))
    head, _, _ = xml.partition('<pause milliseconds="500"/>')
    answer_notify = """<recv request="NOTIFY"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>"""
    return f"""{head}<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="1300"/>
  <send retrans="500"><![CDATA[

      REFER sip:83831234567@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:101@alpha.zvonar>;tag=[pid]O[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 3 REFER
      Contact: <sip:101@[local_ip]:[local_port];transport=[transport]>
      Refer-To: <sip:{to}@alpha.zvonar>
      Referred-By: <sip:101@alpha.zvonar>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="202"/>
  {answer_notify}
  {answer_notify}
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>
</scenario>
"""


@dataclass
class Desk:
    """Account alpha: 101 (who dials out), 102 Boris (registered on ``boris_port``), a trunk
    to the SIPp carrier on ``carrier_port``; the PBX; the customer's RTP socket."""

    alpha: Seeded
    rt: PbxRuntime
    remote: str
    carrier_port: int
    boris_port: int
    ear: Phone
    voice_101: Path
    voice_102: Path


@contextlib.asynccontextmanager
async def _desk(app: Container, tmp_path: Path) -> AsyncIterator[Desk]:
    alpha = await seed_account(app, "alpha")
    await app.directory.create_employee(
        alpha.principal, EmployeeIn(name="Boris", extension="102", sip_password=PASSWORD)
    )
    carrier_port = free_port()
    trunk = await app.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=carrier_port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],  # only an allow-list: never contacted
        ),
    )
    await app.directory.add_number(alpha.principal, NumberIn(number=NSK, trunk_id=trunk.id))
    pbx_port, boris_port = free_port(), free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    ear = Phone()  # the customer's media
    voice_101, voice_102 = tmp_path / "v101.pcap", tmp_path / "v102.pcap"
    sippkit.write_tone_pcap(voice_101, VOICE_101, 1.0, ssrc=0x101)
    sippkit.write_tone_pcap(voice_102, VOICE_102, 1.0, ssrc=0x102)
    try:
        (tmp_path / "register.xml").write_text(register_scenario("102", alpha.realm))
        reg = await run_sipp(
            _media_cmd(tmp_path, remote, "register", boris_port, "-au", "102", "-ap", PASSWORD,
                       "-auth_uri", alpha.realm),
            workdir=tmp_path, name="register",
        )  # fmt: skip
        assert reg.stats.successful == 1, reg.describe()
        yield Desk(alpha, rt, remote, carrier_port, boris_port, ear, voice_101, voice_102)
    finally:
        await rt.stop()
        ear.close()


async def test_an_extension_hands_the_customer_it_called_to_a_colleague(
    app: Container, tmp_path: Path
) -> None:
    """101 calls a customer, talks, and transfers them (REFER, as a softphone's "transfer"
    button) to 102: 101 is hung up, the customer hears 101 then 102 on the same stream and
    hangs up; 102 gets our BYE. One journal row: outbound, answered, one transfer, the
    customer's and 102's legs; one recording with 101's then 102's voice on its left channel."""
    async with _desk(app, tmp_path) as desk:
        remote = desk.remote
        (tmp_path / "boris.xml").write_text(sippkit.uas_answer(pcap=desk.voice_102))
        boris_cmd = _media_cmd(tmp_path, "", "boris", desk.boris_port)
        boris = await start_sipp(boris_cmd, workdir=tmp_path)
        (tmp_path / "carrier.xml").write_text(sippkit.uas_talk(4000, sdp=_sdp(desk.ear.port)))
        carrier_cmd = _media_cmd(tmp_path, "", "carrier", desk.carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(desk.carrier_port)
        await wait_bound(desk.boris_port)
        (tmp_path / "caller.xml").write_text(refer_after_talk(free_port(), desk.voice_101))
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"83831234567@{remote}")
        caller = await run_sipp(
            _media_cmd(tmp_path, remote, "caller", free_port(), *auth),
            workdir=tmp_path,
            name="caller",
        )
        customer = await finish_sipp(
            carrier, carrier_cmd, workdir=tmp_path, name="carrier", wait=20
        )
        colleague = await finish_sipp(boris, boris_cmd, workdir=tmp_path, name="boris", wait=10)
        await asyncio.wait_for(desk.rt.b2bua.wait_idle(), 10)
    assert caller.stats.successful == 1, caller.describe()  # 202, NOTIFYs, our BYE
    assert customer.stats.successful == 1, customer.describe()
    assert colleague.stats.successful == 1, colleague.describe()  # rung, our BYE at the end
    assert heard(desk.ear, (VOICE_101, VOICE_102)) == [VOICE_101, VOICE_102]
    alpha = desk.alpha
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.direction is Direction.outbound and call.disposition is Disposition.answered
    assert [t["kind"] for t in call.transfers] == ["blind"]
    legs = (await app.journal.get_call(alpha.principal, call.id)).legs
    assert [(leg.target_display, leg.answered_at is not None, leg.end_reason) for leg in legs] == [
        (CUSTOMER, True, LegEndReason.completed),  # its row ends when the customer hangs up
        ("Boris", True, LegEndReason.completed),
    ]
    assert call.recording_path is not None
    wav = parse_wav((app.settings.data_dir / call.recording_path).read_bytes())
    left = [v * 32768 for v in wav.samples()[0::2]]
    assert tones_in(left, (VOICE_101, VOICE_102)) == [VOICE_101, VOICE_102]


async def test_an_extension_parks_the_customer_it_called_and_a_colleague_takes_it(
    app: Container, tmp_path: Path
) -> None:
    """101 calls a customer, talks, and parks them (REFER to ``*51``, as a park key): 101
    is hung up, the customer hears our music; 102's phone dials ``*51`` with digest and
    gets the call; the customer hangs up, 102 gets our BYE. The journal: outbound,
    answered, a blind transfer to the slot, the customer's and 102's legs answered."""
    async with _desk(app, tmp_path) as desk:
        remote = desk.remote
        (tmp_path / "carrier.xml").write_text(sippkit.uas_talk(4500, sdp=_sdp(desk.ear.port)))
        carrier_cmd = _media_cmd(tmp_path, "", "carrier", desk.carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(desk.carrier_port)
        (tmp_path / "caller.xml").write_text(
            refer_after_talk(free_port(), desk.voice_101, to="*51")
        )
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"83831234567@{remote}")
        caller = await run_sipp(
            _media_cmd(tmp_path, remote, "caller", free_port(), *auth),
            workdir=tmp_path,
            name="caller",
        )
        assert caller.stats.successful == 1, caller.describe()  # 202, NOTIFYs, our BYE
        (call,) = desk.rt.b2bua.calls.values()
        await until(lambda: call.parked is not None and call.parked.settled)
        parked_at = len(desk.ear.received)
        await asyncio.sleep(0.3)
        assert len(desk.ear.received) - parked_at > 5, "the parked customer hears nothing"
        (tmp_path / "take.xml").write_text(dialer_xml("*51", "102", desk.alpha.realm))
        take_cmd = _media_cmd(tmp_path, remote, "take", desk.boris_port, "-au", "102", "-ap",
                              PASSWORD, "-auth_uri", f"*51@{remote}")  # fmt: skip
        taken = await run_sipp(take_cmd, workdir=tmp_path, name="take")  # our BYE at the end
        customer = await finish_sipp(
            carrier, carrier_cmd, workdir=tmp_path, name="carrier", wait=20
        )
        await asyncio.wait_for(desk.rt.b2bua.wait_idle(), 10)
    assert taken.stats.successful == 1, taken.describe()
    assert customer.stats.successful == 1, customer.describe()
    alpha = desk.alpha
    (row,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert row.direction is Direction.outbound and row.disposition is Disposition.answered
    assert [(t["kind"], t["to_kind"], t["to_display"]) for t in row.transfers] == [
        ("blind", "park", "*51")
    ]
    legs = (await app.journal.get_call(alpha.principal, row.id)).legs
    assert [(leg.answered_at is not None, leg.end_reason) for leg in legs] == [
        (True, LegEndReason.completed),  # the customer's
        (True, LegEndReason.completed),  # 102's, who took the call from the slot
    ]
    assert legs[0].target_display == CUSTOMER
