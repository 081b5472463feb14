"""In-band DTMF detection over 8 kHz PCM with the Goertzel algorithm.

The signal is cut into blocks of ``block_size`` samples (102 = 12.75 ms at 8 kHz by
default). For each block the Goertzel recurrence ``s[n] = x[n] + 2 cos(w) s[n-1] - s[n-2]``
measures the power at the eight DTMF frequencies (ITU-T Q.23: rows 697, 770, 852, 941 Hz,
columns 1209, 1336, 1477, 1633 Hz). A block "hits" a digit when all of these hold:

* energy: both the strongest row and the strongest column tone are at or above
  ``min_level_dbm0`` (per tone, where a full-scale sine is +3.17 dBm0, G.711);
* twist: the row tone exceeds the column tone by at most ``max_twist_db`` (normal twist) and
  the column tone exceeds the row tone by at most ``max_reverse_twist_db``;
* peaks: each chosen tone is ``min_peak_db`` stronger than the other tones of its group;
* purity: the two tones carry at least ``min_tone_ratio`` of the block's energy, which is
  what rejects speech, music and noise (their energy is spread over many frequencies).

A digit is recognised after ``min_blocks`` consecutive hits (2 blocks: a tone of 33 ms or
more is always recognised, one shorter than 19 ms never is, as Q.24 asks of 40 ms and 20 ms
tones) and ends after ``end_blocks`` blocks without it (3 blocks: a drop-out of up to 10 ms
is bridged, a pause of 40 ms always separates two digits), or when another digit is
recognised. The digit is reported when it ends, with its duration.
With blocks this short the detector cannot enforce Q.24's frequency-deviation rejection
(±3.5 %): that would need blocks of 30 ms or more.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul

from zvonar.media.dtmf import DtmfDigit, DtmfEnd, DtmfSource
from zvonar.media.errors import CodecError

__all__ = ["COLUMN_FREQUENCIES", "ROW_FREQUENCIES", "DtmfDetector", "goertzel_power"]

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_FULL_SCALE_POWER = 32767.0**2 / 2  # mean power of a full-scale sine = +3.17 dBm0 (G.711)
_FULL_SCALE_DBM0 = 3.17


def goertzel_power(samples: Sequence[float], coefficient: float) -> float:
    """|X(f)|^2 of ``samples`` at the frequency whose ``2 cos(2 pi f / rate)`` is given."""
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


@dataclass
class _Candidate:
    digit: str
    start: int  # index of the first sample of the first hit block
    hits: int  # consecutive hit blocks so far (while not yet recognised)
    blocks: int  # blocks from start to the last hit, inclusive
    misses: int
    level: float  # strongest per-tone level seen, dBm0


class DtmfDetector:
    """Feed 8 kHz int16 LE PCM with :meth:`feed`; get :class:`DtmfDigit` events back."""

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        block_size: int = 102,
        min_blocks: int = 2,
        end_blocks: int = 3,
        min_level_dbm0: float = -32.0,
        max_twist_db: float = 8.0,
        max_reverse_twist_db: float = 4.0,
        min_peak_db: float = 8.0,
        min_tone_ratio: float = 0.75,
    ) -> None:
        if block_size < 32 or min_blocks < 1 or end_blocks < 1:
            raise ValueError("block_size >= 32, min_blocks >= 1 and end_blocks >= 1")
        self.sample_rate = sample_rate
        self.block_size = block_size
        self.min_blocks = min_blocks
        self.end_blocks = end_blocks
        self.min_level_dbm0 = min_level_dbm0
        self._twist = 10 ** (max_twist_db / 10)
        self._reverse_twist = 10 ** (max_reverse_twist_db / 10)
        self._peak = 10 ** (min_peak_db / 10)
        self.min_tone_ratio = min_tone_ratio
        self._rows = [2 * math.cos(2 * math.pi * f / sample_rate) for f in ROW_FREQUENCIES]
        self._cols = [2 * math.cos(2 * math.pi * f / sample_rate) for f in COLUMN_FREQUENCIES]
        # Smallest block energy that can hold two tones at the minimum level: cheap gate.
        min_tone_energy = self._level_to_energy(min_level_dbm0)
        self._min_block_energy = 2 * min_tone_energy
        self._min_tone_energy = min_tone_energy
        self._pending: list[int] = []
        self._position = 0  # index of the first sample of the next block
        self._candidate: _Candidate | None = None
        self._active = False  # the candidate has been recognised as a digit

    def _level_to_energy(self, dbm0: float) -> float:
        # Energy over one block of a sine at ``dbm0``.
        return _FULL_SCALE_POWER * 10 ** ((dbm0 - _FULL_SCALE_DBM0) / 10) * self.block_size

    def feed(self, pcm: bytes) -> list[DtmfDigit]:
        """Consume int16 LE samples (any length); return the digits that ended."""
        if len(pcm) % 2:
            raise CodecError("16-bit PCM has an even number of bytes")
        samples = array("h", pcm)
        if sys.byteorder == "big":
            samples.byteswap()
        buffer = self._pending
        buffer.extend(samples)
        out: list[DtmfDigit] = []
        size = self.block_size
        start = 0
        while len(buffer) - start >= size:
            digit, level = self._classify(buffer[start : start + size])
            out.extend(self._step(digit, level))
            self._position += size
            start += size
        del buffer[:start]
        return out

    def flush(self) -> list[DtmfDigit]:
        """End of stream: report a digit still sounding, drop an unrecognised candidate."""
        out = self._finish() if self._active else []
        self._candidate = None
        self._active = False
        return out

    def _classify(self, block: list[int]) -> tuple[str | None, float]:
        energy = float(sum(map(mul, block, block)))
        if energy < self._min_block_energy:
            return None, 0.0  # silence or too quiet: skip the filters
        scale = 2 / self.block_size  # |X|^2 of a sine -> its energy over the block
        rows = [goertzel_power(block, c) * scale for c in self._rows]
        row = max(range(4), key=rows.__getitem__)
        row_energy = rows[row]
        if row_energy < self._min_tone_energy or row_energy < 0.2 * energy:
            return None, 0.0
        cols = [goertzel_power(block, c) * scale for c in self._cols]
        col = max(range(4), key=cols.__getitem__)
        col_energy = cols[col]
        if (
            col_energy < self._min_tone_energy
            or row_energy > col_energy * self._twist
            or col_energy > row_energy * self._reverse_twist
            or any(i != row and rows[i] * self._peak > row_energy for i in range(4))
            or any(i != col and cols[i] * self._peak > col_energy for i in range(4))
            or row_energy + col_energy < self.min_tone_ratio * energy
        ):
            return None, 0.0
        strongest = max(row_energy, col_energy) / self.block_size
        level = 10 * math.log10(strongest / _FULL_SCALE_POWER) + _FULL_SCALE_DBM0
        return _KEYPAD[row][col], level

    def _step(self, digit: str | None, level: float) -> list[DtmfDigit]:
        candidate = self._candidate
        out: list[DtmfDigit] = []
        if candidate is not None and digit == candidate.digit:
            candidate.blocks += candidate.misses + 1
            candidate.misses = 0
            candidate.hits += 1
            candidate.level = max(candidate.level, level)
            if candidate.hits >= self.min_blocks:
                self._active = True
            return out
        if candidate is not None:
            if self._active and digit is None:
                candidate.misses += 1
                if candidate.misses < self.end_blocks:
                    return out  # bridge a short drop-out
            if self._active:
                out.extend(self._finish())
        self._active = False
        self._candidate = None
        if digit is not None:
            self._candidate = _Candidate(digit, self._position, 1, 1, 0, level)
            if self.min_blocks <= 1:
                self._active = True
        return out

    def _finish(self) -> list[DtmfDigit]:
        candidate = self._candidate
        if candidate is None:
            return []
        self._candidate = None
        self._active = False
        return [
            DtmfDigit(
                digit=candidate.digit,
                duration=candidate.blocks * self.block_size / self.sample_rate,
                source=DtmfSource.INBAND,
                end_reason=DtmfEnd.TONE_STOPPED,
                timestamp=candidate.start,
                volume=max(0, min(63, round(-candidate.level))),
            )
        ]
