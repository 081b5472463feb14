"""End to end: early media (RFC 3960's gateway model) from a SIPp carrier reaches the caller.

* inbound: a scheme rings an external number through the carrier, then 101. The carrier
  answers 183 with SDP, plays 880 Hz (its "ringback"), stays silent, then says 486; 101 (a
  SIPp UAS) rings 1.2 s and answers with 1000 Hz. The caller (SIPp for signalling, a Python
  RTP socket for its media) must get a 183 with our SDP (no 180), hear 880 Hz, then our
  425 Hz ringback while 101 rings, then 1000 Hz — and the 200 must carry the 183's SDP byte
  for byte (RFC 3261 §13.2.1). The media timeout is shorter than the silent early phase: a
  caller that sends nothing before it is answered (as phones do) is not cut off.
* voicemail after early media: the carrier announces and refuses (480), the scheme ends in
  voicemail; the PBX answers the caller on the leg it heard the announcement on, with the
  183's SDP, plays the greeting and hangs up.
* outbound: extension 101 dials out; the carrier announces (183, 880 Hz) and refuses with
  480. The extension's phone hears the announcement before the 480.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.test_outbound_transfer import CALLER_XML
from tests.media.engine.phone import Phone, dominant, pcm_samples, tone_power
from tests.pbx.conftest import NUMBER, PASSWORD, seed_account
from tests.sip.peers.harness import (
    SIPP,
    finish_sipp,
    free_port,
    register_scenario,
    run_sipp,
    sipp_command,
    sipp_media_port,
    start_sipp,
    wait_bound,
)
from zvonar.calls.events import Direction, Disposition, LegEndReason, TargetKind
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.journal.service import CallFilter
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.runtime import start_pbx

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]

EXTERNAL = "+73831234567"
EARLY, RINGBACK, TALK = 880, 425, 1000  # Hz: the carrier's early media, ours, 101's voice
MEDIA_TIMEOUT = 2.5  # s; the caller sends nothing for longer than that before the answer


def _sdp(port: int) -> str:
    return f"""v=0
      o=caller 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio {port} RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000"""


def carrier_early(pcap: Path, *, silent_ms: int, final: str) -> str:
    """183 with SDP, ``pcap`` played, ``silent_ms`` of nothing, then ``final``."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier with early media">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 183 Session Progress{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{silent_ms}"/>
  <send><![CDATA[

      SIP/2.0 {final}{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
</scenario>
"""


def phone_rings_then_talks(pcap: Path, *, ring_ms: int) -> str:
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="101 rings, answers, talks">
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


# SIPp fails the call on anything unexpected: a 180 from us, or a 183 without SDP.
_EARLY_183 = (
    '<recv response="183"><action><ereg regexp="m=audio [0-9]+" search_in="body" '
    'check_it="true" assign_to="early"/></action></recv>'
)


def caller_inbound(number: str, media_port: int, *, talk_ms: int) -> str:
    xml = sippkit.uac(number, talk_ms=talk_ms)
    xml = xml.replace(sippkit._SDP, _sdp(media_port), 1)
    xml = xml.replace(
        '<recv response="180" optional="true"/>\n  <recv response="183" optional="true"/>',
        _EARLY_183,
        1,
    )
    return xml.replace("</scenario>", '<Reference variables="early"/></scenario>', 1)


def caller_to_voicemail(number: str, media_port: int) -> str:
    """Call ``number``, hear early media (183 with SDP), get answered, wait for our BYE."""
    xml = caller_inbound(number, media_port, talk_ms=0)
    head, _, _ = xml.partition("<pause")
    return f"""{head}<recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <Reference variables="early"/>
</scenario>
"""


def caller_outbound(media_port: int) -> str:
    """101 dials out (digest, as CALLER_XML), hears the announcement, gets 480, ACKs it."""
    xml = CALLER_XML.replace("SDP_HERE", _sdp(media_port))
    head, _, _ = xml.partition('<recv response="180" optional="true"/>')
    return f"""{head}{_EARLY_183}
  <recv response="480"/>
  <send><![CDATA[

      ACK sip:83831234567@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <Reference variables="early"/>
</scenario>
"""


def heard(phone: Phone) -> list[int]:
    """What the phone heard, in order: the loudest of the three tones per 200 ms of received
    audio (quiet stretches skipped), runs collapsed."""
    samples = pcm_samples(phone.audio())
    order: list[int] = []
    for start in range(0, len(samples) - 1600, 1600):
        window = samples[start : start + 1600]
        if max(abs(v) for v in window) < 2000:
            continue
        tone = int(dominant(window, (EARLY, RINGBACK, TALK)))
        loud = tone_power(window, tone)
        others = [tone_power(window, f) for f in (EARLY, RINGBACK, TALK) if f != tone]
        if loud > 50 * max(others) and (not order or order[-1] != tone):
            order.append(tone)
    return order


def responses(workdir: Path, name: str) -> list[tuple[str, bytes]]:
    """(status line, body) of every response SIPp's message trace shows it received."""
    (log,) = workdir.glob(f"{name}_*_messages.log")
    out = []
    text = log.read_bytes().replace(b"\r\n", b"\n")
    for block in re.split(rb"\n-{20,} [^\n]*\n", b"\n" + text):
        meta, _, message = block.partition(b"\n\n")
        if b"message received" not in meta:
            continue
        head, _, body = message.partition(b"\n\n")
        status = head.split(b"\n", 1)[0]
        if status.startswith(b"SIP/2.0 "):
            out.append((status.decode(), body.strip(b"\n")))
    return out


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Container]:
    container = await sqlite_container(tmp_path)
    yield container
    await container.db.dispose()


def _cmd(tmp: Path, remote: str, name: str, port: int, *extra: str) -> list[str]:
    return sipp_command(
        remote, workdir=tmp, local_port=port, calls=1, timeout=25,
        scenario_file=tmp / f"{name}.xml", name=name,
        extra=("-mp", str(sipp_media_port()), *extra),
    )  # fmt: skip


async def _trunk(app: Container, principal: object, port: int) -> None:
    await app.directory.create_trunk(
        principal,  # type: ignore[arg-type]
        TrunkIn(
            name="carrier",
            host="127.0.0.1",
            port=port,
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.1"],  # never contacted: calls from it are not tested
        ),
    )


async def test_the_caller_hears_a_carriers_early_media_then_ringback_then_the_answer(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    carrier_port = free_port()
    await _trunk(app, alpha.principal, carrier_port)
    scheme = await app.routing.create_scheme(
        alpha.principal,
        "Mobile first",
        {
            "branches": {
                "working": [
                    {"type": "ring", "targets": [{"number": EXTERNAL}], "timeout": 15},
                    {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                ]
            },
            "final": {"type": "hangup"},
        },
    )
    await app.routing.assign(alpha.principal, alpha.number_id, scheme.id)
    early_pcap, talk_pcap = tmp_path / "early.pcap", tmp_path / "talk.pcap"
    sippkit.write_tone_pcap(early_pcap, EARLY, 1.0, ssrc=0x880)
    sippkit.write_tone_pcap(talk_pcap, TALK, 2.0, ssrc=0x1000)
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=MEDIA_TIMEOUT, digest_algorithms=("MD5",))
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
        (tmp_path / "phone.xml").write_text(phone_rings_then_talks(talk_pcap, ring_ms=1200))
        phone_cmd = _cmd(tmp_path, "", "phone", phone_port)
        phone = await start_sipp(phone_cmd, workdir=tmp_path)
        (tmp_path / "carrier.xml").write_text(
            carrier_early(early_pcap, silent_ms=3000, final="486 Busy Here")
        )
        carrier_cmd = _cmd(tmp_path, "", "carrier", carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(carrier_port)
        await wait_bound(phone_port)
        (tmp_path / "caller.xml").write_text(
            caller_inbound(NUMBER.lstrip("+"), ear.port, talk_ms=1000)
        )
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), "-trace_msg"),
            workdir=tmp_path,
            name="caller",
        )
        done = await finish_sipp(carrier, carrier_cmd, workdir=tmp_path, name="carrier", wait=20)
        rang = await finish_sipp(phone, phone_cmd, workdir=tmp_path, name="phone", wait=10)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert done.stats.successful == 1, done.describe()
        assert rang.stats.successful == 1, rang.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
        ear.close()

    early_sdp, invite_ok = _early_and_final_sdp(tmp_path)
    assert early_sdp.startswith(b"v=0") and invite_ok == [early_sdp]  # §13.2.1, byte for byte
    port = int(re.search(rb"m=audio (\d+)", early_sdp).group(1))  # type: ignore[union-attr]
    assert port not in (0, 9)
    assert heard(ear) == [EARLY, RINGBACK, TALK]

    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered
    view = await app.journal.get_call(alpha.principal, call.id)
    by_kind = {leg.target_kind: leg for leg in view.legs}
    assert by_kind[TargetKind.external].end_reason is LegEndReason.busy
    assert by_kind[TargetKind.external].answered_at is None
    assert by_kind[TargetKind.employee].answered_at is not None


def _early_and_final_sdp(workdir: Path) -> tuple[bytes, list[bytes]]:
    got = responses(workdir, "caller")
    statuses = [status.split(" ", 2)[1] for status, _ in got]
    assert "180" not in statuses, statuses
    early_sdp = next(body for status, body in got if status.startswith("SIP/2.0 183"))
    invite_ok = [body for status, body in got if status.startswith("SIP/2.0 200") and body]
    return early_sdp, invite_ok


async def test_voicemail_after_early_media_answers_on_the_same_leg(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    carrier_port = free_port()
    await _trunk(app, alpha.principal, carrier_port)
    scheme = await app.routing.create_scheme(
        alpha.principal,
        "Mobile, then voicemail",
        {
            "branches": {
                "working": [{"type": "ring", "targets": [{"number": EXTERNAL}], "timeout": 15}]
            },
            "final": {"type": "voicemail"},
        },
    )
    await app.routing.assign(alpha.principal, alpha.number_id, scheme.id)
    early_pcap = tmp_path / "early.pcap"
    sippkit.write_tone_pcap(early_pcap, EARLY, 1.0, ssrc=0x880)
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    ear = Phone()
    try:
        (tmp_path / "carrier.xml").write_text(
            carrier_early(early_pcap, silent_ms=300, final="480 Temporarily Unavailable")
        )
        carrier_cmd = _cmd(tmp_path, "", "carrier", carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(carrier_port)
        (tmp_path / "caller.xml").write_text(caller_to_voicemail(NUMBER.lstrip("+"), ear.port))
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), "-trace_msg"),
            workdir=tmp_path,
            name="caller",
        )
        done = await finish_sipp(carrier, carrier_cmd, workdir=tmp_path, name="carrier", wait=20)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert done.stats.successful == 1, done.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
        ear.close()
    early_sdp, invite_ok = _early_and_final_sdp(tmp_path)
    assert invite_ok == [early_sdp]
    assert heard(ear)[0] == EARLY
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is not Disposition.answered
    view = await app.journal.get_call(alpha.principal, call.id)
    (leg,) = view.legs
    assert leg.target_kind is TargetKind.external and leg.answered_at is None


async def test_an_extension_hears_the_carriers_announcement_before_its_refusal(
    app: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(app, "alpha")
    carrier_port = free_port()
    await _trunk(app, alpha.principal, carrier_port)
    early_pcap = tmp_path / "early.pcap"
    sippkit.write_tone_pcap(early_pcap, EARLY, 1.0, ssrc=0x880)
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=0, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    ear = Phone()
    try:
        (tmp_path / "carrier.xml").write_text(
            carrier_early(early_pcap, silent_ms=1500, final="480 Temporarily Unavailable")
        )
        carrier_cmd = _cmd(tmp_path, "", "carrier", carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(carrier_port)
        (tmp_path / "caller.xml").write_text(caller_outbound(ear.port))
        auth = ("-au", "101", "-ap", PASSWORD, "-auth_uri", f"83831234567@{remote}")
        caller = await run_sipp(
            _cmd(tmp_path, remote, "caller", free_port(), "-trace_msg", *auth),
            workdir=tmp_path,
            name="caller",
        )
        done = await finish_sipp(carrier, carrier_cmd, workdir=tmp_path, name="carrier", wait=20)
        assert caller.returncode == 0 and caller.stats.successful == 1, caller.describe()
        assert done.stats.successful == 1, done.describe()
        await asyncio.wait_for(rt.b2bua.wait_idle(), 10)
    finally:
        await rt.stop()
        ear.close()
    assert heard(ear) == [EARLY]
    got = [status for status, _ in responses(tmp_path, "caller")]
    assert got[-1].startswith("SIP/2.0 480"), got
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.direction is Direction.outbound
    assert call.disposition is not Disposition.answered
