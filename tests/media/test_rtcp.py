"""RTCP (RFC 3550 §6): exact wire forms, compound packets, RTT, round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zvonar.media.errors import RtcpParseError
from zvonar.media.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpUnknown,
    SdesChunk,
    SdesItem,
    SdesType,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle,
    parse_rtcp,
    rtt_from_report,
    serialize_rtcp,
)

BLOCK = ReportBlock(0x01020304, 25, 1000, 0x0001FFFF, 80, 0xB7052000, 0x00054000)


def test_sender_report_wire_form() -> None:
    sr = SenderReport(0xAABBCCDD, 0x1122334455667788, 160, 10, 1600, (BLOCK,))
    data = sr.serialize()
    assert data == bytes.fromhex(
        "81 c8 00 0c"  # V=2, RC=1, PT=200, length 13 words - 1
        "aa bb cc dd 11 22 33 44 55 66 77 88 00 00 00 a0 00 00 00 0a 00 00 06 40"
        "01 02 03 04 19 00 03 e8 00 01 ff ff 00 00 00 50 b7 05 20 00 00 05 40 00"
    )
    assert parse_rtcp(data) == [sr]


def test_receiver_report_and_negative_cumulative_loss() -> None:
    assert ReceiverReport(1).serialize() == bytes.fromhex("80 c9 00 01 00 00 00 01")
    block = ReportBlock(2, 0, -1, 5, 0)
    data = ReceiverReport(1, (block,)).serialize()
    assert data[12:16] == bytes.fromhex("00 ff ff ff")  # 24-bit two's complement
    assert parse_rtcp(data) == [ReceiverReport(1, (block,))]


def test_sdes_and_bye_wire_forms() -> None:
    sdes = SourceDescription((SdesChunk(0x11223344, (SdesItem(SdesType.CNAME, "a@b"),)),))
    assert sdes.serialize() == bytes.fromhex(
        "81 ca 00 03 11 22 33 44 01 03 61 40 62 00 00 00"  # item + null terminator to 32 bits
    )
    # an item list that ends exactly on a word boundary still gets a whole null word
    four = SourceDescription((SdesChunk(1, (SdesItem(SdesType.NAME, "ab"),)),))
    assert four.serialize() == bytes.fromhex("81 ca 00 03 00 00 00 01 02 02 61 62 00 00 00 00")
    bye = Bye((0x11223344,), "bye")
    assert bye.serialize() == bytes.fromhex("81 cb 00 02 11 22 33 44 03 62 79 65")
    assert Bye((1, 2)).serialize() == bytes.fromhex("82 cb 00 02 00 00 00 01 00 00 00 02")
    assert Bye((), "x").serialize() == bytes.fromhex("80 cb 00 01 01 78 00 00")


def test_compound_packet_round_trip() -> None:
    packets: list[RtcpPacket] = [
        SenderReport(7, ntp_from_unix(1_700_000_000.5), 8000, 50, 8000, (BLOCK,)),
        SourceDescription(
            (
                SdesChunk(7, (SdesItem(SdesType.CNAME, "zvonar@192.0.2.1"),)),
                SdesChunk(8, (SdesItem(SdesType.TOOL, "Zvonar"), SdesItem(SdesType.NOTE, "ü"))),
            )
        ),
        RtcpUnknown(204, 1, b"\x00\x00\x00\x07NAME\x01\x02\x03\x04"),  # APP
        Bye((7,), "hangup"),
    ]
    data = serialize_rtcp(packets)
    assert parse_rtcp(data) == packets


def test_padding_only_on_the_last_packet() -> None:
    rr = ReceiverReport(1).serialize()
    padded = bytes.fromhex("a0 c9 00 02 00 00 00 01 00 00 00 04")  # RR with 4 octets padding
    assert parse_rtcp(rr + padded) == [ReceiverReport(1), ReceiverReport(1)]
    with pytest.raises(RtcpParseError):
        parse_rtcp(padded + rr)


@pytest.mark.parametrize(
    "hexdata",
    [
        "",
        "80 c9 00",
        "40 c9 00 01 00 00 00 01",  # version 1
        "80 c9 00 02 00 00 00 01",  # length beyond the datagram
        "81 c9 00 01 00 00 00 01",  # RC=1 without the block
        "80 c8 00 01 00 00 00 01",  # SR without sender info
        "81 ca 00 01 00 00 00 01",  # SDES chunk without items or terminator
        "81 ca 00 02 00 00 00 01 01 09 61 62",  # SDES item longer than the packet
        "81 cb 00 00",  # BYE with SC=1 and no SSRC
        "80 cb 00 01 05 61 62 63",  # BYE reason longer than the packet
        "a0 c9 00 01 00 00 00 00",  # padding count 0
        "80 c9 00 01 00 00 00 01 80",  # trailing bytes
    ],
)
def test_invalid_compounds(hexdata: str) -> None:
    with pytest.raises(RtcpParseError):
        parse_rtcp(bytes.fromhex(hexdata))


def test_construction_is_validated() -> None:
    with pytest.raises(RtcpParseError):
        ReportBlock(1, 256, 0, 0, 0)
    with pytest.raises(RtcpParseError):
        ReportBlock(1, 0, 0x800000, 0, 0)
    with pytest.raises(RtcpParseError):
        ReceiverReport(1, (BLOCK,) * 32)
    with pytest.raises(RtcpParseError):
        SdesItem(0, "x")
    with pytest.raises(RtcpParseError):
        SdesItem(1, "x" * 256)
    with pytest.raises(RtcpParseError):
        RtcpUnknown(200, 0, b"")
    with pytest.raises(RtcpParseError):
        RtcpUnknown(204, 0, b"abc")


def test_ntp_timestamps() -> None:
    assert ntp_from_unix(0) == NTP_UNIX_OFFSET << 32
    assert ntp_from_unix(0.5) == (NTP_UNIX_OFFSET << 32) + (1 << 31)
    assert ntp_middle(0x1122334455667788) == 0x33445566


def test_round_trip_time_rfc3550_example() -> None:
    # RFC 3550 §6.4.1 figure 2: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000,
    # so the round trip is 0x0006:2000 = 6.125 s.
    arrival = 0xB7108000 << 16
    assert rtt_from_report(BLOCK, arrival) == 6.125
    assert rtt_from_report(ReportBlock(1, 0, 0, 0, 0), arrival) is None
    assert rtt_from_report(BLOCK, 0xB7050000 << 16) == 0.0  # clock went backwards: clamped


_u32 = st.integers(0, 0xFFFFFFFF)
_block = st.builds(
    ReportBlock, _u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), _u32, _u32, _u32, _u32
)
_words = st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])
_text = st.text(st.characters(codec="utf-8"), max_size=40)
_packet = st.one_of(
    st.builds(SenderReport, _u32, st.integers(0, 2**64 - 1), _u32, _u32, _u32,
              st.lists(_block, max_size=3).map(tuple), _words),
    st.builds(ReceiverReport, _u32, st.lists(_block, max_size=3).map(tuple), _words),
    st.builds(SourceDescription, st.lists(st.builds(
        SdesChunk, _u32,
        st.lists(st.builds(SdesItem, st.integers(1, 255), _text), max_size=3).map(tuple)),
        max_size=3).map(tuple)),
    st.builds(Bye, st.lists(_u32, max_size=4).map(tuple), st.none() | _text),
    st.builds(RtcpUnknown, st.integers(204, 255), st.integers(0, 31), _words),
)  # fmt: skip


@given(st.lists(_packet, min_size=1, max_size=5))
def test_property_compound_round_trip(packets: list[RtcpPacket]) -> None:
    assert parse_rtcp(serialize_rtcp(packets)) == packets


@given(st.binary(max_size=120))
def test_property_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except RtcpParseError:
        return
    assert parse_rtcp(serialize_rtcp(packets)) == packets
