"""Placing received audio on a wall-clock timeline by RTP timestamp (recording, monitoring).

A :class:`Track` holds one direction's decoded audio (int16 LE) from the owner's ``base`` —
the timeline position of ``pcm[0]``, i.e. how many samples the owner already wrote out or
sent on. The track is anchored to the wall clock when its source (SSRC) first speaks and
re-anchored when the source changes (a transfer to another operator) or its timestamps
stray more than ``max_skew`` samples from the wall clock (a sender restart). Whatever no
packet covers — silence before an answer, lost packets, hold — stays zero: gaps are silence,
by timestamp.
"""

from __future__ import annotations

from zvonar.media.engine import AudioCodec
from zvonar.media.io.leg import CLOCK_RATE, DECODE_TABLES
from zvonar.media.rtp import ts_diff

__all__ = ["MAX_SKEW", "Track"]

MAX_SKEW = CLOCK_RATE  # re-anchor when timestamps and the wall clock differ by > 1 s


class Track:
    """One direction's audio on the timeline; see the module docstring."""

    __slots__ = ("anchor_pos", "anchor_ts", "max_skew", "pcm", "reanchor_late", "ssrc")

    def __init__(self, *, max_skew: int = MAX_SKEW, reanchor_late: bool = False) -> None:
        self.pcm = bytearray()  # int16 LE samples from the owner's ``base`` on
        self.ssrc: int | None = None
        self.anchor_ts = 0
        self.anchor_pos = 0
        self.max_skew = max_skew
        # True: a packet whose place was already consumed re-anchors the track at its arrival
        # (a live mix follows a latency jump); False: its late part is dropped (a file on disk
        # cannot be rewritten, and the next packets land where they belong again).
        self.reanchor_late = reanchor_late

    def put(
        self, ssrc: int, ts: int, payload: bytes, codec: AudioCodec, wall: int, base: int
    ) -> None:
        """Decode ``payload`` into place. ``wall``: the timeline position of its first sample
        if its last was captured just now; ``base``: the position of ``pcm[0]``."""
        n = len(payload)
        if self.ssrc != ssrc:
            self.ssrc, self.anchor_ts, self.anchor_pos = ssrc, ts, wall
        pos = self.anchor_pos + ts_diff(ts, self.anchor_ts)
        if abs(pos - wall) > self.max_skew or (self.reanchor_late and pos < base <= wall):
            self.anchor_ts, self.anchor_pos, pos = ts, wall, wall
        index = pos - base
        if index < 0:  # (partly) older than what is already written out: too late
            if -index >= n:
                return
            payload = payload[-index:]
            n += index
            index = 0
        end = 2 * (index + n)
        pcm = self.pcm
        if len(pcm) < end:
            pcm.extend(bytes(end - len(pcm)))
        lo, hi = DECODE_TABLES[codec]
        pcm[2 * index : end : 2] = payload.translate(lo)
        pcm[2 * index + 1 : end : 2] = payload.translate(hi)

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes of PCM (zero-padded), removed from the track."""
        pcm = self.pcm
        chunk = bytes(pcm[:size])
        del pcm[:size]
        return chunk.ljust(size, b"\x00")

    def skip(self, size: int) -> None:
        del self.pcm[:size]
