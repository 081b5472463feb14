"""RTP packets (RFC 3550 §5) and modular sequence/timestamp arithmetic.

RFC 3550 §5.1 fixed header::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers             |  CC x 32 bits
    |      defined by profile       |           length              |  if X (§5.3.1)
    |                        header extension                       |  length x 32 bits
    |      payload ...              |  padding ...  | padding count |  if P

``parse_rtp(packet.serialize()) == packet`` for every packet. Padding is modelled by its total
length (``padding``); its octets are written as zeros followed by the count, and their content is
ignored on parsing, as §5.1 allows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zvonar.media.errors import RtpParseError

__all__ = [
    "RTP_VERSION",
    "RtpExtension",
    "RtpPacket",
    "RtpPacketizer",
    "is_rtcp",
    "parse_rtp",
    "seq_add",
    "seq_diff",
    "ts_add",
    "ts_diff",
]

RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


def seq_add(seq: int, delta: int) -> int:
    """16-bit sequence number arithmetic (wraps at 65536)."""
    return (seq + delta) & 0xFFFF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` as the shortest signed distance on the 16-bit circle: -32768..32767."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_add(ts: int, delta: int) -> int:
    """32-bit RTP timestamp arithmetic (wraps at 2**32)."""
    return (ts + delta) & 0xFFFFFFFF


def ts_diff(a: int, b: int) -> int:
    """``a - b`` as the shortest signed distance on the 32-bit circle."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def is_rtcp(data: bytes) -> bool:
    """Demultiplex RTP from RTCP on one port (RFC 5761 §4): RTCP packet types 192..223 appear
    where RTP keeps M+PT, i.e. payload types 64..95 with the marker set are RTCP."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


@dataclass(frozen=True)
class RtpExtension:
    """The one header extension of RFC 3550 §5.3.1: a 16-bit profile field and data whose
    length is a multiple of 4 octets (RFC 8285 one/two-byte forms are carried inside)."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise RtpParseError("extension profile is 16 bits")
        if len(self.data) % 4 or len(self.data) > 0xFFFF * 4:
            raise RtpParseError("extension data is a whole number of 32-bit words")


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0  # total padding octets including the count octet; 0 = no P bit

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpParseError(f"payload type out of range: {self.payload_type}")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpParseError(f"sequence number out of range: {self.sequence_number}")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpParseError("timestamp and SSRC are 32-bit unsigned")
        if len(self.csrcs) > 15 or any(not 0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise RtpParseError("at most 15 CSRCs of 32 bits")
        if not 0 <= self.padding <= 255:
            raise RtpParseError("padding is 0..255 octets")

    def serialize(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        header = _HEADER.pack(
            first,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
        )
        parts = [header]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    def with_payload(self, payload: bytes) -> RtpPacket:
        return RtpPacket(
            self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
            payload,
            self.marker,
            self.csrcs,
            self.extension,
            self.padding,
        )


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP datagram; raise :class:`RtpParseError` when it is not valid RTP."""
    if len(data) < _HEADER.size:
        raise RtpParseError("RTP packet shorter than the 12-byte fixed header")
    first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP version {first >> 6}, expected 2")
    offset = _HEADER.size
    cc = first & 0x0F
    csrcs: tuple[int, ...] = ()
    if cc:
        if len(data) < offset + 4 * cc:
            raise RtpParseError("truncated CSRC list")
        csrcs = struct.unpack_from(f"!{cc}I", data, offset)
        offset += 4 * cc
    extension = None
    if first & 0x10:
        if len(data) < offset + 4:
            raise RtpParseError("truncated header extension")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        offset += 4
        end = offset + 4 * words
        if len(data) < end:
            raise RtpParseError("truncated header extension data")
        extension = RtpExtension(profile, bytes(data[offset:end]))
        offset = end
    end = len(data)
    padding = 0
    if first & 0x20:
        padding = data[-1]
        # §5.1: the count includes itself, so 0 is invalid, and it cannot eat the header.
        if padding == 0 or end - padding < offset:
            raise RtpParseError("invalid RTP padding count")
        end -= padding
    return RtpPacket(
        second & 0x7F,
        seq,
        timestamp,
        ssrc,
        bytes(data[offset:end]),
        bool(second & 0x80),
        tuple(csrcs),
        extension,
        padding,
    )


class RtpPacketizer:
    """Numbers the packets of one outgoing stream (one SSRC).

    The caller picks the random initial sequence number, timestamp and SSRC (RFC 3550 §5.1
    asks for random ones; this module draws no randomness). Each :meth:`packet` carries the
    current timestamp, then advances it by the samples the payload covers; :meth:`skip`
    advances the timestamp across a gap without sending (silence, a hold).
    """

    def __init__(self, *, ssrc: int, payload_type: int, sequence: int, timestamp: int) -> None:
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload_type = payload_type
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self.packets_sent = 0
        self.octets_sent = 0  # payload octets, as RTCP SR counts them (§6.4.1)

    def packet(
        self,
        payload: bytes,
        samples: int,
        *,
        marker: bool = False,
        payload_type: int | None = None,
        timestamp: int | None = None,
    ) -> RtpPacket:
        """The next packet. ``timestamp`` overrides the running one without advancing it
        (RFC 4733 event packets keep the event's start timestamp)."""
        packet = RtpPacket(
            self.payload_type if payload_type is None else payload_type,
            self.sequence,
            self.timestamp if timestamp is None else timestamp & 0xFFFFFFFF,
            self.ssrc,
            payload,
            marker,
        )
        self.sequence = seq_add(self.sequence, 1)
        if timestamp is None:
            self.timestamp = ts_add(self.timestamp, samples)
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return packet

    def skip(self, samples: int) -> None:
        self.timestamp = ts_add(self.timestamp, samples)
