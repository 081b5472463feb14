"""SIPp scenarios and audio for the end-to-end call tests, written into the test's tmp dir.

Tone pcaps are made here (a stdlib pcap writer of G.711 RTP over Ethernet/IPv4/UDP): SIPp's
``play_pcap_audio`` replays the RTP payloads with the capture's timing to the peer's media
address from the SDP.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

from zvonar.media.g711 import ulaw_encode

DTMF_1 = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")  # RFC 4733 event 1 (digit "1"), PT 101


def tone_pcm(freq: float, seconds: float, amplitude: float = 0.3) -> bytes:
    n = int(8000 * seconds)
    peak = amplitude * 32767
    return b"".join(
        struct.pack("<h", int(peak * math.sin(2 * math.pi * freq * i / 8000))) for i in range(n)
    )


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    src = dst = bytes([127, 0, 0, 1])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + udp  # Ethernet II, IPv4


def write_tone_pcap(path: Path, freq: float, seconds: float, *, ssrc: int) -> int:
    """A pcap of PCMU RTP (PT 0, 20 ms packets) carrying a tone; returns the packet count."""
    audio = ulaw_encode(tone_pcm(freq, seconds))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    count = len(audio) // 160
    for k in range(count):
        rtp = struct.pack("!BBHII", 0x80, 0, k, 160 * k, ssrc) + audio[160 * k : 160 * (k + 1)]
        frame = _frame(rtp, 40000, 50000)
        when = 1_000_000 + 0.02 * k
        sec, usec = int(when), round((when - int(when)) * 1e6)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return count


_SDP = """v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15"""

REPLY = """
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]UAS[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>"""


def _body(*, sdp: bool, sip_i: bool = False) -> str:
    """A request's body headers and body: our SDP, or none; ``sip_i``: the SDP as the first
    part of a multipart/mixed body whose second part is ISUP (RFC 3204), as carriers that
    interwork with the telephone network send it (the ISUP here is text: it is opaque)."""
    if not sdp:
        return "Content-Length: 0"
    if sip_i:
        return f"""Content-Type: multipart/mixed;boundary=unique-boundary-1
      MIME-Version: 1.0
      Content-Length: [len]

      --unique-boundary-1
      Content-Type: application/sdp

      {_SDP}

      --unique-boundary-1
      Content-Type: application/ISUP;version=itu-t92+
      Content-Disposition: signal;handling=optional

      01 00 49 00 00 03 02 00 07 04 10 00 33 0a 03 13 00 54 00
      --unique-boundary-1--"""
    return f"""Content-Type: application/sdp
      Content-Length: [len]

      {_SDP}"""


def ack(user: str, *, answer: bool = False) -> str:
    """``<send>`` of the ACK for the INVITE (CSeq 1) to ``user`` at the remote (§17.1.1.3);
    ``answer``: it carries our SDP, the answer to the offer of a 200 to an INVITE without one
    (§13.2.1)."""
    body = _body(sdp=answer)
    return f"""<send><![CDATA[

      ACK sip:{user}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      {body}

  ]]></send>"""


def bye(user: str, cseq: int = 2) -> str:
    """``<send>`` of the caller's BYE in the dialog the INVITE made."""
    return f"""<send retrans="500"><![CDATA[

      BYE sip:{user}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>"""


def info_digit(user: str, digit: str, cseq: int) -> str:
    """``<send>`` of the caller's INFO carrying one key (``application/dtmf-relay``)."""
    return f"""<send retrans="500"><![CDATA[

      INFO sip:{user}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160

  ]]></send>"""


# The 200 to an in-dialog request (the BYE): the request's own headers, the To tag included.
OK_IN_DIALOG = """<send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>"""


def _play(pcap: Path | None) -> str:
    if pcap is None:
        return ""
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'


def invite(user: str, *, offer: bool = True, sip_i: bool = False) -> str:
    """``<send>`` of the caller's INVITE (CSeq 1) to ``user`` at the remote, with our SDP offer
    or (``offer=False``) none: a delayed offer (§13.2.1), the answer then going in the ACK.
    ``sip_i``: the offer in a multipart body with an ISUP part (see ``_body``)."""
    body = _body(sdp=offer, sip_i=sip_i)
    return f"""<send retrans="500"><![CDATA[

      INVITE sip:{user}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]UAC[call_number]
      To: <sip:{user}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      {body}

  ]]></send>"""


def uac(
    user: str,
    *,
    pcap: Path | None = None,
    talk_ms: int = 3000,
    delayed_offer: bool = False,
    sip_i: bool = False,
) -> str:
    """Call ``user``, play ``pcap`` once answered, hang up after ``talk_ms``.
    ``delayed_offer``: the INVITE has no SDP; the ACK answers the 200's offer (§13.2.1).
    ``sip_i``: the INVITE's offer is one part of a multipart body with ISUP."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="zvonar e2e caller">
  {invite(user, offer=not delayed_offer, sip_i=sip_i)}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  {ack(user, answer=delayed_offer)}
  {_play(pcap)}
  <pause milliseconds="{talk_ms}"/>
  {bye(user)}
  <recv response="200" crlf="true"/>
</scenario>
"""


def uas_answer(*, pcap: Path | None = None, ring_ms: int = 0) -> str:
    """Ring (for ``ring_ms``), answer, play ``pcap``, wait for the BYE."""
    ring = f'<pause milliseconds="{ring_ms}"/>' if ring_ms else ""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="zvonar e2e answering callee">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 180 Ringing{REPLY}
      Content-Length: 0

  ]]></send>
  {ring}
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {_SDP}

  ]]></send>
  <recv request="ACK"/>
  {_play(pcap)}
  <recv request="BYE"/>
  {OK_IN_DIALOG}
  <pause milliseconds="200"/>
</scenario>
"""


def uas_request(
    method: str, cseq: int, body: str = "", content_type: str = "application/sdp"
) -> str:
    """``<send>`` of a request from the answering side (the UAS) in its dialog with the PBX;
    the scenario must have kept the INVITE's From as ``pbx_from`` (see :func:`uas_talk`)."""
    content = (
        f"Content-Type: {content_type}\n      Content-Length: [len]\n\n      {body}"
        if body
        else "Content-Length: 0"
    )
    retrans = "" if method == "ACK" else ' retrans="500"'  # an ACK is never answered
    return f"""<send{retrans}><![CDATA[

      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:uas@[local_ip]:[local_port]>;tag=[pid]UAS[call_number]
      To: [$pbx_from]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:uas@[local_ip]:[local_port]>
      Max-Forwards: 70
      {content}

  ]]></send>"""


# The answering side's INVITE, its From kept for requests it sends later (uas_request).
RECV_INVITE_KEEP_FROM = """<recv request="INVITE" rrs="true">
    <action>
      <ereg regexp="&lt;.*" search_in="hdr" header="From:" assign_to="pbx_from"/>
    </action>
  </recv>"""


def uas_talk(talk_ms: int, *, sdp: str = _SDP, pcap: Path | None = None) -> str:
    """Answer at once (with ``sdp``), play ``pcap``, hang up after ``talk_ms`` — a callee who
    ends the call, whoever the PBX has connected meanwhile."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="zvonar e2e callee who hangs up">
  {RECV_INVITE_KEEP_FROM}
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK{REPLY}
      Content-Type: application/sdp
      Content-Length: [len]

      {sdp}

  ]]></send>
  <recv request="ACK"/>
  {_play(pcap)}
  <pause milliseconds="{talk_ms}"/>
  {uas_request("BYE", 1)}
  <recv response="200"/>
</scenario>
"""


def uas_busy() -> str:
    return uas_refuses("486 Busy Here")


def uas_refuses(status_line: str) -> str:
    """Refuse the INVITE with ``status_line`` ("503 Service Unavailable"), take the ACK."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="zvonar e2e callee refusing {status_line}">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 {status_line}{REPLY}
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
</scenario>
"""


def uas_ring_forever() -> str:
    """Ring until CANCELled (200 to the CANCEL, 487 to the INVITE, §9.2)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="zvonar e2e unanswered callee">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 180 Ringing{REPLY}
      Content-Length: 0

  ]]></send>
  <recv request="CANCEL"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]UAS[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <send><![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]UAS[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
</scenario>
"""
