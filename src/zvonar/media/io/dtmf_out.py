"""Keys we send on a leg's outgoing stream: RFC 4733 telephone-events where the leg negotiated
them, else in-band tones (ITU-T Q.23 dual tones in the leg's codec).

Two cases need it. A phone set to send its keys by SIP INFO talks to a carrier (a bank's IVR,
a colleague's voicemail behind a trunk) that only listens to the media: the call layer turns
the INFO into events here (``MediaEngine.send_dtmf``). And a phone sending RFC 4733 talks
through a trunk that negotiated no telephone-event (an in-band-only carrier): the engine
plays the key it received as tones to that side (engine.py), where the relay had nothing to
relay it as. The packets are planned ahead — :func:`zvonar.media.dtmf.generate_dtmf` for
events (marker on the first, an update every ptime, the end packet three times), tone frames
for in-band — and paced by the engine's tick, like a prompt.

They go on the leg's one outgoing stream (leg.py): the next sequence numbers, and a start
timestamp where the stream's clock stands now. While a digit goes out, what the bridged leg
relays (and a prompt) is held back (RFC 4733 §2.5.1.1 lets a sender stop audio during an
event, and a receiver must not see two sources interleaved); afterwards the stream's clock
is moved past the digit and the relay re-anchors, so timestamps go on with real time.
Digits asked for while one is going out wait their turn.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from zvonar.media.dtmf import generate_dtmf
from zvonar.media.engine import AudioCodec
from zvonar.media.g711 import alaw_encode, ulaw_encode
from zvonar.media.goertzel import COLUMN_FREQUENCIES, ROW_FREQUENCIES
from zvonar.media.io.leg import CLOCK_RATE, Leg

__all__ = ["GAP", "DtmfSender", "tone_frames"]

GAP = 0.05  # seconds between two digits sent as events
PAUSE = 0.06  # seconds of silence after a digit sent as tones
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_AMPLITUDE = 0.2 * 32767  # per tone: about -10 dBm0 each, well inside Q.24's window


@dataclass(frozen=True, slots=True)
class _Packet:
    offset: float  # seconds after the digit starts
    payload: bytes
    marker: bool
    timestamp: int
    event: bool  # a telephone-event (else an audio frame)


def tone_frames(digit: str, duration: float, ptime_samples: int, codec: AudioCodec) -> list[bytes]:
    """``digit``'s dual tone for ``duration`` seconds and a pause, as G.711 frames of
    ``ptime_samples``."""
    row = next(i for i, keys in enumerate(_KEYPAD) if digit.upper() in keys)
    col = _KEYPAD[row].index(digit.upper())
    low, high = ROW_FREQUENCIES[row], COLUMN_FREQUENCIES[col]
    count = max(1, round(duration * CLOCK_RATE / ptime_samples))
    pcm = bytearray()
    for n in range(count * ptime_samples):
        t = n / CLOCK_RATE
        value = _AMPLITUDE * (math.sin(2 * math.pi * low * t) + math.sin(2 * math.pi * high * t))
        pcm += int(value).to_bytes(2, "little", signed=True)
    # Then a pause (Q.24: at least 40 ms) as silence frames: a receiver that pieces the audio
    # together from packets must not hear two keys run into one.
    pcm += bytes(2 * ptime_samples * max(1, round(PAUSE * CLOCK_RATE / ptime_samples)))
    encoded = ulaw_encode(pcm) if codec is AudioCodec.PCMU else alaw_encode(pcm)
    return [encoded[i : i + ptime_samples] for i in range(0, len(encoded), ptime_samples)]


class DtmfSender:
    """The digits queued for one leg, sent as the engine ticks."""

    def __init__(self, leg: Leg) -> None:
        self.leg = leg
        self._queue: deque[tuple[str, float]] = deque()
        self._packets: list[_Packet] = []
        self._index = 0
        self._start = 0.0
        self._end_ts = 0
        self._not_before = 0.0

    def add(self, digit: str, duration: float) -> None:
        self._queue.append((digit, duration))

    def tick(self, now: float) -> bool:
        """Send what is due by ``now``; True once every queued digit is out."""
        leg = self.leg
        if self._index >= len(self._packets):
            if not self._queue or now < self._not_before:
                return not self._queue
            digit, duration = self._queue.popleft()
            self._packets, self._end_ts = self._plan(digit, duration, now)
            self._index, self._start = 0, now
            leg.sending_event = True
        packets, elapsed = self._packets, now - self._start
        while self._index < len(packets) and packets[self._index].offset <= elapsed:
            p = packets[self._index]
            leg.send_own(p.payload, p.marker, p.timestamp, p.event, now)
            self._index += 1
        if self._index < len(packets):
            return False
        leg.event_over(self._end_ts)
        self._not_before = now + GAP
        return not self._queue

    def _plan(self, digit: str, duration: float, now: float) -> tuple[list[_Packet], int]:
        leg = self.leg
        step = leg.ptime_samples
        start = leg.stream_timestamp(now)
        if leg.te_pt >= 0:
            ptime = max(10, step * 1000 // CLOCK_RATE)
            planned = generate_dtmf(digit, timestamp=start, duration=duration, ptime=ptime)
            packets = [_Packet(p.offset, p.payload, p.marker, p.timestamp, True) for p in planned]
            return packets, start + round(duration * CLOCK_RATE)
        frames = tone_frames(digit, duration, step, leg.codec)
        packets = [
            _Packet(i * step / CLOCK_RATE, frame, i == 0, (start + i * step) & 0xFFFFFFFF, False)
            for i, frame in enumerate(frames)
        ]
        return packets, start + len(frames) * step

    def stop(self) -> None:
        """The leg goes away: drop what is left (its relay resumes)."""
        self._queue.clear()
        if self._index < len(self._packets):
            self.leg.event_over(self._end_ts)
        self._packets, self._index = [], 0
