"""One leg's RTCP (RFC 3550 §6): the reports it writes and what it reads from the peer's."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zvonar.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    SdesType,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle,
    parse_rtcp,
    serialize_rtcp,
)
from zvonar.media.rtcp_session import MIN_INTERVAL, RtcpSession, report_interval
from zvonar.media.stats import ReceiverStats

OURS, THEIRS = 0x1111_2222, 0x3333_4444
T0 = 1_790_000_000.0  # a wall-clock time (Unix seconds)


def heard(packets: int, *, skip: frozenset[int] = frozenset()) -> ReceiverStats:
    """Receiver statistics of the peer's stream after ``packets`` 20 ms packets."""
    stats = ReceiverStats(THEIRS, 8000)
    for i in range(packets):
        if i not in skip:
            stats.update(100 + i, 1000 + 160 * i, i * 0.02)
    return stats


def test_before_sending_anything_a_leg_reports_as_a_receiver_with_its_cname() -> None:
    session = RtcpSession(OURS, cname="c-1")
    packets = parse_rtcp(
        session.report(
            wall=T0, now=1.0, rtp_timestamp=0, sent_packets=0, sent_bytes=0, receiver=None
        )
    )
    assert packets[0] == ReceiverReport(OURS, ())
    sdes = packets[1]
    assert isinstance(sdes, SourceDescription)
    assert [(c.ssrc, [(i.type, i.value) for i in c.items]) for c in sdes.chunks] == [
        (OURS, [(SdesType.CNAME, "c-1")])
    ]
    assert len(packets) == 2 and session.sent == 1


def test_a_sending_leg_sends_an_sr_with_its_counts_and_a_block_about_the_peer() -> None:
    session = RtcpSession(OURS)
    receiver = heard(50, skip=frozenset({10, 11}))
    data = session.report(
        wall=T0, now=1.0, rtp_timestamp=123_456, sent_packets=40, sent_bytes=40 * 172,
        receiver=receiver,
    )  # fmt: skip
    sr = parse_rtcp(data)[0]
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.ntp_timestamp, sr.rtp_timestamp) == (OURS, ntp_from_unix(T0), 123_456)
    assert (sr.packet_count, sr.octet_count) == (40, 40 * 160)  # payload octets (§6.4.1)
    (block,) = sr.reports
    assert (block.ssrc, block.cumulative_lost, block.highest_sequence) == (THEIRS, 2, 149)
    # Nothing sent since: the next report is an RR again (§6.4).
    again = parse_rtcp(
        session.report(
            wall=T0 + 5,
            now=6.0,
            rtp_timestamp=0,
            sent_packets=40,
            sent_bytes=40 * 172,
            receiver=receiver,
        )
    )[0]
    assert isinstance(again, ReceiverReport) and again.reports[0].fraction_lost == 0


def test_a_released_leg_says_bye_after_its_report() -> None:
    session = RtcpSession(OURS)
    packets = parse_rtcp(
        session.report(
            wall=T0, now=1.0, rtp_timestamp=0, sent_packets=0, sent_bytes=0, receiver=None, bye=True
        )
    )
    assert isinstance(packets[0], ReceiverReport) and packets[-1] == Bye((OURS,))


def peer_rr(**block: int) -> bytes:
    fields = {"fraction_lost": 0, "cumulative_lost": 0, "highest_sequence": 0, "jitter": 0}
    fields.update(block)
    return serialize_rtcp([ReceiverReport(THEIRS, (ReportBlock(OURS, **fields),))])


def test_the_peer_report_gives_loss_jitter_and_the_round_trip() -> None:
    session = RtcpSession(OURS)
    our_sr_wall = T0
    lsr = ntp_middle(ntp_from_unix(our_sr_wall))
    data = peer_rr(fraction_lost=64, cumulative_lost=5, jitter=80, lsr=lsr, dlsr=int(0.1 * 65536))
    # It arrives 350 ms after our SR left, 100 ms of which it sat at the peer: 250 ms RTT.
    assert session.receive(data, wall=our_sr_wall + 0.35, now=0.0, receiver=None, sent_packets=100)
    peer = session.peer
    assert peer is not None
    assert peer.fraction_lost == 0.25 and peer.loss == 0.05
    assert peer.jitter == pytest.approx(0.010)  # 80 samples at 8 kHz
    assert peer.rtt == pytest.approx(0.25, abs=1e-4) and session.rtt == peer.rtt
    assert session.received == 1


def test_a_report_without_an_sr_to_echo_keeps_the_last_round_trip() -> None:
    session = RtcpSession(OURS)
    lsr = ntp_middle(ntp_from_unix(T0))
    session.receive(peer_rr(lsr=lsr), wall=T0 + 0.05, now=0.0, receiver=None, sent_packets=10)
    session.receive(
        peer_rr(cumulative_lost=1), wall=T0 + 5, now=5.0, receiver=None, sent_packets=10
    )
    assert session.peer is not None and session.peer.loss == 0.1
    assert session.rtt == pytest.approx(0.05, abs=1e-4)


def test_blocks_about_other_streams_are_not_ours() -> None:
    session = RtcpSession(OURS)
    other = ReportBlock(0xDEAD, 255, 1000, 0, 0)
    data = serialize_rtcp([ReceiverReport(THEIRS, (other,))])
    assert session.receive(data, wall=T0, now=0.0, receiver=None, sent_packets=10)
    assert session.peer is None and session.received == 1


def test_the_peer_sr_is_echoed_in_our_next_block() -> None:
    session = RtcpSession(OURS)
    receiver = heard(10)
    sr = SenderReport(THEIRS, ntp_from_unix(T0), 0, 10, 1600)
    assert session.receive(
        serialize_rtcp([sr]), wall=T0, now=2.0, receiver=receiver, sent_packets=0
    )
    out = parse_rtcp(
        session.report(
            wall=T0 + 1, now=2.5, rtp_timestamp=0, sent_packets=0, sent_bytes=0, receiver=receiver
        )
    )[0]
    assert isinstance(out, ReceiverReport)
    (block,) = out.reports
    assert block.lsr == ntp_middle(sr.ntp_timestamp) and block.dlsr == 32768  # 0.5 s


def test_an_sr_of_another_source_is_not_echoed() -> None:
    session = RtcpSession(OURS)
    receiver = heard(10)
    sr = SenderReport(0xBEEF, ntp_from_unix(T0), 0, 10, 1600)
    session.receive(serialize_rtcp([sr]), wall=T0, now=2.0, receiver=receiver, sent_packets=0)
    assert receiver.report_block(2.5).lsr == 0


def test_a_bye_of_the_peer_stream_is_noted() -> None:
    session = RtcpSession(OURS)
    receiver = heard(3)
    data = serialize_rtcp([ReceiverReport(THEIRS), Bye((THEIRS,))])
    assert session.receive(data, wall=T0, now=1.0, receiver=receiver, sent_packets=0)
    assert session.peer_left


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc9\x00",  # truncated header
        b"\x80\xc9\x00\x05" + bytes(8),  # length past the end
        bytes(range(40)),
    ],
)
def test_what_is_not_rtcp_changes_nothing(data: bytes) -> None:
    session = RtcpSession(OURS)
    assert not session.receive(data, wall=T0, now=0.0, receiver=None, sent_packets=5)
    assert (session.peer, session.received, session.rejected) == (None, 0, 1)


def test_rtcp_that_is_not_a_report_is_taken_without_figures() -> None:
    # Reduced-size RTCP (RFC 5506), or an APP packet a phone sends to open its NAT.
    session = RtcpSession(OURS)
    app = serialize_rtcp([RtcpUnknown(204, 0, b"\x00\x00\x00\x01PING")])
    assert session.receive(app, wall=T0, now=0.0, receiver=None, sent_packets=5)
    assert (session.peer, session.received, session.rejected) == (None, 1, 0)


def test_intervals_are_randomised_around_the_minimum() -> None:
    rng = random.Random(7)
    regular = [report_interval(rng=rng) for _ in range(2000)]
    first = [report_interval(initial=True, rng=rng) for _ in range(2000)]
    compensation = 2.718281828 - 1.5
    assert MIN_INTERVAL * 0.5 / compensation <= min(regular)
    assert max(regular) <= MIN_INTERVAL * 1.5 / compensation
    assert max(first) <= MIN_INTERVAL * 0.75 / compensation
    assert sum(regular) / len(regular) == pytest.approx(MIN_INTERVAL / compensation, rel=0.05)
    assert len({round(x, 6) for x in regular}) > 1900  # legs do not report in step
    assert report_interval(0.2, rng=rng) <= 0.3 / compensation


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=2**31))
def test_whatever_arrives_on_the_rtcp_port_never_raises(data: bytes, sent: int) -> None:
    # Anyone can send to the port: the worst a datagram may do is be refused.
    session = RtcpSession(OURS)
    taken = session.receive(data, wall=T0, now=1.0, receiver=heard(3), sent_packets=sent)
    assert taken is (session.received == 1)
    assert session.peer is None or 0 <= session.peer.loss <= 1


@given(st.lists(st.binary(min_size=4, max_size=60), max_size=4))
def test_report_shaped_garbage_never_raises(bodies: list[bytes]) -> None:
    # Valid common headers (V=2, an SR/RR/SDES/BYE/APP type, a length that fits) around
    # arbitrary bodies reach the per-type parsers.
    data = b"".join(
        bytes((0x80 | (len(b) % 32), 200 + i % 5)) + (len(b) // 4).to_bytes(2, "big") + b
        for i, b in enumerate(body[: len(body) // 4 * 4] for body in bodies)
    )
    session = RtcpSession(OURS)
    session.receive(data, wall=T0, now=1.0, receiver=heard(3), sent_packets=10)
