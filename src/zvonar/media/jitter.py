"""A fixed-delay jitter buffer for one RTP audio stream (sans-IO).

Packets go in with :meth:`JitterBuffer.push` as they arrive; the playout side calls
:meth:`JitterBuffer.pop` at (or after) :meth:`JitterBuffer.next_deadline` and gets one
:class:`PlayoutFrame` per ``ptime`` slot that fell due: the packet whose RTP timestamp
belongs to the slot, or ``None`` for a missing one (play silence or conceal the loss).

Slots are counted in RTP timestamp units, so reordering, duplicates and late packets are
handled by timestamp; a jump beyond ``max_gap`` (a new talkspurt after silence suppression, a
sender restart) re-synchronises the playout clock to the new stream position. Playout starts
``delay`` seconds after the first packet arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from zvonar.media.rtp import RtpPacket, ts_add, ts_diff

__all__ = ["JitterBuffer", "JitterStats", "PlayoutFrame"]


@dataclass(frozen=True)
class PlayoutFrame:
    timestamp: int  # RTP timestamp of the slot
    packet: RtpPacket | None  # None: nothing arrived in time for this slot


@dataclass
class JitterStats:
    played: int = 0
    missing: int = 0  # slots played without a packet
    late: int = 0  # packets that arrived after their slot was played
    duplicates: int = 0
    resyncs: int = 0


class JitterBuffer:
    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        ptime: int = 20,
        delay: float = 0.06,
        max_gap: float = 1.0,
        max_packets: int = 64,
    ) -> None:
        if clock_rate <= 0 or ptime <= 0 or delay < 0 or max_packets < 1:
            raise ValueError("invalid jitter buffer parameters")
        self.frame_samples = clock_rate * ptime // 1000
        self.ptime = ptime / 1000
        self.delay = delay
        self.max_gap = round(max_gap * clock_rate)
        self.max_packets = max_packets
        self.stats = JitterStats()
        self._packets: dict[int, RtpPacket] = {}
        self._next_ts: int | None = None  # timestamp of the next slot to play
        self._next_time: float | None = None  # when that slot is due

    def push(self, packet: RtpPacket, now: float) -> None:
        if self._next_ts is None:
            self._next_ts = packet.timestamp
            self._next_time = now + self.delay
        elif ts_diff(packet.timestamp, self._next_ts) < -self.max_gap:
            # Far behind: the sender restarted its timestamps. Follow it.
            self.stats.resyncs += 1
            self._packets.clear()
            self._next_ts = packet.timestamp
        elif ts_diff(packet.timestamp, self._next_ts) < 0:
            self.stats.late += 1
            return
        if packet.timestamp in self._packets:
            self.stats.duplicates += 1
            return
        self._packets[packet.timestamp] = packet
        if len(self._packets) > self.max_packets:
            # The sender outruns playout (clock drift, a burst): drop the oldest packet.
            del self._packets[min(self._packets, key=self._offset)]

    def _offset(self, timestamp: int) -> int:
        return ts_diff(timestamp, self._next_ts if self._next_ts is not None else timestamp)

    def next_deadline(self) -> float | None:
        return self._next_time

    def pop(self, now: float) -> list[PlayoutFrame]:
        """All slots due by ``now``, oldest first."""
        frames: list[PlayoutFrame] = []
        while self._next_time is not None and self._next_ts is not None and now >= self._next_time:
            timestamp = self._next_ts
            packet = self._packets.pop(timestamp, None)
            if packet is None and self._packets:
                earliest = min(self._packets, key=self._offset)
                offset = self._offset(earliest)
                if offset < self.frame_samples or offset > self.max_gap:
                    # A packet inside this slot (a sender whose timestamps are not aligned
                    # to our slots), or far ahead: re-align on it instead of playing a gap.
                    if offset >= self.frame_samples:
                        self.stats.resyncs += 1
                    timestamp = earliest
                    packet = self._packets.pop(earliest)
            frames.append(PlayoutFrame(timestamp, packet))
            self.stats.played += 1
            if packet is None:
                self.stats.missing += 1
            self._next_ts = ts_add(timestamp, self.frame_samples)
            self._next_time += self.ptime
        return frames
