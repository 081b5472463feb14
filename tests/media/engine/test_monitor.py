"""Silent listening (``monitor``) in the embedded engine, over real UDP on loopback.

Three scripted phones: the caller says 440 Hz, the operator 880 Hz, the supervisor (the
monitor leg's peer) 1500 Hz. The supervisor must hear both tones mixed in one paced stream
in its own codec; the caller and the operator must hear each other and nothing of the
supervisor.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from array import array

import pytest

from tests.media.engine.phone import Phone, pcm_samples, tone_power
from tests.media.engine.test_relay import leg_for
from zvonar.media.engine import AudioCodec, MediaEngineError, UnknownLegError
from zvonar.media.g711 import ulaw_decode, ulaw_encode
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.io.leg import CLOCK_RATE
from zvonar.media.io.monitor import Mixer, mix_pcm
from zvonar.media.rtp import seq_diff, ts_diff

TONES = (440.0, 880.0, 1500.0)


def powers(phone: Phone) -> dict[float, float]:
    samples = pcm_samples(phone.audio())
    return {f: tone_power(samples, f) for f in TONES}


def assert_paced_stream(phone: Phone, frame: int = 160) -> None:
    packets = [r.packet for r in phone.received]
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
        assert seq_diff(after.sequence_number, before.sequence_number) == 1
        assert ts_diff(after.timestamp, before.timestamp) == frame
    gaps = [b.at - a.at for a, b in itertools.pairwise(phone.received)]
    assert statistics.mean(gaps) == pytest.approx(frame / CLOCK_RATE, abs=0.003)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_supervisor_hears_both_sides_and_the_call_never_hears_them(
    engine: EmbeddedMediaEngine, codec: str
) -> None:
    caller, operator, supervisor = Phone(), Phone(codec="PCMA"), Phone(codec=codec)
    to_c = await leg_for(engine, "c", caller)
    to_o = await leg_for(engine, "o", operator)
    to_s = await leg_for(engine, "s", supervisor)
    await engine.bridge("c", "o")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await engine.monitor("s", "c")
    await asyncio.gather(
        caller.send_tone(to_c, 440, 1.0),
        operator.send_tone(to_o, 880, 1.0),
        supervisor.send_tone(to_s, 1500, 1.0),
    )
    await asyncio.sleep(0.15)  # the mix runs ~60 ms behind
    stats = await engine.stats("s")
    await engine.unmonitor("s")
    listened = loop.time() - started
    await supervisor.settle()
    # One stream in the supervisor's own codec, 20 ms frames at 20 ms pace.
    assert {r.packet.payload_type for r in supervisor.received} == {supervisor.pt}
    assert len(supervisor.received) == pytest.approx((listened - 0.06) / 0.02, abs=3)
    assert_paced_stream(supervisor)
    heard = powers(supervisor)
    # Both sides, at comparable levels (they were sent at the same amplitude).
    assert heard[440] > 1000 * heard[1500] and heard[880] > 1000 * heard[1500]
    assert 0.5 < heard[440] / heard[880] < 2
    # The supervisor's phone sent 50 packets; they arrived and went nowhere.
    assert stats.rx_packets == supervisor.sent == 50
    await caller.settle()
    await operator.settle()
    assert len(caller.received) == operator.sent and len(operator.received) == caller.sent
    to_caller, to_operator = powers(caller), powers(operator)
    assert to_caller[1500] < to_caller[880] / 10_000
    assert to_operator[1500] < to_operator[440] / 10_000
    assert to_operator[880] < to_operator[440] / 10_000  # nobody hears themselves either


async def test_the_mix_is_the_sum_of_both_directions(engine: EmbeddedMediaEngine) -> None:
    """Sample-exact: constant levels on each side sum in the monitor's frames."""
    caller, operator, supervisor = Phone(), Phone(), Phone()
    to_c = await leg_for(engine, "c", caller)
    to_o = await leg_for(engine, "o", operator)
    await leg_for(engine, "s", supervisor)
    await engine.bridge("c", "o")
    await engine.monitor("s", "c")
    level = array("h", [1000] * 4000).tobytes()  # 0.5 s
    other = array("h", [-3000] * 4000).tobytes()
    await asyncio.gather(caller.send_audio(to_c, level), operator.send_audio(to_o, other))
    await asyncio.sleep(0.15)
    await engine.release("s")
    values = array("h", supervisor.audio())
    # G.711 quantizes 1000 + (-3000) = -2000 to its interval's mid-point.
    both = [v for v in values if -2200 < v < -1800]
    assert len(both) > 0.8 * 4000


async def test_monitor_follows_the_bridge_of_the_leg_it_listens_to(
    engine: EmbeddedMediaEngine,
) -> None:
    caller, first, second, supervisor = Phone(), Phone(), Phone(), Phone()
    to_c = await leg_for(engine, "c", caller)
    to_1 = await leg_for(engine, "o1", first)
    to_2 = await leg_for(engine, "o2", second)
    await leg_for(engine, "s", supervisor)
    await engine.monitor("s", "c")  # before any bridge: only the caller is heard
    await caller.send_tone(to_c, 440, 0.4)
    await engine.bridge("c", "o1")
    await first.send_tone(to_1, 880, 0.4)
    await engine.bridge("c", "o2")  # a transfer: the caller now talks to someone else
    await asyncio.gather(first.send_tone(to_1, 1500, 0.4), second.send_tone(to_2, 1500, 0.4))
    await asyncio.sleep(0.15)
    await engine.unmonitor("s")
    await supervisor.settle()
    heard = powers(supervisor)
    assert heard[440] > 0 and heard[880] > 0
    # 0.4 s of 1500 Hz came from o2 only (o1 is no longer bridged to the caller).
    assert 0.5 < heard[1500] / heard[880] < 2  # twice as loud (4x the power) if o1 leaked


async def test_listening_ends_with_unmonitor_release_or_a_bridge(
    engine: EmbeddedMediaEngine,
) -> None:
    caller, operator, supervisor = Phone(), Phone(), Phone()
    to_c = await leg_for(engine, "c", caller)
    await leg_for(engine, "o", operator)
    await leg_for(engine, "s", supervisor)
    await engine.bridge("c", "o")
    for stop in ("unmonitor", "bridge", "release"):
        await engine.monitor("s", "c")
        await supervisor.wait_packets(len(supervisor.received) + 5)
        if stop == "unmonitor":
            await engine.unmonitor("s")
        elif stop == "bridge":
            await engine.bridge("s", "o")  # a barge-in: the supervisor now talks
            await engine.bridge("c", "o")
        else:
            await engine.release("c")
        await supervisor.settle()
        count = len(supervisor.received)
        await asyncio.sleep(0.1)
        assert len(supervisor.received) == count, stop
    with pytest.raises(UnknownLegError):
        await engine.monitor("s", "c")
    await caller.send_tone(to_c, 440, 0.1)  # to a released leg: nothing breaks


async def test_monitor_refuses_what_would_be_heard(engine: EmbeddedMediaEngine) -> None:
    a, b = Phone(), Phone()
    await leg_for(engine, "a", a)
    await leg_for(engine, "b", b)
    await engine.bridge("a", "b")
    with pytest.raises(MediaEngineError):
        await engine.monitor("a", "a")
    with pytest.raises(MediaEngineError):
        await engine.monitor("b", "a")  # b talks to a
    with pytest.raises(UnknownLegError):
        await engine.monitor("x", "a")
    await engine.unmonitor("a")  # monitors nothing: a no-op


# --- the mixer alone, on a virtual clock ----------------------------------------------


class _Out:
    """Stands in for the monitor Leg: collects the frames the mixer sends."""

    codec = AudioCodec.PCMU
    ptime_samples = 160
    player = None

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int, int]] = []

    def send_frame(self, payload: bytes, seq: int, ts: int, key: object, now: float) -> None:
        self.frames.append((payload, seq, ts))


def _pcmu(value: int) -> bytes:
    return ulaw_encode(array("h", [value] * 160).tobytes())


def test_mixer_places_jittered_packets_by_timestamp() -> None:
    """Packets arriving up to 40 ms late still land in their own frame: side A's packet k
    carries level 100 (k + 1), side B's 200 (k + 1), so mixed frame k must hold 300 (k + 1).
    (Each side is anchored by its first packet's arrival, on time here: a late first packet
    shifts that side by its lateness, as in a recording.)"""
    out = _Out()
    mixer = Mixer("c", out, 0.0)  # type: ignore[arg-type]
    late = [0.0, 0.04, 0.01, 0.03, 0.0, 0.02, 0.04, 0.0, 0.01, 0.03] * 3
    arrivals = sorted(
        [(0.02 * (k + 1) + late[k], 0, k) for k in range(30)]
        + [(0.02 * (k + 1) + late[(k * 7) % 30], 1, k) for k in range(30)]
    )
    now, i = 0.0, 0
    while now < 0.8:
        now = round(now + 0.005, 3)
        while i < len(arrivals) and arrivals[i][0] <= now:
            _at, side, k = arrivals[i]
            level = (side + 1) * 100 * (k + 1)
            mixer.audio(side, 7 + side, 1000 + 160 * k, _pcmu(level), out.codec, now)
            i += 1
        mixer.tick(now)
    assert [seq for _p, seq, _ts in out.frames] == list(range(len(out.frames)))
    assert [ts for _p, _seq, ts in out.frames] == [160 * k for k in range(len(out.frames))]
    assert len(out.frames) == int((0.8 - 0.06) / 0.02)  # paced by the clock, not by packets
    for k, (payload, _seq, _ts) in enumerate(out.frames[:30]):
        want = 300 * (k + 1)
        assert set(array("h", ulaw_decode(payload))) <= set(
            range(int(want * 0.94), int(want * 1.06) + 8)
        ), k
    for payload, _seq, _ts in out.frames[30:]:
        assert payload == b"\xff" * 160  # µ-law silence once both sides stopped
    assert mixer.mixed == 30


def test_mix_pcm_sums_and_clips() -> None:
    a = array("h", [1000, 30000, -30000, 0]).tobytes()
    b = array("h", [-400, 10000, -10000, 5]).tobytes()
    assert list(array("h", mix_pcm(a, b))) == [600, 32767, -32768, 5]
