"""Relaying between two scripted phones through the embedded engine, over real UDP."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.media.engine.phone import Phone, dominant, pcm_samples, tone_pcm
from zvonar.media.engine import AddressFamily, AudioCodec, LegEndpoint, RemoteMedia
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.rtp import seq_diff, ts_diff


def remote_for(phone: Phone, *, port: int | None = None) -> RemoteMedia:
    return RemoteMedia(
        address=phone.host,
        port=phone.port if port is None else port,
        codec=AudioCodec(phone.codec),
        payload_type=phone.pt,
        telephone_event_pt=phone.te_pt,
    )


async def leg_for(
    engine: EmbeddedMediaEngine, leg_id: str, phone: Phone, **kw: int
) -> tuple[str, int]:
    family = AddressFamily.IP6 if ":" in phone.host else AddressFamily.IP4
    local: LegEndpoint = await engine.allocate("call-1", leg_id, family=family)
    await engine.configure(leg_id, remote_for(phone, **kw))
    return (local.address, local.port)


async def alice_and_bob(engine: EmbeddedMediaEngine) -> tuple[Phone, Phone, tuple[str, int]]:
    """Alice on leg "a" bridged to Bob on leg "b"; where Alice sends to."""
    alice, bob = Phone(), Phone()
    to_a = await leg_for(engine, "a", alice)
    await leg_for(engine, "b", bob)
    await engine.bridge("a", "b")
    return alice, bob, to_a


def assert_one_continuous_stream(phone: Phone) -> None:
    packets = [r.packet for r in phone.received]
    assert packets, "nothing received"
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
        assert seq_diff(after.sequence_number, before.sequence_number) == 1
        assert ts_diff(after.timestamp, before.timestamp) > 0


async def test_relay_delivers_every_packet_in_order(engine: EmbeddedMediaEngine) -> None:
    alice, bob = Phone(), Phone()
    to_a = await leg_for(engine, "a", alice)
    to_b = await leg_for(engine, "b", bob)
    await engine.bridge("a", "b")
    await asyncio.gather(alice.send_tone(to_a, 440, 1.0), bob.send_tone(to_b, 880, 1.0))
    await alice.settle()
    await bob.settle()
    assert len(bob.received) == alice.sent == 50
    assert len(alice.received) == bob.sent == 50
    assert_one_continuous_stream(bob)
    assert_one_continuous_stream(alice)
    assert [r.packet.timestamp for r in bob.received][1] - bob.received[0].packet.timestamp == 160
    # Same codec: the payload passes untouched.
    relayed = b"".join(r.packet.payload for r in bob.received)
    assert relayed == alice.encode(tone_pcm(440, 1.0))
    assert dominant(pcm_samples(bob.audio()), (440, 880)) == 440
    assert dominant(pcm_samples(alice.audio()), (440, 880)) == 880
    a_stats, b_stats = await engine.stats("a"), await engine.stats("b")
    assert a_stats.rx_packets == 50 and a_stats.tx_packets == 50
    assert a_stats.lost == 0 and a_stats.loss == 0.0
    assert a_stats.mos is not None and a_stats.mos > 4.0
    assert b_stats.rx_bytes == 50 * (12 + 160)
    alice.close()
    bob.close()


async def test_latching_follows_the_real_source_port(engine: EmbeddedMediaEngine) -> None:
    """The phone's SDP names a port it does not send from (NAT): after its first packet the
    engine sends to where the packets come from."""
    alice, bob = Phone(), Phone()
    decoy = Phone()  # the SDP's port: must receive nothing once alice has spoken
    to_a = await leg_for(engine, "a", alice, port=decoy.port)
    to_b = await leg_for(engine, "b", bob)
    await engine.bridge("a", "b")
    alice.send_packet(to_a, alice.encode(tone_pcm(440, 0.02)))  # latch
    await bob.wait_packets(1)
    await bob.send_tone(to_b, 880, 0.4)
    await alice.settle()
    assert len(alice.received) == bob.sent == 20
    assert decoy.received == []
    # A third party sending to the latched leg is ignored.
    intruder = Phone()
    intruder.send_packet(to_a, intruder.encode(tone_pcm(300, 0.02)))
    await asyncio.sleep(0.05)
    assert len(bob.received) == 1
    assert (await engine.stats("a")).dropped == 1
    for phone in (alice, bob, decoy, intruder):
        phone.close()


async def test_rebridge_keeps_one_continuous_stream(engine: EmbeddedMediaEngine, tmp_path) -> None:
    """The caller hears hold music, then operator 1, then operator 2: one SSRC, sequence
    numbers without a jump, timestamps always moving forward."""
    from zvonar.media.wav import encode_wav

    music = tmp_path / "music.wav"
    music.write_bytes(encode_wav(tone_pcm(600, 0.2)))
    caller, op1, op2 = Phone(), Phone(), Phone()
    await leg_for(engine, "caller", caller)
    to_op1 = await leg_for(engine, "op1", op1)
    to_op2 = await leg_for(engine, "op2", op2)
    await engine.play("caller", music, loop=True)
    await asyncio.sleep(0.3)
    await engine.stop_playback("caller")
    await engine.bridge("caller", "op1")
    await op1.send_tone(to_op1, 440, 0.3)
    await engine.bridge("caller", "op2")  # undoes caller-op1
    await op2.send_tone(to_op2, 880, 0.3)
    await caller.settle()
    assert_one_continuous_stream(caller)
    packets = [r.packet for r in caller.received]
    assert len(packets) >= 14 + 15 + 15
    markers = [i for i, p in enumerate(packets) if p.marker]
    assert len(markers) == 3  # the first packet of each source
    # op1 is no longer bridged: its packets now go nowhere.
    await op1.send_tone(to_op1, 440, 0.1)
    await asyncio.sleep(0.05)
    assert len(caller.received) == len(packets)
    for phone in (caller, op1, op2):
        phone.close()


async def test_packets_not_relayed_leave_no_gap(engine: EmbeddedMediaEngine) -> None:
    """Comfort noise (PT 13) and a payload type nobody negotiated (18) in the middle of
    Alice's stream are not relayed; Bob's stream still counts 1, 2, 3 (a gap reads as loss,
    RFC 3550 §6.4.1). A late one — its number already passed — must not shift the
    numbering either (that would repeat a number)."""
    alice, bob, to_a = await alice_and_bob(engine)
    frame = alice.encode(tone_pcm(440, 0.02))
    for k in range(12):
        if k in (3, 4):
            alice.send_packet(to_a, b"\x40", pt=13)  # comfort noise: one level byte
        elif k == 7:
            alice.send_packet(to_a, frame, pt=18)
        else:
            alice.send_packet(to_a, frame)
        await asyncio.sleep(0.005)
    late = alice.seq  # a reordered packet from before the last ones: not the next
    alice.seq = (alice.seq - 3) & 0xFFFF
    alice.send_packet(to_a, b"\x40", pt=13)
    alice.seq = late
    for _ in range(3):
        alice.send_packet(to_a, frame)
        await asyncio.sleep(0.005)
    await bob.settle()
    assert len(bob.received) == 12 - 3 + 3
    assert_one_continuous_stream(bob)
    assert {r.packet.payload_type for r in bob.received} == {0}
    assert (await engine.stats("a")).dropped == 4
    alice.close()
    bob.close()


async def test_transcodes_pcmu_to_pcma(engine: EmbeddedMediaEngine) -> None:
    alice, bob = Phone(codec="PCMU"), Phone(codec="PCMA")
    to_a = await leg_for(engine, "a", alice)
    to_b = await leg_for(engine, "b", bob)
    await engine.bridge("a", "b")
    await asyncio.gather(alice.send_tone(to_a, 440, 0.6), bob.send_tone(to_b, 1000, 0.6))
    await bob.settle()
    await alice.settle()
    assert {r.packet.payload_type for r in bob.received} == {8}
    assert {r.packet.payload_type for r in alice.received} == {0}
    heard_by_bob = pcm_samples(bob.audio())
    heard_by_alice = pcm_samples(alice.audio())
    assert dominant(heard_by_bob, (440, 1000)) == 440
    assert dominant(heard_by_alice, (440, 1000)) == 1000
    # Decoding A-law of the transcoded tone gives back the original within G.711 precision.
    sent = pcm_samples(tone_pcm(440, 0.6))
    error = max(abs(a - b) for a, b in zip(sent[:4000], heard_by_bob[:4000], strict=True))
    assert error < 0.06 * 32767 * 0.3 + 64
    alice.close()
    bob.close()


async def test_relay_over_ipv6(engine: EmbeddedMediaEngine) -> None:
    alice, bob = Phone(host="::1"), Phone(host="::1")
    to_a = await leg_for(engine, "a", alice)
    to_b = await leg_for(engine, "b", bob)
    assert ":" in to_a[0]
    await engine.bridge("a", "b")
    await asyncio.gather(alice.send_tone(to_a, 440, 0.2), bob.send_tone(to_b, 880, 0.2))
    await bob.settle()
    await alice.settle()
    assert len(bob.received) == 10 and len(alice.received) == 10
    alice.close()
    bob.close()


async def test_sendonly_peer_gets_no_rtp(engine: EmbeddedMediaEngine) -> None:
    """A peer that holds us (our direction recvonly) must not be sent RTP (RFC 3264 §8.4)."""
    from zvonar.media.sdp import Direction

    alice, bob = Phone(), Phone()
    to_a = await leg_for(engine, "a", alice)
    local_b = await engine.allocate("call-1", "b")
    held = RemoteMedia(bob.host, bob.port, telephone_event_pt=101, direction=Direction.RECVONLY)
    await engine.configure("b", held)
    await engine.bridge("a", "b")
    await alice.send_tone(to_a, 440, 0.2)
    await asyncio.sleep(0.05)
    assert bob.received == []
    assert (await engine.stats("b")).tx_packets == 0
    assert local_b.port > 0
    alice.close()
    bob.close()


async def test_a_peer_that_held_us_hears_no_gap_when_it_resumes(
    engine: EmbeddedMediaEngine,
) -> None:
    """Bob holds alice (his re-INVITE: sendonly) while she talks on, then resumes: what he
    hears after it continues his stream at the next sequence number, a new talkspurt
    (marker) whose timestamp moved on by the time that passed. A gap of the packets not sent
    meanwhile would read as loss at his end (RFC 3550 §6.4.1) and spoil his reports."""
    from zvonar.media.sdp import Direction

    alice, bob, to_a = await alice_and_bob(engine)
    await alice.send_tone(to_a, 440, 0.2)
    await bob.settle()
    held = RemoteMedia(bob.host, bob.port, telephone_event_pt=101, direction=Direction.RECVONLY)
    await engine.configure("b", held)
    await alice.send_tone(to_a, 440, 0.2)
    await asyncio.sleep(0.05)  # the engine has taken (and not relayed) all of it
    assert len(bob.received) == 10
    await engine.configure("b", remote_for(bob))
    await alice.send_tone(to_a, 440, 0.2)
    await bob.settle()
    packets = [r.packet for r in bob.received]
    assert len(packets) == 20
    assert [
        seq_diff(b.sequence_number, a.sequence_number) for a, b in itertools.pairwise(packets)
    ] == [1] * 19
    resumed = packets[10]
    assert resumed.marker and not any(p.marker for p in packets[11:])
    assert ts_diff(resumed.timestamp, packets[9].timestamp) >= 160 * 10  # 0.2 s went by
    assert len({p.ssrc for p in packets}) == 1
    alice.close()
    bob.close()


async def test_relay_with_one_reader_per_socket() -> None:
    """The portable mux (loop.add_reader per socket) relays as the epoll one does."""
    engine = EmbeddedMediaEngine(media_timeout=0, mux="loop")
    await engine.start()
    assert engine.mux_mode == "loop"
    alice, bob, to_a = await alice_and_bob(engine)
    await alice.send_tone(to_a, 440, 0.2)
    await bob.settle()
    assert len(bob.received) == 10
    assert_one_continuous_stream(bob)
    await engine.close()


def test_relay_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> int:
        engine = EmbeddedMediaEngine(media_timeout=0)
        await engine.start()
        alice, bob, to_a = await alice_and_bob(engine)
        await alice.send_tone(to_a, 440, 0.2)
        await bob.settle()
        assert_one_continuous_stream(bob)
        await engine.close()
        alice.close()
        bob.close()
        return len(bob.received)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()) == 10
