"""RTCP on the embedded engine's legs (RFC 3550 §6, SRTCP RFC 3711 §3.4), over real UDP.

Each leg terminates RTCP on its second socket: it reports on its own stream and the peer's,
learns from the peer's reports what its RTP was like at the far end, and says BYE when
released. The peer here is a UDP socket speaking RTCP through ``zvonar.media.rtcp``'s codec,
whose round trip is checked in tests/media/test_rtcp.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pylibsrtp
import pytest

from tests.media.engine.phone import Phone
from zvonar.media.engine import AudioCodec, MediaEngineError, RemoteMedia
from zvonar.media.errors import RtcpParseError
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_middle,
    parse_rtcp,
    serialize_rtcp,
)
from zvonar.media.sdes import CryptoSuite, SrtpParams, new_master_key

INTERVAL = 0.2  # the engine's minimum report interval here: reports every ~0.1-0.4 s


@pytest.fixture
async def engine() -> AsyncIterator[EmbeddedMediaEngine]:
    eng = EmbeddedMediaEngine(media_timeout=0, rtcp_interval=INTERVAL)
    await eng.start()
    yield eng
    await eng.close()


class RtcpPeer:
    """The RTCP end of a phone: what it receives, decoded (through ``unwrap`` for SRTCP)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        wrap: Callable[[bytes], bytes] | None = None,
        unwrap: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.wrap, self.unwrap = wrap, unwrap
        self.wire: list[bytes] = []
        self.reports: list[list[RtcpPacket]] = []
        self.unreadable = 0
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self._on_readable)
        self._loop = loop

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except OSError:
            return
        self.wire.append(data)
        try:
            clear = self.unwrap(data) if self.unwrap is not None else data
            self.reports.append(parse_rtcp(clear))
        except (RtcpParseError, pylibsrtp.Error):
            self.unreadable += 1

    def send(self, packets: list[RtcpPacket], dest: tuple[str, int]) -> None:
        data = serialize_rtcp(packets)
        self.sock.sendto(self.wrap(data) if self.wrap is not None else data, dest)

    async def wait(self, what: Callable[[list[RtcpPacket]], bool], within: float = 3.0) -> None:
        deadline = time.monotonic() + within
        while not any(what(r) for r in self.reports):
            if time.monotonic() > deadline:
                raise AssertionError(f"no such report within {within} s: {self.reports}")
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


@pytest.fixture
async def peers() -> AsyncIterator[list[RtcpPeer]]:
    made: list[RtcpPeer] = []
    yield made
    for peer in made:
        peer.close()


def remote(phone: Phone, rtcp: RtcpPeer, srtp: SrtpParams | None = None) -> RemoteMedia:
    return RemoteMedia(
        phone.host, phone.port, AudioCodec.PCMU, 0, 101, srtp=srtp, rtcp_port=rtcp.address[1]
    )


def is_sr(packets: list[RtcpPacket]) -> bool:
    return isinstance(packets[0], SenderReport)


def first_block(packets: list[RtcpPacket]) -> ReportBlock | None:
    head = packets[0]
    return head.reports[0] if isinstance(head, SenderReport | ReceiverReport) else None


def head_ssrc(packets: list[RtcpPacket]) -> int:
    head = packets[0]
    assert isinstance(head, SenderReport | ReceiverReport)
    return head.ssrc


async def relayed_call(
    engine: EmbeddedMediaEngine, peers: list[RtcpPeer]
) -> tuple[Phone, RtcpPeer, Phone, tuple[str, int], tuple[str, int]]:
    """Leg "a" (phone alice, whose RTCP end is returned) bridged to leg "b" (bob); alice
    and bob each send 0.4 s of tone, so leg "a" both sends and receives."""
    a = await engine.allocate("call-1", "a")
    b = await engine.allocate("call-1", "b")
    assert a.rtcp_port is not None and b.rtcp_port is not None
    alice, bob, alice_rtcp = Phone(), Phone(), RtcpPeer()
    peers.append(alice_rtcp)
    await engine.configure("a", remote(alice, alice_rtcp))
    await engine.configure("b", RemoteMedia(bob.host, bob.port, AudioCodec.PCMU, 0, 101))
    await engine.bridge("a", "b")
    await asyncio.gather(
        alice.send_tone((a.address, a.port), 440, 0.4), bob.send_tone((b.address, b.port), 880, 0.4)
    )
    await alice.settle()
    return alice, alice_rtcp, bob, (a.address, a.rtcp_port), (b.address, b.port)


async def test_a_leg_reports_on_both_streams_to_the_peer_rtcp_port(
    engine: EmbeddedMediaEngine, peers: list[RtcpPeer]
) -> None:
    alice, alice_rtcp, _bob, _to_rtcp, _ = await relayed_call(engine, peers)
    # Reports went out while the tones played. One SR counts all 20 packets alice heard (it
    # is the last SR: nothing is sent after it), and the reports from some point on show all
    # of alice's stream received; the two need not be the same report.
    last = alice.seq - 1

    def all_sent(r: list[RtcpPacket]) -> bool:
        return isinstance(r[0], SenderReport) and r[0].packet_count == len(alice.received)

    def all_heard(r: list[RtcpPacket]) -> bool:
        block = first_block(r)
        return block is not None and block.highest_sequence == last

    await alice_rtcp.wait(all_sent)
    await alice_rtcp.wait(all_heard)
    sr = next(r for r in alice_rtcp.reports if all_sent(r))
    report = sr[0]
    assert isinstance(report, SenderReport)
    # The SR is about the stream alice hears: the same SSRC, every packet of it counted.
    assert report.ssrc == alice.received[0].packet.ssrc
    assert report.packet_count == len(alice.received) == 20
    assert report.octet_count == 20 * 160
    # The blocks are about alice's stream: everything she sent arrived.
    block = first_block(next(r for r in alice_rtcp.reports if all_heard(r)))
    assert block is not None and block.ssrc == alice.ssrc and block.cumulative_lost == 0
    sdes = sr[1]
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].ssrc == report.ssrc
    assert sdes.chunks[0].items[0].value  # a CNAME (random per leg, RFC 7022)
    stats = await engine.stats("a")
    assert stats.rtcp_sent >= 1


async def test_the_peer_report_gives_the_far_end_loss_and_the_round_trip(
    engine: EmbeddedMediaEngine, peers: list[RtcpPeer]
) -> None:
    alice, alice_rtcp, _bob, to_rtcp, _ = await relayed_call(engine, peers)
    await alice_rtcp.wait(is_sr)
    before = await engine.stats("a")
    assert (before.peer_loss, before.rtt_ms, before.rtcp_received) == (None, None, 0)
    sr = next(r[0] for r in alice_rtcp.reports if is_sr(r))
    assert isinstance(sr, SenderReport)
    # Alice held the engine's SR for 40 ms, and says 4 of its 20 packets never came.
    our = ReportBlock(
        sr.ssrc, 51, 4, 0, 8 * 30, lsr=ntp_middle(sr.ntp_timestamp), dlsr=int(0.04 * 65536)
    )
    alice_rtcp.send([ReceiverReport(alice.ssrc, (our,))], to_rtcp)
    for _ in range(100):
        stats = await engine.stats("a")
        if stats.rtcp_received:
            break
        await asyncio.sleep(0.01)
    assert stats.rtcp_received == 1
    assert stats.peer_loss == pytest.approx(0.2)
    assert stats.peer_jitter_ms == pytest.approx(30.0)
    # Round trip: from the SR's timestamp to now, less the 40 ms alice held it.
    sr_age = time.time() - (sr.ntp_timestamp / 2**32 - 2_208_988_800)
    assert stats.rtt_ms is not None and 0 <= stats.rtt_ms <= sr_age * 1000 - 40 + 5
    # The call's quality is the worse direction: alice's loss, not the clean stream we got.
    assert before.mos is not None and stats.mos is not None and stats.mos < before.mos - 0.5


async def test_reports_follow_the_peer_rtcp_source_and_strangers_are_ignored(
    engine: EmbeddedMediaEngine, peers: list[RtcpPeer]
) -> None:
    alice, alice_rtcp, _bob, to_rtcp, _ = await relayed_call(engine, peers)
    await alice_rtcp.wait(is_sr)
    # A stranger on another address: its report is dropped, and steers nothing.
    stranger = RtcpPeer("127.0.0.2")
    peers.append(stranger)
    stranger.send([ReceiverReport(0x5555, (ReportBlock(0, 255, 20, 0, 0),))], to_rtcp)
    # Alice's RTCP comes from a port her SDP did not name (a NAT): we answer there.
    behind_nat = RtcpPeer()
    peers.append(behind_nat)
    behind_nat.send([ReceiverReport(alice.ssrc)], to_rtcp)
    await behind_nat.wait(lambda r: True)
    stats = await engine.stats("a")
    assert stats.rtcp_received == 1 and stats.peer_loss is None
    assert stats.dropped >= 1
    await asyncio.sleep(0.5)
    assert stranger.reports == []


async def test_a_released_leg_says_bye(engine: EmbeddedMediaEngine, peers: list[RtcpPeer]) -> None:
    _alice, alice_rtcp, _bob, _to_rtcp, _ = await relayed_call(engine, peers)
    await engine.release("a")
    await alice_rtcp.wait(lambda r: isinstance(r[-1], Bye))
    assert isinstance(alice_rtcp.reports[-1][0], SenderReport | ReceiverReport)


async def test_a_leg_that_never_sent_anything_leaves_without_a_bye(
    engine: EmbeddedMediaEngine, peers: list[RtcpPeer]
) -> None:
    await engine.allocate("call-1", "a")
    phone, rtcp = Phone(), RtcpPeer()
    peers.append(rtcp)
    await engine.configure("a", remote(phone, rtcp))
    await engine.release("a")  # before its first report is due (RFC 3550 §6.3.7)
    await asyncio.sleep(0.3)
    assert rtcp.wire == []


async def test_legs_from_a_port_range_take_rtcp_on_the_odd_port_above(
    peers: list[RtcpPeer],
) -> None:
    engine = EmbeddedMediaEngine(media_timeout=0, port_range=(41000, 41005))
    await engine.start()
    try:
        legs = [await engine.allocate("c", f"l{i}") for i in range(3)]
        assert sorted(leg.port for leg in legs) == [41000, 41002, 41004]
        assert all(leg.rtcp_port == leg.port + 1 for leg in legs)
        with pytest.raises(Exception, match="no free RTP port"):
            await engine.allocate("c", "l3")
        await engine.release("l1")
        again = await engine.allocate("c", "l4")
        assert (again.port, again.rtcp_port) == (legs[1].port, legs[1].port + 1)
    finally:
        await engine.close()


async def test_a_pair_whose_rtcp_port_is_taken_is_skipped(peers: list[RtcpPeer]) -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", 41011))
    engine = EmbeddedMediaEngine(media_timeout=0, port_range=(41010, 41013))
    await engine.start()
    try:
        leg = await engine.allocate("c", "l")
        assert (leg.port, leg.rtcp_port) == (41012, 41013)
    finally:
        await engine.close()
        squatter.close()


def _session(key: bytes, direction: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key, ssrc_type=direction, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    )
    return pylibsrtp.Session(policy)


async def test_a_secured_leg_speaks_srtcp_and_refuses_plain_rtcp(
    engine: EmbeddedMediaEngine, peers: list[RtcpPeer]
) -> None:
    a = await engine.allocate("call-1", "a")
    assert a.srtp_key is not None and a.rtcp_port is not None
    phone_key = new_master_key()
    to_phone = _session(a.srtp_key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
    from_phone = _session(phone_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    phone = Phone(wrap=from_phone.protect, unwrap=to_phone.unprotect)
    rtcp = RtcpPeer(wrap=from_phone.protect_rtcp, unwrap=to_phone.unprotect_rtcp)
    peers.append(rtcp)
    params = SrtpParams(CryptoSuite.AES_CM_128_HMAC_SHA1_80, a.srtp_key, phone_key)
    await engine.configure("a", remote(phone, rtcp, params))
    await phone.send_tone((a.address, a.port), 440, 0.2)
    await rtcp.wait(lambda r: isinstance(r[0], ReceiverReport) and bool(r[0].reports))
    # The wire carries SRTCP: read as clear RTCP its tail is the index and tag, not a report.
    assert rtcp.unreadable == 0 and all(len(w) >= 8 + 4 + 10 for w in rtcp.wire)
    with pytest.raises(pylibsrtp.Error):
        _session(new_master_key(), pylibsrtp.Policy.SSRC_ANY_INBOUND).unprotect_rtcp(rtcp.wire[0])
    # Plain RTCP from the phone's own address is not believed on a secured leg...
    block = ReportBlock(0, 0, 0, 0, 0)
    plain = serialize_rtcp([ReceiverReport(phone.ssrc, (block,))])
    rtcp.sock.sendto(plain, ("127.0.0.1", a.rtcp_port))
    await asyncio.sleep(0.1)
    assert (await engine.stats("a")).rtcp_received == 0
    # ...SRTCP under the phone's key is.
    sr_ssrc = head_ssrc(rtcp.reports[0])
    rtcp.send(
        [ReceiverReport(phone.ssrc, (ReportBlock(sr_ssrc, 0, 3, 0, 0),))],
        ("127.0.0.1", a.rtcp_port),
    )
    for _ in range(100):
        stats = await engine.stats("a")
        if stats.rtcp_received:
            break
        await asyncio.sleep(0.01)
    assert stats.rtcp_received == 1 and stats.srtp


async def test_a_peer_that_holds_the_call_and_stops_reporting_is_gone(
    peers: list[RtcpPeer],
) -> None:
    """On hold the peer sends no RTP, so only its RTCP shows it is alive: a phone that has
    reported during the hold and then falls silent times out; one that keeps reporting,
    never reported (a phone without RTCP), or stopped reporting when it held, does not."""
    from tests.media.engine.conftest import Events
    from zvonar.media.engine import MediaTimeout
    from zvonar.media.sdp import Direction

    engine = EmbeddedMediaEngine(media_timeout=0.8, rtcp_interval=INTERVAL)
    await engine.start()
    events = Events(engine)
    try:
        legs = {}
        names = ("silent", "reporting", "no_rtcp", "stopped_at_hold")
        for name in names:
            legs[name] = await engine.allocate("c", name)
            rtcp = RtcpPeer()
            peers.append(rtcp)
            phone = Phone()
            talking = RemoteMedia("127.0.0.1", phone.port, rtcp_port=rtcp.address[1])
            held = RemoteMedia(
                "127.0.0.1", phone.port, direction=Direction.SENDONLY, rtcp_port=rtcp.address[1]
            )  # our direction sendonly: the peer holds the call (RFC 3264 §8.4)
            if name == "stopped_at_hold":  # it reported while talking, then held: silence
                await engine.configure(name, talking)
                rtcp.send([ReceiverReport(0x53)], ("127.0.0.1", legs[name].rtcp_port or 0))
                await asyncio.sleep(0.1)
            await engine.configure(name, held)
        silent, reporting = peers[-4], peers[-3]
        to = {name: ("127.0.0.1", leg.rtcp_port or 0) for name, leg in legs.items()}
        assert (await engine.stats("stopped_at_hold")).rtcp_received == 1
        silent.send([ReceiverReport(0x51)], to["silent"])
        start = time.monotonic()
        timeout = await events.wait_for(MediaTimeout, within=3.0)
        assert timeout.leg_id == "silent" and time.monotonic() - start >= 0.7
        for _ in range(8):  # 1.6 s more: the others are still there
            reporting.send([ReceiverReport(0x52)], to["reporting"])
            await asyncio.sleep(0.2)
        assert [e.leg_id for e in events.of(MediaTimeout)] == ["silent"]
    finally:
        await engine.close()


async def test_sockets_that_cannot_be_opened_are_a_media_error_not_a_crash() -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this host: bind fails as it would on EMFILE.
    engine = EmbeddedMediaEngine(host4="192.0.2.1", media_timeout=0)
    await engine.start()
    try:
        with pytest.raises(MediaEngineError, match="cannot open media sockets"):
            await engine.allocate("c", "l")
        assert engine.leg_count == 0
    finally:
        await engine.close()


async def test_multiplexed_rtcp_shares_the_rtp_port_both_ways(
    engine: EmbeddedMediaEngine, peers: list[RtcpPeer]
) -> None:
    """RFC 5761: with a=rtcp-mux agreed, the peer's reports arrive on our RTP port and ours
    go to its RTP port, where its RTP comes from; nothing goes to the RTCP ports."""
    leg = await engine.allocate("call-1", "a")
    assert leg.rtcp_mux and leg.rtcp_port is not None
    phone = RtcpPeer()  # the phone's one port, RTP and RTCP alike
    elsewhere = RtcpPeer()  # the RTCP port a non-multiplexing peer would use
    peers.extend((phone, elsewhere))
    await engine.configure(
        "a",
        RemoteMedia("127.0.0.1", phone.address[1], rtcp_port=elsewhere.address[1], rtcp_mux=True),
    )
    await phone.wait(lambda r: isinstance(r[0], ReceiverReport))
    sr = ReportBlock(0, 0, 0, 0, 0)
    phone.send([ReceiverReport(0x77, (sr,))], ("127.0.0.1", leg.port))
    for _ in range(100):
        stats = await engine.stats("a")
        if stats.rtcp_received:
            break
        await asyncio.sleep(0.01)
    assert stats.rtcp_received == 1 and stats.dropped == 0
    assert elsewhere.wire == []
    # Without the agreement the same datagram on the RTP port is dropped, not believed.
    await engine.configure("a", RemoteMedia("127.0.0.1", phone.address[1]))
    phone.send([ReceiverReport(0x77, (sr,))], ("127.0.0.1", leg.port))
    await asyncio.sleep(0.1)
    stats = await engine.stats("a")
    assert stats.rtcp_received == 1 and stats.dropped == 1
