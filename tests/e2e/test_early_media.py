"""End to end: early media (RFC 3960's gateway model) through a SIPp carrier.

* outbound: extension 101 dials out. The carrier answers 183 with SDP, plays 880 Hz (its
  ringback), stays silent longer than the media timeout, then answers and talks (1000 Hz).
  The extension's phone (SIPp for signalling, a Python RTP socket for its media) must get a
  183 with our SDP, hear 880 Hz then 1000 Hz, and the 200 must carry the 183's SDP byte for
  byte (RFC 3261 §13.2.1); a phone that sends nothing before it is answered is not cut off.
* outbound, refused: the carrier announces (183, 880 Hz) and refuses with 480; the extension
  hears the announcement before the 480.
* inbound: a scheme rings an external number through the carrier (which plays 880 Hz as
  early media, then says 486), then 101. The customer must never hear the forwarded
  number's network: a 180 (no 183), silence from the carrier, then 101's 1000 Hz.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.appkit import sqlite_container
from tests.e2e.test_listen import agent_answers
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


def carrier_early(
    pcap: Path, *, silent_ms: int, final: str, talk: Path | None = None, ring_ms: int = 0
) -> str:
    """(With ``ring_ms``: 180 and that long first.) 183 with SDP, ``pcap`` played, ``silent_ms``
    of nothing, then ``final``: a refusal (ACKed), or "200 OK" (same SDP as the 183,
    §13.2.1), ``talk`` played until our BYE."""
    ring = (
        f"""<send><![CDATA[

      SIP/2.0 180 Ringing{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <pause milliseconds="{ring_ms}"/>"""
        if ring_ms
        else ""
    )
    if final.startswith("200"):
        end = f"""<send retrans="500"><![CDATA[

      SIP/2.0 200 OK{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv request="ACK"/>
  <nop><action><exec play_pcap_audio="{talk}"/></action></nop>
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
  <pause milliseconds="200"/>"""
    else:
        end = f"""<send><![CDATA[

      SIP/2.0 {final}{sippkit.REPLY}
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier with early media">
  <recv request="INVITE"/>
  {ring}
  <send><![CDATA[

      SIP/2.0 183 Session Progress{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{silent_ms}"/>
  {end}
</scenario>
"""


# SIPp fails the call on anything unexpected: a 180 from us, or a 183 without SDP.
_EARLY_183 = (
    '<recv response="183"><action><ereg regexp="m=audio [0-9]+" search_in="body" '
    'check_it="true" assign_to="early"/></action></recv>'
)
_PROGRESS = '<recv response="180" optional="true"/>\n  <recv response="183" optional="true"/>'


def caller_inbound(number: str, media_port: int, *, talk_ms: int) -> str:
    """The customer: its phone must ring (180); a 183 fails the SIPp call."""
    xml = sippkit.uac(number, talk_ms=talk_ms).replace(sippkit._SDP, _sdp(media_port), 1)
    assert _PROGRESS in xml
    return xml.replace(_PROGRESS, '<recv response="180"/>', 1)


def caller_outbound(media_port: int, *, refused: bool) -> str:
    """101 dials out (digest, as CALLER_XML), hears early media; then a 480 (ACKed), or the
    answer and a short talk."""
    xml = CALLER_XML.replace("SDP_HERE", _sdp(media_port))
    assert _PROGRESS in xml
    xml = xml.replace(_PROGRESS, _EARLY_183, 1)
    if refused:
        head, _, _ = xml.partition('<recv response="200" rtd="true"/>')
        xml = f"""{head}<recv response="480"/>
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
</scenario>
"""
    else:
        xml = xml.replace('<pause milliseconds="500"/>', '<pause milliseconds="1200"/>', 1)
    return xml.replace("</scenario>", '<Reference variables="early"/></scenario>', 1)


def heard(phone: Phone, tones: tuple[int, ...] = (EARLY, RINGBACK, TALK)) -> list[int]:
    """What the phone heard, in order (:func:`tones_in` of its received audio)."""
    return tones_in(pcm_samples(phone.audio()), tones)


def tones_in(samples: list[float], tones: tuple[int, ...]) -> list[int]:
    """The loudest of ``tones`` per 200 ms of 16-bit ``samples`` (quiet stretches skipped),
    in order, runs collapsed."""
    order: list[int] = []
    for start in range(0, len(samples) - 1600, 1600):
        window = samples[start : start + 1600]
        if max(abs(v) for v in window) < 2000:
            continue
        tone = int(dominant(window, tones))
        loud = tone_power(window, tone)
        others = [tone_power(window, f) for f in tones if f != tone]
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
    # The journal writes behind the calls: let it finish before the database goes, or its
    # last write lands on a closed loop (a test that never reads the journal back).
    await container.aclose()  # the journal's writes land before the db goes


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


def _early_and_final_sdp(workdir: Path) -> tuple[bytes, list[bytes]]:
    got = responses(workdir, "caller")
    statuses = [status.split(" ", 2)[1] for status, _ in got]
    assert "180" not in statuses, statuses
    early_sdp = next(body for status, body in got if status.startswith("SIP/2.0 183"))
    invite_ok = [body for status, body in got if status.startswith("SIP/2.0 200") and body]
    return early_sdp, invite_ok


async def _dial_out(
    app: Container, tmp_path: Path, ear: Phone, carrier_xml: str, *, refused: bool
) -> None:
    """101 (SIPp, media on ``ear``) dials 8 383 123-45-67 through the SIPp carrier."""
    alpha = await seed_account(app, "alpha")
    carrier_port = free_port()
    await _trunk(app, alpha.principal, carrier_port)
    pbx_port = free_port()
    config = PbxConfig(sip_port=pbx_port, media_timeout=MEDIA_TIMEOUT, digest_algorithms=("MD5",))
    rt = await start_pbx(app, config)
    remote = f"127.0.0.1:{pbx_port}"
    try:
        (tmp_path / "carrier.xml").write_text(carrier_xml)
        carrier_cmd = _cmd(tmp_path, "", "carrier", carrier_port)
        carrier = await start_sipp(carrier_cmd, workdir=tmp_path)
        await wait_bound(carrier_port)
        (tmp_path / "caller.xml").write_text(caller_outbound(ear.port, refused=refused))
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
    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.direction is Direction.outbound
    assert (call.disposition is Disposition.answered) is not refused


async def test_an_extension_hears_the_carriers_early_media_then_the_answer(
    app: Container, tmp_path: Path
) -> None:
    early_pcap, talk_pcap = tmp_path / "early.pcap", tmp_path / "talk.pcap"
    sippkit.write_tone_pcap(early_pcap, EARLY, 1.0, ssrc=0x880)
    sippkit.write_tone_pcap(talk_pcap, TALK, 2.0, ssrc=0x1000)
    # Silent for longer than the media timeout before it answers: the extension's phone
    # sends nothing meanwhile either, and the call must survive that.
    silent_ms = int(MEDIA_TIMEOUT * 1000) + 1000
    carrier = carrier_early(early_pcap, silent_ms=silent_ms, final="200 OK", talk=talk_pcap)
    ear = Phone()
    try:
        await _dial_out(app, tmp_path, ear, carrier, refused=False)
    finally:
        ear.close()
    early_sdp, invite_ok = _early_and_final_sdp(tmp_path)
    assert early_sdp.startswith(b"v=0") and invite_ok == [early_sdp]  # §13.2.1, byte for byte
    port = int(re.search(rb"m=audio (\d+)", early_sdp).group(1))  # type: ignore[union-attr]
    assert port not in (0, 9)
    assert heard(ear) == [EARLY, TALK]


async def test_an_extension_hears_the_carriers_announcement_before_its_refusal(
    app: Container, tmp_path: Path
) -> None:
    early_pcap = tmp_path / "early.pcap"
    sippkit.write_tone_pcap(early_pcap, EARLY, 1.0, ssrc=0x880)
    carrier = carrier_early(early_pcap, silent_ms=1500, final="480 Temporarily Unavailable")
    ear = Phone()
    try:
        await _dial_out(app, tmp_path, ear, carrier, refused=True)
    finally:
        ear.close()
    assert heard(ear) == [EARLY]
    got = [status for status, _ in responses(tmp_path, "caller")]
    assert any(s.startswith("SIP/2.0 183") for s in got), got
    assert got[-1].startswith("SIP/2.0 480"), got


async def test_a_customer_never_hears_the_network_of_a_forwarded_number(
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
    sippkit.write_tone_pcap(early_pcap, EARLY, 1.0, ssrc=0x880)  # "the subscriber is busy"
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
        (tmp_path / "phone.xml").write_text(agent_answers(ring_ms=1200, pcap=talk_pcap))
        phone_cmd = _cmd(tmp_path, "", "phone", phone_port)
        phone = await start_sipp(phone_cmd, workdir=tmp_path)
        (tmp_path / "carrier.xml").write_text(
            carrier_early(early_pcap, silent_ms=1500, final="486 Busy Here")
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
    statuses = [status.split(" ", 2)[1] for status, _ in responses(tmp_path, "caller")]
    assert "183" not in statuses and "180" in statuses, statuses
    assert heard(ear) == [TALK]  # nothing of the carrier's, then 101

    (call,) = (await app.journal.list_calls(alpha.principal, CallFilter())).items
    assert call.disposition is Disposition.answered
    view = await app.journal.get_call(alpha.principal, call.id)
    by_kind = {leg.target_kind: leg for leg in view.legs}
    assert by_kind[TargetKind.external].end_reason is LegEndReason.busy
    assert by_kind[TargetKind.employee].answered_at is not None
