"""Monitoring: both directions of a bridged pair mixed into one stream for a silent listener.

A :class:`Mixer` is a tap (as a recorder is) on a monitored leg (channel 0: what that leg's
peer says) and on whatever leg is bridged to it (channel 1: the other side). Each direction
is decoded into a :class:`~zvonar.media.io.timeline.Track` at the place its RTP timestamp
gives; on the engine's clock the mixer takes one frame (the monitor leg's ptime, 20 ms by
default) from both tracks, sums the samples (clipped to int16), encodes the sum in the
monitor leg's codec and sends it on the monitor leg's own stream. A frame goes out
``delay`` seconds after its last sample was due, so packets that arrive a little late (the
jitter a phone would also wait for) still make it into the mix; a track whose packets come
later than that is re-anchored at their arrival rather than losing every frame.

The monitor leg is bridged to nothing: what the listener's phone sends is counted and
dropped by the leg, so the call never hears them.

Frames are paced like a prompt (:mod:`zvonar.media.io.player`): frame ``k`` is due at
``start + (k + 1) * period + delay``, and a late tick sends the frames it owes, at most
:data:`MAX_CATCH_UP` (older ones are skipped, keeping the timeline).
"""

from __future__ import annotations

import sys
from array import array

from zvonar.media.engine import AudioCodec
from zvonar.media.g711 import alaw_encode, ulaw_encode
from zvonar.media.io.leg import CLOCK_RATE, Leg
from zvonar.media.io.player import MAX_CATCH_UP
from zvonar.media.io.timeline import Track

__all__ = ["DEFAULT_DELAY", "Mixer", "mix_pcm"]

DEFAULT_DELAY = 0.06  # seconds a frame waits for late packets before it is mixed and sent
_LITTLE = sys.byteorder == "little"
_ENCODE = {AudioCodec.PCMU: ulaw_encode, AudioCodec.PCMA: alaw_encode}
_SILENCE = {AudioCodec.PCMU: b"\xff", AudioCodec.PCMA: b"\xd5"}


def _samples(pcm: bytes) -> array[int]:
    out = array("h", pcm)
    if not _LITTLE:
        out.byteswap()
    return out


def mix_pcm(a: bytes, b: bytes) -> bytes:
    """The sample-wise sum of two int16 LE buffers of one length, clipped to int16."""
    total = array(
        "h",
        [
            s if -32768 <= s <= 32767 else (32767 if s > 0 else -32768)
            for s in map(int.__add__, _samples(a), _samples(b))
        ],
    )
    if not _LITTLE:
        total.byteswap()
    return total.tobytes()


class Mixer:
    """Feeds ``out`` (the monitor leg) the mix of ``leg_id`` and its bridged peer."""

    def __init__(
        self, leg_id: str, out: Leg, start: float, *, delay: float = DEFAULT_DELAY
    ) -> None:
        self.leg_id = leg_id  # the monitored leg (the engine matches taps by it)
        self.channel = 0  # the monitored leg's channel; its peer's is 1
        self.out = out
        self.start = start
        self.delay = delay
        self.samples = out.ptime_samples  # fixed for the mixer's life: the timeline's frame
        self.period = self.samples / CLOCK_RATE
        self.tracks = (Track(reanchor_late=True), Track(reanchor_late=True))
        self.sent = 0  # frames accounted for (sent or skipped)
        self.seq = 0
        self.ts = 0
        self.mixed = 0  # frames that carried audio from at least one side

    @property
    def base(self) -> int:
        """Timeline position of the tracks' first buffered sample."""
        return self.sent * self.samples

    def audio(
        self, channel: int, ssrc: int, ts: int, payload: bytes, codec: AudioCodec, now: float
    ) -> None:
        wall = max(0, round((now - self.start) * CLOCK_RATE) - len(payload))
        self.tracks[channel].put(ssrc, ts, payload, codec, wall, self.base)

    def due(self, now: float) -> int:
        return int((now - self.start - self.delay) / self.period) - self.sent

    def tick(self, now: float) -> None:
        """Send the frames due by ``now`` (called on every engine tick)."""
        due = self.due(now)
        if due <= 0:
            return
        size = 2 * self.samples
        if due > MAX_CATCH_UP:  # the loop stalled: drop what could not go out in time
            for _ in range(due - MAX_CATCH_UP):
                for track in self.tracks:
                    track.skip(size)
                self._advance()
            due = MAX_CATCH_UP
        out = self.out
        for _ in range(due):
            a, b = self.tracks
            has_a, has_b = bool(a.pcm), bool(b.pcm)
            first, second = a.take(size), b.take(size)
            codec = out.codec  # a re-INVITE may have switched it
            if has_a and has_b:
                payload = _ENCODE[codec](mix_pcm(first, second))
            elif has_a or has_b:
                payload = _ENCODE[codec](first if has_a else second)
            else:
                payload = _SILENCE[codec] * self.samples
            if has_a or has_b:
                self.mixed += 1
            # A prompt played into the monitor leg takes its stream over meanwhile.
            if out.player is None:
                out.send_frame(payload, self.seq, self.ts, self, now)
            self._advance()

    def _advance(self) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + self.samples) & 0xFFFFFFFF
        self.sent += 1
