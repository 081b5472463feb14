"""End to end: a key pressed on a phone reaches the other side in the form it can take.

A carrier (SIPp) calls the account's number, its media on a Python RTP socket that offered
``telephone-event``; employee 101 (SIPp) answers and presses 5 — as many softphones are set
to — by ``INFO`` (``application/dtmf-relay``, ``Signal=5``, ``Duration=160``). The carrier
must receive the key as RFC 4733 telephone-events on its RTP stream (before: the INFO was
relayed as INFO, which a carrier's IVR never reads), on the one stream it hears. And when
101 sends RFC 4733 (SIPp's capture of event 5) to a carrier that negotiated no
telephone-event (in-band only), the carrier must hear the key's dual tone (before: the
events were dropped, there being nothing to relay them as).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import sippkit
from tests.e2e.pbxkit import call_101
from tests.e2e.queues_kit import DTMF_DIR
from tests.e2e.test_early_media import app as app  # the fixture
from tests.media.engine.phone import Phone
from tests.pbx.conftest import NUMBER, seed_account
from tests.sip.peers.harness import SIPP
from zvonar.container import Container
from zvonar.media.dtmf import DtmfReceiver
from zvonar.media.g711 import ulaw_decode
from zvonar.media.goertzel import DtmfDetector
from zvonar.media.rtp import RtpPacket

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


def carrier_listening(number: str, media_port: int, *, events: bool = True) -> str:
    """Calls ``number`` with its audio (and telephone-events, unless ``events`` is False:
    an in-band-only carrier) at ``media_port``; hangs up."""
    media = (
        f"m=audio {media_port} RTP/AVP 0 101\n      a=rtpmap:0 PCMU/8000\n"
        "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15"
        if events
        else f"m=audio {media_port} RTP/AVP 0\n      a=rtpmap:0 PCMU/8000"
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier whose IVR listens for RFC 4733">
  <send retrans="500"><![CDATA[

      INVITE sip:{number}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+79160000001@[local_ip]:[local_port]>;tag=[pid]UAC[call_number]
      To: <sip:{number}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:carrier@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=ivr 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      {media}

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  {sippkit.ack(number)}
  <pause milliseconds="2500"/>
  {sippkit.bye(number)}
  <recv response="200" crlf="true"/>
</scenario>
"""


def employee_presses_5_by_info() -> str:
    """101 answers, presses 5 by INFO after 500 ms, waits for our BYE."""
    info = "Signal=5\n      Duration=160"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="employee sending keys by SIP INFO">
  {sippkit.RECV_INVITE_KEEP_FROM}
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{sippkit.REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sippkit._SDP}

  ]]></send>
  <recv request="ACK"/>
  <pause milliseconds="500"/>
  {sippkit.uas_request("INFO", 1, info, "application/dtmf-relay")}
  <recv response="200"/>
  <recv request="BYE"/>
  {sippkit.OK_IN_DIALOG}
</scenario>
"""


def employee_presses_5_by_rfc4733() -> str:
    """101 answers, plays the RFC 4733 events of 5 (SIPp's pcap), waits for our BYE."""
    info = employee_presses_5_by_info()
    start = info.index('  <pause milliseconds="500"/>')
    end = info.index('  <recv request="BYE"/>')
    pcap = DTMF_DIR / "dtmf_2833_5.pcap"
    play = f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
    xml = info[:start] + '  <pause milliseconds="500"/>\n  ' + play + info[end:]
    return xml.replace("</scenario>", '<Reference variables="pbx_from"/></scenario>')


async def _call(app: Container, tmp_path: Path, phone_xml: str, *, events: bool) -> list[RtpPacket]:
    """The carrier (media on a Python socket) calls 101, who runs ``phone_xml``: what the
    carrier's socket received."""
    alpha = await seed_account(app, "alpha")
    ivr = Phone()
    try:
        carrier = carrier_listening(NUMBER.lstrip("+"), ivr.port, events=events)
        _rt, runs = await call_101(app, tmp_path, alpha, phone=phone_xml, carrier=carrier)
        assert runs["carrier"].stats.successful == 1, runs["carrier"].describe()
        assert runs["phone"].stats.successful == 1, runs["phone"].describe()
        await ivr.settle()
        return [r.packet for r in ivr.received]
    finally:
        ivr.close()


async def test_a_key_reaches_an_in_band_only_carrier_as_tones(
    app: Container, tmp_path: Path
) -> None:
    """101 presses 5 as RFC 4733; the carrier negotiated no telephone-event: it hears the
    key's dual tone (the engine plays what the relay could not pass on)."""
    packets = await _call(app, tmp_path, employee_presses_5_by_rfc4733(), events=False)
    assert {p.payload_type for p in packets} == {0}
    pcm = ulaw_decode(b"".join(p.payload for p in packets))
    assert [d.digit for d in DtmfDetector().feed(pcm)] == ["5"]


async def test_an_info_key_reaches_the_carrier_as_rfc4733(app: Container, tmp_path: Path) -> None:
    packets = await _call(app, tmp_path, employee_presses_5_by_info(), events=True)
    events = [p for p in packets if p.payload_type == 101]
    receiver = DtmfReceiver()
    keys = []
    for p in events:
        keys += receiver.receive(p.timestamp, p.payload, 0.0, marker=p.marker)
    assert [(k.digit, round(k.duration, 2)) for k in keys] == [("5", 0.16)], events
    assert len({p.ssrc for p in packets}) == 1  # on the one stream the carrier hears
