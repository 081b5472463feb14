"""Call recording to a stereo WAV, written as the call goes on.

Nothing is mixed: the recorded leg's audio goes to the left channel, its bridged peer's to
the right, each decoded (G.711 -> int16 by two ``bytes.translate`` calls) into its own
buffer at the position its RTP timestamp gives (a :class:`~zvonar.media.io.timeline.Track`:
anchored to the wall clock, re-anchored on a new source or a sender restart), so whatever
is not covered by a packet — silence before the operator answers, lost packets, hold —
stays zero: gaps are silence, by timestamp.

:meth:`StereoRecorder.flush` (the engine calls it every second) writes everything older
than ``margin`` seconds — later packets are the jitter a phone would also have had to wait
for — and :class:`zvonar.media.wav.WavWriter` patches the RIFF header after every write, so
a process that dies mid-call leaves a valid WAV of all but the last second or so.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from zvonar.media.engine import AudioCodec
from zvonar.media.io.leg import CLOCK_RATE
from zvonar.media.io.timeline import Track
from zvonar.media.wav import WavWriter, interleave_stereo

__all__ = ["StereoRecorder"]


class StereoRecorder:
    """One recording: ``audio()`` from the hot path, ``flush()`` from the engine's timer."""

    def __init__(
        self, recording_id: str, leg_id: str, path: Path, start: float, *, margin: float = 0.3
    ) -> None:
        self.recording_id = recording_id
        self.leg_id = leg_id
        self.channel = 0  # the followed leg's channel (engine.move_recording may flip it)
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
        self._channels = (Track(), Track())
        self.closed = False

    def audio(
        self, channel: int, ssrc: int, ts: int, payload: bytes, codec: AudioCodec, now: float
    ) -> None:
        # Where this packet starts if its last sample was captured just now.
        wall = max(0, round((now - self.start) * CLOCK_RATE) - len(payload))
        self._channels[channel].put(ssrc, ts, payload, codec, wall, self.written)

    def flush(self, now: float, *, final: bool = False) -> None:
        """Write the frames up to ``now - margin`` (up to ``now`` when ``final``)."""
        if self.closed:
            return
        upto = round((now - self.start) * CLOCK_RATE) - (0 if final else self.margin)
        frames = upto - self.written
        if frames <= 0:
            return
        left, right = (ch.take(2 * frames) for ch in self._channels)
        self._writer.write(interleave_stereo(left, right))
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
