"""Call recording to a stereo WAV, written as the call goes on.

Nothing is mixed: the recorded leg's audio goes to the left channel, its bridged peer's to
the right, each decoded (G.711 -> int16 by two ``bytes.translate`` calls) into its own
buffer at the position its RTP timestamp gives. A channel is anchored to the wall clock
when its source (SSRC) first speaks and re-anchored when the source changes (a transfer
to another operator) or its timestamps stray more than a second from the wall clock (a
sender restart), so whatever is not covered by a packet — silence before the operator
answers, lost packets, hold — stays zero: gaps are silence, by timestamp.

:meth:`StereoRecorder.flush` (the engine calls it every second) writes everything older
than ``margin`` seconds — later packets are the jitter a phone would also have had to wait
for — and :class:`zvonar.media.wav.WavWriter` patches the RIFF header after every write, so
a process that dies mid-call leaves a valid WAV of all but the last second or so.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from zvonar.media.engine import AudioCodec
from zvonar.media.io.leg import CLOCK_RATE, DECODE_TABLES
from zvonar.media.rtp import ts_diff
from zvonar.media.wav import WavWriter, interleave_stereo

__all__ = ["StereoRecorder"]

_MAX_SKEW = CLOCK_RATE  # re-anchor when timestamps and the wall clock differ by > 1 s


class _Channel:
    __slots__ = ("anchor_pos", "anchor_ts", "pcm", "ssrc")

    def __init__(self) -> None:
        self.pcm = bytearray()  # int16 LE samples from the recorder's ``written`` on
        self.ssrc: int | None = None
        self.anchor_ts = 0
        self.anchor_pos = 0


class StereoRecorder:
    """One recording: ``audio()`` from the hot path, ``flush()`` from the engine's timer."""

    def __init__(
        self, recording_id: str, leg_id: str, path: Path, start: float, *, margin: float = 0.3
    ) -> None:
        self.recording_id = recording_id
        self.leg_id = leg_id
        self.path = path
        self.start = start
        self.margin = round(margin * CLOCK_RATE)
        self.written = 0  # frames (stereo sample pairs) in the file
        self._file: BinaryIO = path.open("w+b")
        try:
            self._writer = WavWriter(self._file, sample_rate=CLOCK_RATE, channels=2)
        except BaseException:
            self._file.close()
            raise
        self._channels = (_Channel(), _Channel())
        self.closed = False

    def audio(
        self, channel: int, ssrc: int, ts: int, payload: bytes, codec: AudioCodec, now: float
    ) -> None:
        ch = self._channels[channel]
        n = len(payload)
        # Where this packet starts if its last sample was captured just now.
        wall = max(0, round((now - self.start) * CLOCK_RATE) - n)
        if ch.ssrc != ssrc:
            ch.ssrc, ch.anchor_ts, ch.anchor_pos = ssrc, ts, wall
        pos = ch.anchor_pos + ts_diff(ts, ch.anchor_ts)
        if abs(pos - wall) > _MAX_SKEW:
            ch.anchor_ts, ch.anchor_pos, pos = ts, wall, wall
        index = pos - self.written
        if index < 0:  # (partly) older than what is already on disk: too late
            if -index >= n:
                return
            payload = payload[-index:]
            n += index
            index = 0
        end = 2 * (index + n)
        pcm = ch.pcm
        if len(pcm) < end:
            pcm.extend(bytes(end - len(pcm)))
        lo, hi = DECODE_TABLES[codec]
        pcm[2 * index : end : 2] = payload.translate(lo)
        pcm[2 * index + 1 : end : 2] = payload.translate(hi)

    def flush(self, now: float, *, final: bool = False) -> None:
        """Write the frames up to ``now - margin`` (up to ``now`` when ``final``)."""
        if self.closed:
            return
        upto = round((now - self.start) * CLOCK_RATE) - (0 if final else self.margin)
        frames = upto - self.written
        if frames <= 0:
            return
        size = 2 * frames
        parts = []
        for ch in self._channels:
            chunk = bytes(ch.pcm[:size])
            del ch.pcm[:size]
            parts.append(chunk.ljust(size, b"\x00"))
        self._writer.write(interleave_stereo(parts[0], parts[1]))
        self.written = upto

    def close(self, now: float) -> float:
        """Write what is left and close the file; the recording's duration in seconds."""
        if not self.closed:
            try:
                self.flush(now, final=True)
            finally:
                self.closed = True
                self._file.close()
        return self.written / CLOCK_RATE
