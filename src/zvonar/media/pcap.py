"""Read rtpengine's pcap call recordings and turn them into Zvonar's stereo WAV (sans-IO).

rtpengine's ``pcap`` recording method writes every RTP packet it *receives* into a classic
libpcap file (not pcapng): by default with link type RAW (101, a bare IPv4/IPv6 header),
with ``--recording-format=eth`` behind a made-up Ethernet header. The destination of each
packet is rtpengine's local port for the leg that sent it, so "what the caller said" is
every packet to the caller leg's port.

File format (libpcap, "tcpdump" format): a 24-byte global header whose magic number gives
the byte order and the timestamp unit (0xa1b2c3d4: microseconds, 0xa1b23c4d: nanoseconds),
then records of ``ts_sec, ts_frac, incl_len, orig_len`` followed by ``incl_len`` bytes.

:func:`pcap_to_stereo_wav` places each side's G.711 audio by RTP timestamp — anchored to
the capture time of the first packet of each SSRC, exactly as the embedded engine's
recorder does — on its own channel (left and right), with silence wherever no packet
covers the time. Nothing is mixed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from zvonar.media.errors import MediaError
from zvonar.media.g711 import alaw_decode, ulaw_decode
from zvonar.media.rtp import parse_rtp, ts_diff
from zvonar.media.wav import encode_wav, interleave_stereo

__all__ = ["PcapError", "UdpPacket", "pcap_to_stereo_wav", "read_pcap"]

_LINKTYPE_ETHERNET = 1
_LINKTYPE_RAW = 101
_LINKTYPE_LINUX_SLL = 113
_LINKTYPE_IPV4 = 228
_LINKTYPE_IPV6 = 229
_RATE = 8000
_MAX_SKEW = _RATE  # re-anchor when RTP time and capture time disagree by more than 1 s


class PcapError(MediaError):
    """Not a libpcap file, or a truncated one we cannot make sense of."""


@dataclass(frozen=True)
class UdpPacket:
    time: float  # capture time, seconds since the epoch
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def _ip(data: bytes, offset: int) -> tuple[str, str, int, bytes] | None:
    """(src, dst, protocol, transport payload) of the IP packet at ``offset``."""
    if len(data) < offset + 1:
        return None
    version = data[offset] >> 4
    if version == 4:
        if len(data) < offset + 20:
            return None
        ihl = (data[offset] & 0x0F) * 4
        total = struct.unpack_from("!H", data, offset + 2)[0]
        proto = data[offset + 9]
        src = ".".join(str(b) for b in data[offset + 12 : offset + 16])
        dst = ".".join(str(b) for b in data[offset + 16 : offset + 20])
        end = min(len(data), offset + total) if total else len(data)
        return src, dst, proto, data[offset + ihl : end]
    if version == 6:
        if len(data) < offset + 40:
            return None
        length = struct.unpack_from("!H", data, offset + 4)[0]
        proto = data[offset + 6]  # extension headers are not followed: rtpengine writes none
        src = _ipv6(data[offset + 8 : offset + 24])
        dst = _ipv6(data[offset + 24 : offset + 40])
        return src, dst, proto, data[offset + 40 : offset + 40 + length]
    return None


def _ipv6(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(raw))


def read_pcap(data: bytes) -> Iterator[UdpPacket]:
    """Every UDP datagram of a libpcap file; a truncated last record ends the iteration
    (a capture cut short by a crash is still read up to there)."""
    if len(data) < 24:
        raise PcapError("shorter than a pcap global header")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise PcapError("not a libpcap file (pcapng is not supported)")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    divisor = 1e9 if nanos else 1e6
    offset = 24
    while offset + record.size <= len(data):
        sec, frac, incl, _orig = record.unpack_from(data, offset)
        offset += record.size
        if offset + incl > len(data):
            return
        frame = data[offset : offset + incl]
        offset += incl
        start = _link_offset(linktype, frame)
        if start is None:
            continue
        parsed = _ip(frame, start)
        if parsed is None or parsed[2] != 17 or len(parsed[3]) < 8:
            continue
        src, dst, _proto, udp = parsed
        sport, dport, length = struct.unpack_from("!HHH", udp)
        payload = udp[8:length] if length >= 8 else udp[8:]
        yield UdpPacket(sec + frac / divisor, (src, sport), (dst, dport), bytes(payload))


def _link_offset(linktype: int, frame: bytes) -> int | None:
    if linktype in (_LINKTYPE_RAW, _LINKTYPE_IPV4, _LINKTYPE_IPV6):
        return 0
    if linktype == _LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        return 14 if ethertype in (0x0800, 0x86DD) else None
    if linktype == _LINKTYPE_LINUX_SLL:
        return 16 if len(frame) >= 16 else None
    raise PcapError(f"unsupported pcap link type {linktype}")


class _Track:
    """One channel: decoded samples placed by RTP timestamp."""

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.ssrc: int | None = None
        self.anchor_ts = 0
        self.anchor_pos = 0

    def place(self, ssrc: int, ts: int, pcm: bytes, wall: int) -> None:
        n = len(pcm) // 2
        if ssrc != self.ssrc:
            self.ssrc, self.anchor_ts, self.anchor_pos = ssrc, ts, wall
        pos = self.anchor_pos + ts_diff(ts, self.anchor_ts)
        if abs(pos - wall) > _MAX_SKEW:
            self.anchor_ts, self.anchor_pos, pos = ts, wall, wall
        if pos < 0:
            return
        end = 2 * (pos + n)
        if len(self.pcm) < end:
            self.pcm.extend(bytes(end - len(self.pcm)))
        self.pcm[2 * pos : end] = pcm


def pcap_to_stereo_wav(
    data: bytes, *, left_port: int, right_port: int, start: float | None = None
) -> bytes:
    """A stereo 8 kHz 16-bit WAV: left = the G.711 RTP sent to ``left_port`` (the caller
    leg's local port), right = the RTP sent to ``right_port``. ``start`` (epoch seconds)
    is time zero; by default the first packet's capture time."""
    packets = [p for p in read_pcap(data) if p.dst[1] in (left_port, right_port)]
    if start is None:
        start = min((p.time for p in packets), default=0.0)
    tracks = {left_port: _Track(), right_port: _Track()}
    for packet in packets:
        try:
            rtp = parse_rtp(packet.payload)
        except MediaError:
            continue
        if rtp.payload_type == 0:
            pcm = ulaw_decode(rtp.payload)
        elif rtp.payload_type == 8:
            pcm = alaw_decode(rtp.payload)
        else:
            continue  # telephone-events, comfort noise, codecs we do not decode
        n = len(pcm) // 2
        wall = max(0, round((packet.time - start) * _RATE) - n)
        tracks[packet.dst[1]].place(rtp.ssrc, rtp.timestamp, pcm, wall)
    left, right = bytes(tracks[left_port].pcm), bytes(tracks[right_port].pcm)
    return encode_wav(interleave_stereo(left, right), channels=2)
