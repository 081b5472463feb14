"""Keys we send as RFC 4733 telephone-events on a leg's outgoing stream.

A phone set to send its keys by SIP INFO talks to a carrier (a bank's IVR, a colleague's
voicemail behind a trunk) that only listens for RFC 4733: the call layer turns the INFO into
events here (``MediaEngine.send_dtmf``). The packets are planned by
:func:`zvonar.media.dtmf.generate_dtmf` (marker on the first, an update every ptime, the end
packet three times) and paced by the engine's tick, like a prompt.

They go on the leg's one outgoing stream (leg.py): the next sequence numbers, and an event
timestamp where the stream's clock stands now. While a digit goes out, what the bridged leg
relays is held back (RFC 4733 §2.5.1.1 lets a sender stop audio during an event, and a
receiver must not see two sources interleaved); afterwards the stream's clock is moved past
the event and the relay re-anchors, so the timestamps go on advancing with real time.
Digits asked for while one is going out wait their turn.
"""

from __future__ import annotations

from collections import deque

from zvonar.media.dtmf import DtmfPacket, generate_dtmf
from zvonar.media.io.leg import CLOCK_RATE, Leg

__all__ = ["GAP", "DtmfSender"]

GAP = 0.05  # seconds between two digits of a sequence


class DtmfSender:
    """The digits queued for one leg, sent as the engine ticks."""

    def __init__(self, leg: Leg) -> None:
        self.leg = leg
        self._queue: deque[tuple[str, float]] = deque()
        self._packets: list[DtmfPacket] = []
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
            ptime = max(10, leg.ptime_samples * 1000 // CLOCK_RATE)
            start_ts = leg.stream_timestamp(now)
            self._packets = generate_dtmf(digit, timestamp=start_ts, duration=duration, ptime=ptime)
            self._index, self._start = 0, now
            self._end_ts = start_ts + round(duration * CLOCK_RATE)
            leg.sending_event = True
        packets, elapsed = self._packets, now - self._start
        while self._index < len(packets) and packets[self._index].offset <= elapsed:
            packet = packets[self._index]
            leg.send_event(packet.payload, packet.marker, packet.timestamp, now)
            self._index += 1
        if self._index < len(packets):
            return False
        leg.event_over(self._end_ts)
        self._not_before = now + GAP
        return not self._queue

    def stop(self) -> None:
        """The leg goes away or is bridged anew: drop what is left (its relay resumes)."""
        self._queue.clear()
        if self._index < len(self._packets):
            self.leg.event_over(self._end_ts)
        self._packets, self._index = [], 0
