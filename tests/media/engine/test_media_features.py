"""Playback, recording, DTMF and media timeout of the embedded engine, over real UDP."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.media.engine.conftest import Events
from tests.media.engine.phone import (
    Phone,
    dominant,
    dual_tone_pcm,
    pcm_samples,
    tone_pcm,
    tone_power,
)
from tests.media.engine.test_relay import leg_for
from zvonar.media.engine import (
    AudioCodec,
    DtmfReceived,
    MediaTimeout,
    PlaybackFinished,
    PlaybackReason,
    PromptNotFoundError,
    RecordingFinished,
    RemoteMedia,
    UnknownLegError,
)
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.rtp import seq_diff
from zvonar.media.wav import encode_wav, parse_wav

ROOT = Path(__file__).resolve().parents[3]


def write_tone(path: Path, freq: float, seconds: float) -> Path:
    path.write_bytes(encode_wav(tone_pcm(freq, seconds)))
    return path


def channels(path: Path) -> tuple[list[float], list[float], float]:
    wav = parse_wav(path.read_bytes())
    assert (wav.channels, wav.sample_rate, wav.bits_per_sample) == (2, 8000, 16)
    samples = [v * 32768 for v in wav.samples()]
    return samples[0::2], samples[1::2], wav.duration


async def test_playback_sends_the_whole_file_then_reports(
    engine: EmbeddedMediaEngine, events: Events, tmp_path: Path
) -> None:
    prompt = write_tone(tmp_path / "prompt.wav", 500, 0.5)  # 25 frames of 20 ms
    caller = Phone(codec="PCMA")
    await leg_for(engine, "c", caller)
    started = time.monotonic()
    playback = await engine.play("c", prompt)
    finished = await events.wait_for(PlaybackFinished)
    elapsed = time.monotonic() - started
    await caller.settle()
    assert finished == PlaybackFinished("c", playback, PlaybackReason.COMPLETED)
    assert len(caller.received) == 25
    assert 0.42 <= elapsed <= 1.0  # paced in real time, not sent in a burst
    packets = [r.packet for r in caller.received]
    assert all(
        seq_diff(b.sequence_number, a.sequence_number) == 1 for a, b in itertools.pairwise(packets)
    )
    assert {p.payload_type for p in packets} == {8}  # encoded in the leg's codec
    arrivals = [r.at for r in caller.received]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.02, abs=0.003)
    assert dominant(pcm_samples(caller.audio()), (500, 1000)) == 500
    caller.close()


async def test_looped_playback_runs_until_stopped(
    engine: EmbeddedMediaEngine, events: Events, tmp_path: Path
) -> None:
    music = write_tone(tmp_path / "music.wav", 700, 0.1)  # 5 frames, looped
    caller = Phone()
    await leg_for(engine, "c", caller)
    playback = await engine.play("c", music, loop=True)
    await asyncio.sleep(0.5)
    assert events.of(PlaybackFinished) == []
    await engine.stop_playback("c")
    finished = await events.wait_for(PlaybackFinished)
    assert finished == PlaybackFinished("c", playback, PlaybackReason.STOPPED)
    await caller.settle()
    assert 22 <= len(caller.received) <= 29  # ~0.5 s of 20 ms frames
    with pytest.raises(PromptNotFoundError):
        await engine.play("c", tmp_path / "missing.wav")


async def test_default_prompt_plays(engine: EmbeddedMediaEngine, events: Events) -> None:
    from zvonar.media.prompts import prompt_path

    path = prompt_path("please_wait", "en")
    frames = -(-parse_wav(path.read_bytes()).frames // 160)
    caller = Phone()
    await leg_for(engine, "c", caller)
    await engine.play("c", path)
    await events.wait_for(PlaybackFinished, within=frames * 0.02 + 2)
    await caller.settle()
    assert len(caller.received) == frames


async def test_recording_is_stereo_caller_left_operator_right(
    engine: EmbeddedMediaEngine, events: Events, tmp_path: Path
) -> None:
    caller, operator = Phone(), Phone(codec="PCMA")
    to_c = await leg_for(engine, "c", caller)
    to_o = await leg_for(engine, "o", operator)
    await engine.bridge("c", "o")
    path = tmp_path / "call.wav"
    started = time.monotonic()
    recording = await engine.start_recording("c", path)
    await asyncio.gather(caller.send_tone(to_c, 440, 1.0), operator.send_tone(to_o, 880, 1.0))
    assert await engine.stop_recording(recording) == path
    wall = time.monotonic() - started
    done = await events.wait_for(RecordingFinished)
    left, right, duration = channels(path)
    assert done.path == path and done.duration == pytest.approx(duration, abs=0.001)
    assert duration == pytest.approx(wall, abs=0.05)
    assert dominant(left, (440, 880)) == 440
    assert dominant(right, (440, 880)) == 880
    # Nothing is mixed: each channel holds its own tone only.
    assert tone_power(left, 880) < tone_power(left, 440) / 100
    assert tone_power(right, 440) < tone_power(right, 880) / 100


async def test_recording_fills_gaps_with_silence(
    engine: EmbeddedMediaEngine, tmp_path: Path
) -> None:
    caller, operator = Phone(), Phone()
    to_c = await leg_for(engine, "c", caller)
    await leg_for(engine, "o", operator)
    await engine.bridge("c", "o")
    path = tmp_path / "gaps.wav"
    recording = await engine.start_recording("c", path)
    await caller.send_tone(to_c, 440, 0.2)
    caller.ts += 8000 * 3 // 10  # 0.3 s the caller did not send (silence suppression)
    await asyncio.sleep(0.3)
    await caller.send_tone(to_c, 440, 0.2)
    await engine.stop_recording(recording)
    left, right, duration = channels(path)
    assert duration == pytest.approx(0.7, abs=0.08)
    assert max(abs(v) for v in right) == 0  # the operator never spoke
    # Find the gap: a run of silence of about 0.3 s between the two bursts.
    loud = [i for i, v in enumerate(left) if abs(v) > 1000]
    gaps = [b - a for a, b in itertools.pairwise(loud)]
    assert max(gaps) == pytest.approx(2400, abs=200)


def test_killed_recording_is_still_a_valid_wav(tmp_path: Path) -> None:
    """The engine process dies mid-call (SIGKILL, no close): the file is a readable WAV."""
    path = tmp_path / "killed.wav"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from tests.media.engine.phone import Phone
        from tests.media.engine.test_relay import leg_for
        from zvonar.media.io import EmbeddedMediaEngine

        async def main():
            engine = EmbeddedMediaEngine(media_timeout=0)
            await engine.start()
            caller, operator = Phone(), Phone()
            to_c = await leg_for(engine, "c", caller)
            await leg_for(engine, "o", operator)
            await engine.bridge("c", "o")
            await engine.start_recording("c", Path({str(path)!r}))
            await caller.send_tone(to_c, 440, 2.5)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    left, _right, duration = channels(path)
    # Flushed about once a second, each flush holding back the 0.3 s jitter margin.
    assert 1.0 <= duration <= 2.5, duration
    assert dominant(left, (440, 880)) == 440
    assert os.path.getsize(path) == 44 + round(duration * 8000) * 4


async def test_rfc4733_digit_is_reported(engine: EmbeddedMediaEngine, events: Events) -> None:
    caller, operator = Phone(), Phone()
    to_c = await leg_for(engine, "c", caller)
    await leg_for(engine, "o", operator)
    await engine.bridge("c", "o")
    await caller.send_dtmf(to_c, "7", duration=0.12)
    digit = await events.wait_for(DtmfReceived)
    assert digit == DtmfReceived("c", "7", 0.12, inband=False)
    # The events are relayed to the bridged leg with its telephone-event type.
    await operator.settle()
    assert {r.packet.payload_type for r in operator.received} == {101}
    assert len(operator.received) == caller.sent


async def test_inband_digit_is_detected_without_telephone_event(
    engine: EmbeddedMediaEngine, events: Events
) -> None:
    caller = Phone()
    to_c = await engine.allocate("call-1", "c")
    await engine.configure("c", RemoteMedia(caller.host, caller.port, AudioCodec.PCMU, 0, None))
    silence = bytes(2 * 800)
    pcm = dual_tone_pcm(852, 1477, 0.1) + silence  # "9": row 852 Hz, column 1477 Hz
    await caller.send_audio((to_c.address, to_c.port), pcm)
    digit = await events.wait_for(DtmfReceived)
    assert (digit.leg_id, digit.digit, digit.inband) == ("c", "9", True)
    assert digit.duration == pytest.approx(0.1, abs=0.03)


async def test_media_timeout_fires_once_and_rearms() -> None:
    engine = EmbeddedMediaEngine(media_timeout=0.3)
    await engine.start()
    events = Events(engine)
    caller = Phone()
    to_c = await leg_for(engine, "c", caller)
    timeout = await events.wait_for(MediaTimeout, within=1.5)
    assert timeout.leg_id == "c" and timeout.seconds >= 0.3
    await asyncio.sleep(0.5)
    assert len(events.of(MediaTimeout)) == 1  # not repeated while the silence lasts
    await caller.send_tone(to_c, 440, 0.1)  # media comes back, then stops again
    await asyncio.sleep(0.8)
    assert len(events.of(MediaTimeout)) == 2
    await engine.close()
    caller.close()


async def test_release_reports_final_stats_and_stops_playback(
    engine: EmbeddedMediaEngine, events: Events, tmp_path: Path
) -> None:
    caller = Phone()
    to_c = await leg_for(engine, "c", caller)
    await engine.play("c", write_tone(tmp_path / "m.wav", 400, 1.0), loop=True)
    await caller.send_tone(to_c, 440, 0.1)
    await asyncio.sleep(0.05)
    stats = await engine.release("c")
    assert stats.rx_packets == 5 and stats.tx_packets >= 5
    finished = await events.wait_for(PlaybackFinished)
    assert finished.reason is PlaybackReason.RELEASED
    assert engine.leg_count == 0
    with pytest.raises(UnknownLegError):
        await engine.stats("c")
