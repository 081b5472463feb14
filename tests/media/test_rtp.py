"""RTP header (RFC 3550 §5.1) parse/serialize, modular arithmetic, the packetizer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zvonar.media.errors import RtpParseError
from zvonar.media.rtp import (
    RtpExtension,
    RtpPacket,
    RtpPacketizer,
    is_rtcp,
    parse_rtp,
    seq_add,
    seq_diff,
    ts_add,
    ts_diff,
)


def test_parse_minimal_header() -> None:
    data = bytes.fromhex("80 00 12 34 00 00 03 e8 de ad be ef") + b"\xff" * 160
    packet = parse_rtp(data)
    assert packet == RtpPacket(0, 0x1234, 1000, 0xDEADBEEF, b"\xff" * 160)
    assert packet.serialize() == data


def test_marker_and_payload_type() -> None:
    packet = parse_rtp(bytes.fromhex("80 e5 00 01 00 00 00 00 00 00 00 01") + b"\x00\x00\x00\x00")
    assert packet.marker and packet.payload_type == 101


def test_csrc_extension_and_padding() -> None:
    data = bytes.fromhex(
        "b2 08 ff ff ff ff ff ff 00 00 00 07"  # V=2 P X CC=2, PT 8, seq 65535, ts 2^32-1
        "00 00 00 0a 00 00 00 0b"  # two CSRCs
        "be de 00 01 10 ab 00 00"  # extension: profile 0xBEDE, 1 word
        "d5 d5"  # payload
        "00 00 03"  # three octets of padding
    )
    packet = parse_rtp(data)
    assert packet.csrcs == (10, 11)
    assert packet.extension == RtpExtension(0xBEDE, bytes.fromhex("10 ab 00 00"))
    assert packet.payload == b"\xd5\xd5"
    assert packet.padding == 3
    assert (packet.sequence_number, packet.timestamp) == (65535, 0xFFFFFFFF)
    assert packet.serialize() == data


@pytest.mark.parametrize(
    "hexdata",
    [
        "80 00 00 01 00 00 00 00 00 00 00",  # 11 bytes
        "40 00 00 01 00 00 00 00 00 00 00 01",  # version 1
        "81 00 00 01 00 00 00 00 00 00 00 01",  # CC=1 without the CSRC
        "90 00 00 01 00 00 00 00 00 00 00 01 be de",  # truncated extension header
        "90 00 00 01 00 00 00 00 00 00 00 01 be de 00 02 00 00 00 00",  # truncated data
        "a0 00 00 01 00 00 00 00 00 00 00 01 11 00",  # padding count 0
        "a0 00 00 01 00 00 00 00 00 00 00 01 11 05",  # padding longer than the payload
    ],
)
def test_invalid_packets(hexdata: str) -> None:
    with pytest.raises(RtpParseError):
        parse_rtp(bytes.fromhex(hexdata))


def test_construction_is_validated() -> None:
    with pytest.raises(RtpParseError):
        RtpPacket(128, 0, 0, 0)
    with pytest.raises(RtpParseError):
        RtpPacket(0, 65536, 0, 0)
    with pytest.raises(RtpParseError):
        RtpPacket(0, 0, 2**32, 0)
    with pytest.raises(RtpParseError):
        RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16)))
    with pytest.raises(RtpParseError):
        RtpExtension(1, b"abc")


def test_sequence_and_timestamp_arithmetic() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 100) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768
    assert ts_add(0xFFFFFFFF, 160) == 159
    assert ts_diff(159, 0xFFFFFFFF) == 160
    assert ts_diff(0xFFFFFFFF, 159) == -160
    assert ts_diff(0x80000000, 0) == -0x80000000


def test_rtcp_demultiplexing() -> None:
    sr = bytes.fromhex("80 c8 00 06") + bytes(24)
    rr = bytes.fromhex("80 c9 00 01 00 00 00 01")
    assert is_rtcp(sr) and is_rtcp(rr)
    assert not is_rtcp(RtpPacket(0, 1, 2, 3).serialize())
    assert not is_rtcp(RtpPacket(96, 1, 2, 3, marker=True).serialize())  # 0xE0
    assert not is_rtcp(b"\x80")


def test_packetizer_numbers_packets_and_wraps() -> None:
    p = RtpPacketizer(ssrc=0x1234, payload_type=0, sequence=65535, timestamp=0xFFFFFF00)
    first = p.packet(b"\xff" * 160, 160, marker=True)
    second = p.packet(b"\xff" * 160, 160)
    assert (first.sequence_number, first.timestamp, first.marker) == (65535, 0xFFFFFF00, True)
    assert (second.sequence_number, second.timestamp) == (0, 0xFFFFFFA0)
    p.skip(320)  # a silent gap: timestamps move, sequence numbers do not
    event = p.packet(b"\x01\x0a\x00\xa0", 0, payload_type=101, timestamp=1234)
    assert (event.sequence_number, event.timestamp, event.payload_type) == (1, 1234, 101)
    third = p.packet(b"", 160)
    assert (third.sequence_number, third.timestamp) == (2, ts_add(0xFFFFFFA0, 160 + 320))
    assert p.packets_sent == 4 and p.octets_sent == 324


_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        st.integers(0, 0xFFFF),
        st.binary(max_size=32).map(lambda b: b[: len(b) // 4 * 4]),
    ),
    padding=st.integers(0, 255),
)


@given(_packets)
def test_property_round_trip(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert parse_rtp(data) == packet
    assert parse_rtp(bytearray(data)) == packet
    assert parse_rtp(memoryview(data)) == packet


@given(st.binary(max_size=80))
def test_property_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        return
    assert len(packet.serialize()) == len(data)
    assert parse_rtp(packet.serialize()) == packet
