"""RTCP packets (RFC 3550 §6): SR, RR, SDES, BYE and compound packets.

Every RTCP packet starts with the common header of §6.4.1::

    |V=2|P|  count  |      PT       |             length            |

where ``length`` is the packet size in 32-bit words minus one. A compound packet is such
packets back to back (§6.1); only the last may carry padding. Packet types this module does
not model (APP, RFC 4585 feedback, RFC 3611 XR...) are kept verbatim as :class:`RtcpUnknown`.

``parse_rtcp(serialize_rtcp(packets)) == packets`` for every list of packets. The RFC 3550
§A.2 rule that a compound packet starts with SR or RR is not enforced, because reduced-size
RTCP (RFC 5506) sends single packets of other types.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zvonar.media.errors import RtcpParseError

__all__ = [
    "NTP_UNIX_OFFSET",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpUnknown",
    "SdesChunk",
    "SdesItem",
    "SdesType",
    "SenderReport",
    "SourceDescription",
    "ntp_from_unix",
    "ntp_middle",
    "parse_rtcp",
    "rtt_from_report",
    "serialize_rtcp",
]

PT_SR, PT_RR, PT_SDES, PT_BYE = 200, 201, 202, 203
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_U32 = struct.Struct("!I")


def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point, RFC 3550 §4) of a Unix wall-clock time."""
    return round((seconds + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as LSR and RTT use them (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def _u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise RtcpParseError(f"{what} is a 32-bit unsigned value")


@dataclass(frozen=True)
class ReportBlock:
    """One reception report block (§6.4.1), 24 octets."""

    ssrc: int
    fraction_lost: int  # lost since the last report, in 1/256 (§A.3)
    cumulative_lost: int  # 24-bit signed: duplicates can make it negative
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units (§A.8)
    lsr: int = 0  # middle 32 bits of the last SR's NTP timestamp, 0 if none
    dlsr: int = 0  # delay since that SR in 1/65536 s

    def __post_init__(self) -> None:
        for value, what in (
            (self.ssrc, "SSRC"),
            (self.highest_sequence, "highest sequence"),
            (self.jitter, "jitter"),
            (self.lsr, "LSR"),
            (self.dlsr, "DLSR"),
        ):
            _u32(value, what)
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpParseError("fraction lost is 8 bits")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise RtcpParseError("cumulative lost is 24-bit signed")

    def serialize(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


def _check_blocks(blocks: tuple[ReportBlock, ...], extension: bytes) -> None:
    if len(blocks) > 31:
        raise RtcpParseError("at most 31 report blocks per packet")
    if len(extension) % 4:
        raise RtcpParseError("profile extension is a whole number of 32-bit words")


@dataclass(frozen=True)
class SenderReport:
    """SR, packet type 200 (§6.4.1)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _u32(self.ssrc, "SSRC")
        _u32(self.rtp_timestamp, "RTP timestamp")
        _u32(self.packet_count, "packet count")
        _u32(self.octet_count, "octet count")
        if not 0 <= self.ntp_timestamp <= 0xFFFFFFFFFFFFFFFF:
            raise RtcpParseError("NTP timestamp is 64 bits")
        _check_blocks(self.reports, self.extension)

    def serialize(self) -> bytes:
        body = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        blocks = b"".join(b.serialize() for b in self.reports)
        return _packet(PT_SR, len(self.reports), body + blocks + self.extension)


@dataclass(frozen=True)
class ReceiverReport:
    """RR, packet type 201 (§6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _u32(self.ssrc, "SSRC")
        _check_blocks(self.reports, self.extension)

    def serialize(self) -> bytes:
        blocks = b"".join(b.serialize() for b in self.reports)
        return _packet(PT_RR, len(self.reports), _U32.pack(self.ssrc) + blocks + self.extension)


class SdesType:
    """SDES item types (§6.5)."""

    END, CNAME, NAME, EMAIL, PHONE, LOC, TOOL, NOTE, PRIV = range(9)


@dataclass(frozen=True)
class SdesItem:
    """One SDES item: type 1..255 and up to 255 octets of UTF-8 text (§6.5)."""

    type: int
    value: str

    def __post_init__(self) -> None:
        if not 1 <= self.type <= 255:
            raise RtcpParseError("SDES item type is 1..255 (0 ends the list)")
        if len(self.encoded) > 255:
            raise RtcpParseError("SDES item text is at most 255 octets")

    @property
    def encoded(self) -> bytes:
        # surrogateescape keeps non-UTF-8 octets from a peer byte-exact on a round trip.
        return self.value.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class SdesChunk:
    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __post_init__(self) -> None:
        _u32(self.ssrc, "SSRC")

    def serialize(self) -> bytes:
        out = bytearray(_U32.pack(self.ssrc))
        for item in self.items:
            text = item.encoded
            out += bytes((item.type, len(text))) + text
        # The item list ends with at least one null octet, padded to a 32-bit boundary (§6.5).
        out += bytes(4 - len(out) % 4)
        return bytes(out)


@dataclass(frozen=True)
class SourceDescription:
    """SDES, packet type 202 (§6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    def __post_init__(self) -> None:
        if len(self.chunks) > 31:
            raise RtcpParseError("at most 31 SDES chunks per packet")

    def serialize(self) -> bytes:
        return _packet(PT_SDES, len(self.chunks), b"".join(c.serialize() for c in self.chunks))


@dataclass(frozen=True)
class Bye:
    """BYE, packet type 203 (§6.6), with an optional reason."""

    ssrcs: tuple[int, ...] = ()
    reason: str | None = None

    def __post_init__(self) -> None:
        if len(self.ssrcs) > 31:
            raise RtcpParseError("at most 31 SSRCs per BYE")
        for ssrc in self.ssrcs:
            _u32(ssrc, "SSRC")
        if self.reason is not None and len(self.reason.encode("utf-8", "surrogateescape")) > 255:
            raise RtcpParseError("BYE reason is at most 255 octets")

    def serialize(self) -> bytes:
        body = b"".join(_U32.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode("utf-8", "surrogateescape")
            reason = bytes((len(text),)) + text
            body += reason + bytes(-len(reason) % 4)
        return _packet(PT_BYE, len(self.ssrcs), body)


@dataclass(frozen=True)
class RtcpUnknown:
    """A packet type this module does not interpret, kept verbatim (count = the 5-bit field)."""

    packet_type: int
    count: int
    payload: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.packet_type <= 255 or not 0 <= self.count <= 31:
            raise RtcpParseError("invalid RTCP packet type or count")
        if self.packet_type in (PT_SR, PT_RR, PT_SDES, PT_BYE):
            raise RtcpParseError("known packet types have their own classes")
        if len(self.payload) % 4:
            raise RtcpParseError("RTCP payload is a whole number of 32-bit words")

    def serialize(self) -> bytes:
        return _packet(self.packet_type, self.count, self.payload)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if len(body) % 4 or len(body) // 4 > 0xFFFF:
        raise RtcpParseError("RTCP body is a whole number of 32-bit words, at most 65535")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def serialize_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """A compound packet (§6.1) of ``packets`` in order, without padding."""
    return b"".join(p.serialize() for p in packets)


def parse_rtcp(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raise :class:`RtcpParseError` if any part is invalid."""
    packets: list[RtcpPacket] = []
    offset = 0
    if len(data) < 4:
        raise RtcpParseError("RTCP packet shorter than its header")
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtcpParseError("trailing bytes after the last RTCP packet")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpParseError(f"RTCP version {first >> 6}, expected 2")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise RtcpParseError("RTCP length field exceeds the datagram")
        body = bytes(data[offset + 4 : end])
        if first & 0x20:
            # §6.4.1 / A.2: only the last packet of a compound may be padded.
            if end != len(data) or not body or not 0 < body[-1] <= len(body):
                raise RtcpParseError("invalid RTCP padding")
            body = body[: -body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, body))
        offset = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type in (PT_SR, PT_RR):
        fixed = _SENDER_INFO.size if packet_type == PT_SR else 4
        end = fixed + count * _BLOCK.size
        if len(body) < end:
            raise RtcpParseError("truncated SR/RR")
        blocks = tuple(ReportBlock.parse(body, fixed + i * _BLOCK.size) for i in range(count))
        extension = body[end:]
        if len(extension) % 4:
            raise RtcpParseError("SR/RR extension is not 32-bit aligned")
        if packet_type == PT_RR:
            return ReceiverReport(_U32.unpack_from(body)[0], blocks, extension)
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks, extension)
    if packet_type == PT_SDES:
        return _parse_sdes(count, body)
    if packet_type == PT_BYE:
        if len(body) < 4 * count:
            raise RtcpParseError("truncated BYE")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        rest = body[4 * count :]
        reason = None
        if rest:
            if rest[0] + 1 > len(rest):
                raise RtcpParseError("truncated BYE reason")
            reason = rest[1 : 1 + rest[0]].decode("utf-8", "surrogateescape")
        return Bye(tuple(ssrcs), reason)
    return RtcpUnknown(packet_type, count, body)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks: list[SdesChunk] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpParseError("truncated SDES chunk")
        ssrc = _U32.unpack_from(body, offset)[0]
        offset += 4
        items: list[SdesItem] = []
        while True:
            if offset >= len(body):
                raise RtcpParseError("SDES item list without its null terminator")
            item_type = body[offset]
            if item_type == 0:
                offset = (offset // 4 + 1) * 4  # skip the null octets to the next word
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpParseError("truncated SDES item")
            length = body[offset + 1]
            text = body[offset + 2 : offset + 2 + length]
            items.append(SdesItem(item_type, text.decode("utf-8", "surrogateescape")))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if offset > len(body):
        raise RtcpParseError("truncated SDES padding")
    return SourceDescription(tuple(chunks))


def rtt_from_report(block: ReportBlock, arrival_ntp: int) -> float | None:
    """Round-trip time in seconds from a report block about our stream (§6.4.1):
    ``A - LSR - DLSR`` in 1/65536 s, where A is the arrival time's NTP middle 32 bits.
    None when the peer has not received an SR from us yet (LSR = 0)."""
    if block.lsr == 0:
        return None
    rtt = (ntp_middle(arrival_ntp) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return 0.0  # clock steps can make it negative: clamp
    return rtt / 65536
