"""The rtpengine adapter against a real userspace rtpengine on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.media.engine.conftest import Events
from tests.media.engine.phone import Phone, dominant, pcm_samples, tone_pcm
from tests.media.engine.test_relay import assert_one_continuous_stream, remote_for
from zvonar.media.engine import (
    DtmfReceived,
    MediaEngine,
    MediaTimeout,
    PlaybackFinished,
    PlaybackReason,
    RecordingFinished,
    UnsupportedError,
)
from zvonar.media.rtpengine import RtpengineMediaEngine
from zvonar.media.wav import encode_wav, parse_wav

pytestmark = pytest.mark.peer


async def leg(engine: RtpengineMediaEngine, leg_id: str, phone: Phone, call: str = "call-1"):
    local = await engine.allocate(call, leg_id)
    await engine.configure(leg_id, remote_for(phone))
    return (local.address, local.port)


async def test_adapter_is_a_media_engine(rtpe: RtpengineMediaEngine) -> None:
    assert isinstance(rtpe, MediaEngine)


async def test_relay_only_once_bridged(rtpe: RtpengineMediaEngine) -> None:
    alice, bob = Phone(), Phone()
    to_a = await leg(rtpe, "a", alice)
    to_b = await leg(rtpe, "b", bob)
    assert to_a != to_b
    await alice.send_tone(to_a, 440, 0.2)  # not bridged yet: blocked
    await asyncio.sleep(0.1)
    assert bob.received == []
    await rtpe.bridge("a", "b")
    await asyncio.gather(alice.send_tone(to_a, 440, 0.6), bob.send_tone(to_b, 880, 0.6))
    await alice.settle()
    await bob.settle()
    assert len(bob.received) == 30 and len(alice.received) == 30
    assert_one_continuous_stream(bob)
    assert dominant(pcm_samples(bob.audio()), (440, 880)) == 440
    assert dominant(pcm_samples(alice.audio()), (440, 880)) == 880
    stats = await rtpe.stats("a")
    assert stats.rx_packets == 40  # 10 blocked + 30 relayed, all received by rtpengine
    await rtpe.unbridge("a")
    await alice.send_tone(to_a, 440, 0.1)
    await asyncio.sleep(0.1)
    assert len(bob.received) == 30


async def test_transcodes_pcmu_to_pcma(rtpe: RtpengineMediaEngine) -> None:
    alice, bob = Phone(codec="PCMU"), Phone(codec="PCMA")
    to_a = await leg(rtpe, "a", alice)
    to_b = await leg(rtpe, "b", bob)
    await rtpe.bridge("a", "b")
    await asyncio.gather(alice.send_tone(to_a, 440, 0.6), bob.send_tone(to_b, 1000, 0.6))
    await alice.settle()
    await bob.settle()
    assert {r.packet.payload_type for r in bob.received} == {8}
    assert {r.packet.payload_type for r in alice.received} == {0}
    assert dominant(pcm_samples(bob.audio()), (440, 1000)) == 440
    assert dominant(pcm_samples(alice.audio()), (440, 1000)) == 1000


async def test_only_paired_legs_bridge(rtpe: RtpengineMediaEngine) -> None:
    for leg_id in ("a", "b", "c"):
        await rtpe.allocate("call-1", leg_id)
    await rtpe.bridge("a", "b")
    with pytest.raises(UnsupportedError):
        await rtpe.bridge("a", "c")


async def test_playback_of_a_prompt(
    rtpe: RtpengineMediaEngine, events: Events, tmp_path: Path
) -> None:
    prompt = tmp_path / "prompt.wav"
    prompt.write_bytes(encode_wav(tone_pcm(500, 0.4)))
    caller = Phone()
    await leg(rtpe, "c", caller)
    playback = await rtpe.play("c", prompt)
    finished = await events.wait_for(PlaybackFinished)
    await caller.settle()
    assert finished == PlaybackFinished("c", playback, PlaybackReason.COMPLETED)
    assert 19 <= len(caller.received) <= 21  # 0.4 s of 20 ms frames (rtpengine may pad one)
    assert dominant(pcm_samples(caller.audio()), (500, 1000)) == 500


async def test_recording_to_stereo_wav(
    rtpe: RtpengineMediaEngine, events: Events, tmp_path: Path
) -> None:
    caller, operator = Phone(), Phone(codec="PCMA")
    to_c = await leg(rtpe, "c", caller)
    to_o = await leg(rtpe, "o", operator)
    await rtpe.bridge("c", "o")
    path = tmp_path / "call.wav"
    recording = await rtpe.start_recording("c", path)
    await asyncio.gather(caller.send_tone(to_c, 440, 1.0), operator.send_tone(to_o, 880, 1.0))
    assert await rtpe.stop_recording(recording) == path
    done = await events.wait_for(RecordingFinished)
    wav = parse_wav(path.read_bytes())
    assert wav.channels == 2 and wav.sample_rate == 8000
    assert wav.duration == pytest.approx(1.0, abs=0.15)
    assert done.duration == pytest.approx(wav.duration)
    samples = [v * 32768 for v in wav.samples()]
    assert dominant(samples[0::2], (440, 880)) == 440
    assert dominant(samples[1::2], (440, 880)) == 880


async def test_dtmf_from_rtpengine_log(rtpe: RtpengineMediaEngine, events: Events) -> None:
    caller, operator = Phone(), Phone()
    to_c = await leg(rtpe, "c", caller)
    await leg(rtpe, "o", operator)
    await rtpe.bridge("c", "o")
    await caller.send_dtmf(to_c, "4", duration=0.1)
    digit = await events.wait_for(DtmfReceived)
    assert (digit.leg_id, digit.digit) == ("c", "4")
    assert digit.duration == pytest.approx(0.1, abs=0.03)


async def test_media_timeout_by_polling(rtpengine_daemon) -> None:
    engine = RtpengineMediaEngine(
        "127.0.0.1", rtpengine_daemon.ng_port, media_timeout=1.0, poll_interval=0.25
    )
    await engine.start()
    events = Events(engine)
    caller = Phone()
    await leg(engine, "c", caller)
    timeout = await events.wait_for(MediaTimeout, within=3.0)
    assert timeout.leg_id == "c" and timeout.seconds >= 1.0
    await engine.close()
