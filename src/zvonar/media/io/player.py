"""Playback: prompt and hold-music files turned into G.711 frames, paced by the engine clock.

Files are read and encoded once per (file, codec) and kept in a small LRU cache: a hold
music WAV is played to many callers at once. Reading and the encoding run in a worker
thread (``asyncio.to_thread``) so a long file does not stall the RTP loop; anything
:func:`zvonar.media.wav.wav_to_pcm8k` reads is accepted (other rates and channel counts
are converted, which is slow for long files: ship 8 kHz mono prompts).

A :class:`Player` does not own a timer. The engine ticks every ``ptime`` on a schedule
computed from a start time (``start + k * period``, never ``sleep(period)``, which drifts by
the loop's latency on every step) and asks each player how many frames are due by now:
``floor((now - start) / period) + 1 - sent``. A late tick therefore sends the frames it
owes (bounded, so a stalled loop does not burst seconds of audio), and the stream keeps
exact real-time pace however late individual ticks fire.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from pathlib import Path

from zvonar.media.engine import AudioCodec, PlaybackReason, PromptNotFoundError
from zvonar.media.errors import MediaError
from zvonar.media.g711 import ALAW_SILENCE, ULAW_SILENCE, alaw_encode, ulaw_encode
from zvonar.media.io.leg import CLOCK_RATE, TRANSCODE, Leg
from zvonar.media.wav import wav_to_pcm8k

__all__ = ["MAX_CATCH_UP", "AudioCache", "Player"]

MAX_CATCH_UP = 3  # frames sent at most per tick for one player; beyond that, skip ahead
_SILENCE = {AudioCodec.PCMU: bytes((ULAW_SILENCE,)), AudioCodec.PCMA: bytes((ALAW_SILENCE,))}


class AudioCache:
    """Encoded audio by (path, mtime, size, codec), least recently used first out."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int, int, AudioCodec], bytes] = OrderedDict()
        self._size = 0

    async def load(self, path: Path, codec: AudioCodec) -> bytes:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise PromptNotFoundError(f"cannot read {path}: {exc.strerror}") from None
        key = (str(path), st.st_mtime_ns, st.st_size, codec)
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
            return data
        data = await asyncio.to_thread(_encode_file, path, codec)
        self._items[key] = data
        self._size += len(data)
        while self._size > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._size -= len(old)
        return data


def _encode_file(path: Path, codec: AudioCodec) -> bytes:
    try:
        pcm = wav_to_pcm8k(path.read_bytes(), sample_rate=CLOCK_RATE)
    except OSError as exc:
        raise PromptNotFoundError(f"cannot read {path}: {exc.strerror}") from None
    except MediaError as exc:
        raise PromptNotFoundError(f"{path} is not a WAV file we can play: {exc}") from None
    if not pcm:
        raise PromptNotFoundError(f"{path} holds no audio")
    return ulaw_encode(pcm) if codec is AudioCodec.PCMU else alaw_encode(pcm)


class Player:
    """Plays ``audio`` (G.711 in the leg's codec) into one leg, once or looped."""

    def __init__(
        self, playback_id: str, leg: Leg, audio: bytes, *, loop: bool, start: float
    ) -> None:
        self.playback_id = playback_id
        self.leg = leg
        self.codec = leg.codec
        self.audio = audio
        self.loop = loop
        self.start = start
        self.samples = leg.ptime_samples
        self.period = self.samples / CLOCK_RATE
        self.sent = 0  # frames accounted for (sent or skipped)
        self.position = 0  # byte offset into audio
        self.seq = 0
        self.ts = 0
        self.finished: PlaybackReason | None = None

    def due(self, now: float) -> int:
        return int((now - self.start) / self.period) + 1 - self.sent

    def next_deadline(self) -> float:
        return self.start + self.sent * self.period

    def tick(self, now: float) -> bool:
        """Send the frames due by ``now``; True once a one-shot playback has ended."""
        due = self.due(now)
        if due > MAX_CATCH_UP:
            self._skip(due - MAX_CATCH_UP)
            due = MAX_CATCH_UP
        leg = self.leg
        for _ in range(max(0, due)):
            frame = self._next_frame()
            if frame is None:
                self.finished = PlaybackReason.COMPLETED
                return True
            if leg.codec is not self.codec:  # a re-INVITE switched codecs mid-playback
                frame = frame.translate(TRANSCODE[self.codec, leg.codec])
            leg.send_frame(frame, self.seq, self.ts, self, now)
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + self.samples) & 0xFFFFFFFF
            self.sent += 1
        return False

    def _skip(self, frames: int) -> None:
        # The loop stalled: drop the frames we could not send in time, keep the timeline.
        for _ in range(frames):
            if self._next_frame() is None:
                return
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + self.samples) & 0xFFFFFFFF
            self.sent += 1

    def _next_frame(self) -> bytes | None:
        audio, size, pos = self.audio, self.samples, self.position
        if pos >= len(audio):
            if not self.loop:
                return None
            pos = 0
        frame = audio[pos : pos + size]
        pos += size
        if len(frame) < size:
            if self.loop:  # wrap around seamlessly inside the frame
                pos = size - len(frame)
                frame += audio[:pos]
            else:  # pad the last frame with silence
                frame += _SILENCE[self.codec] * (size - len(frame))
        self.position = pos
        return frame
