"""G.711 µ-law and A-law (ITU-T G.711), whole frames at a time, stdlib only.

PCM is signed 16-bit little-endian ("int16 LE"), as RTP audio is handled throughout Zvonar.
The quantizers follow G.711 as its reference implementation in ITU-T G.191 does:

* µ-law works on the 14 most significant bits, A-law on the 13 most significant bits of the
  sample; a negative sample ``x`` has magnitude ``~x`` (one's complement), so -1 falls in the
  first interval just as 0 does, and the two halves of the characteristic are mirror images;
* µ-law: add the bias 33 (14-bit units), the segment is the position of the leading one, the
  mantissa the next four bits; the code is complemented (all ones = +0);
* A-law: segment 0 and 1 have the same step, each further segment doubles it; even bits are
  inverted (XOR 0x55).

Decoding returns the mid-point of each quantization interval, scaled to 16 bits: µ-law
``±(((2m + 33) << s) - 33) * 4``, A-law ``±(2m + 1) * 8`` for segment 0 and
``±(2m + 33) << (s + 2)`` otherwise.

Speed comes from tables: decoding is two ``bytes.translate`` calls (low and high byte of each
output sample) interleaved by slice assignment; encoding looks every sample up in a 65536-entry
table indexed by its bit pattern (a ``memoryview`` cast to unsigned 16-bit), fetched in C by
``operator.itemgetter``; transcoding µ-law <-> A-law is one ``bytes.translate``. ``audioop``
(removed in Python 3.13) is not used.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import itemgetter

from zvonar.media.errors import CodecError

__all__ = [
    "ALAW_SILENCE",
    "PCMA",
    "PCMU",
    "ULAW_SILENCE",
    "G711Codec",
    "alaw_decode",
    "alaw_decode_sample",
    "alaw_encode",
    "alaw_encode_sample",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_decode_sample",
    "ulaw_encode",
    "ulaw_encode_sample",
    "ulaw_to_alaw",
]

ULAW_SILENCE = 0xFF  # +0
ALAW_SILENCE = 0xD5  # the smallest positive level (A-law has no zero)
_CHUNK = 4096  # samples per itemgetter call, to bound the argument tuple


def ulaw_encode_sample(sample: int) -> int:
    """One 16-bit sample to a µ-law code."""
    if not -32768 <= sample <= 32767:
        raise CodecError(f"sample out of 16-bit range: {sample}")
    if sample < 0:
        magnitude, sign = (~sample) >> 2, 0x00
    else:
        magnitude, sign = sample >> 2, 0x80
    biased = min(magnitude + 33, 0x1FFF)  # 14-bit units; clip at the top of segment 7
    segment = biased.bit_length() - 6  # biased >= 33 has its leading one at bit 5 or above
    mantissa = (biased >> (segment + 1)) & 0x0F
    return sign | ((7 - segment) << 4) | (0x0F - mantissa)


def ulaw_decode_sample(code: int) -> int:
    """One µ-law code to a 16-bit sample."""
    inverted = ~code & 0xFF
    segment = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = ((((mantissa << 1) + 33) << segment) - 33) << 2
    return -magnitude if inverted & 0x80 else magnitude


def alaw_encode_sample(sample: int) -> int:
    """One 16-bit sample to an A-law code."""
    if not -32768 <= sample <= 32767:
        raise CodecError(f"sample out of 16-bit range: {sample}")
    if sample < 0:
        magnitude, sign = (~sample) >> 4, 0x00
    else:
        magnitude, sign = sample >> 4, 0x80
    # magnitude: 11 bits, i.e. the 13-bit sample without sign and without its lowest bit,
    # since segments 0 and 1 both have a step of 2 in 13-bit units.
    if magnitude < 16:
        code = magnitude
    else:
        segment = magnitude.bit_length() - 4
        code = (segment << 4) | ((magnitude >> (segment - 1)) & 0x0F)
    return (sign | code) ^ 0x55


def alaw_decode_sample(code: int) -> int:
    """One A-law code to a 16-bit sample."""
    value = (code & 0xFF) ^ 0x55
    segment = (value >> 4) & 0x07
    mantissa = value & 0x0F
    # Segment 0 starts at 0, segment s >= 1 at 16 << (s - 1) (11-bit units): add half a step.
    base = (mantissa << 4) + (8 if segment == 0 else 0x108)
    magnitude = base if segment == 0 else base << (segment - 1)
    return magnitude if value & 0x80 else -magnitude


# --- tables ---------------------------------------------------------------------------


def _decode_tables(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    samples = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(s & 0xFF for s in samples), bytes(s >> 8 for s in samples)


_ULAW_LO, _ULAW_HI = _decode_tables(ulaw_decode_sample)
_ALAW_LO, _ALAW_HI = _decode_tables(alaw_decode_sample)


def _transcode_table(
    decode: Callable[[int], int], encode: Callable[[int], int], decode_out: Callable[[int], int]
) -> bytes:
    # Map each level to the nearest level of the other law (ties: the encoder's choice),
    # magnitude and sign separately (bit 7 is the sign in both laws). "Nearest" matters where
    # the step size changes: a plain re-encode of µ-law 8064 would give A-law 8316, not 7932.
    # The table is symmetric, and µ-law's "-0" becomes A-law's smallest negative level.
    positive = [code for code in range(256) if code & 0x80]
    table = []
    for code in range(256):
        level = abs(decode(code))
        preferred = encode(level)
        encoded = min(positive, key=lambda c: (abs(decode_out(c) - level), c != preferred))
        table.append(encoded if code & 0x80 else encoded ^ 0x80)
    return bytes(table)


_ULAW_TO_ALAW = _transcode_table(ulaw_decode_sample, alaw_encode_sample, alaw_decode_sample)
_ALAW_TO_ULAW = _transcode_table(alaw_decode_sample, ulaw_encode_sample, ulaw_decode_sample)


@cache
def _encode_table(law: str) -> bytes:
    # Indexed by the unsigned 16-bit pattern of the sample: 0..32767, then -32768..-1.
    encode = ulaw_encode_sample if law == "u" else alaw_encode_sample
    return bytes(encode(i - 65536 if i >= 32768 else i) for i in range(65536))


def _as_u16(pcm: bytes | bytearray | memoryview) -> memoryview | array[int]:
    if len(pcm) % 2:
        raise CodecError("16-bit PCM has an even number of bytes")
    if sys.byteorder == "little":
        return memoryview(pcm).cast("B").cast("H")
    samples = array("H", bytes(pcm))
    samples.byteswap()
    return samples


def _encode(pcm: bytes | bytearray | memoryview, table: bytes) -> bytes:
    samples = _as_u16(pcm)
    count = len(samples)
    if count <= 1:
        return bytes(table[s] for s in samples)
    out = bytearray()
    for start in range(0, count, _CHUNK):
        chunk = samples[start : start + _CHUNK]
        if len(chunk) == 1:
            out.append(table[chunk[0]])
        else:
            out += bytes(itemgetter(*chunk)(table))
    return bytes(out)


def _decode(data: bytes | bytearray | memoryview, lo: bytes, hi: bytes) -> bytes:
    data = bytes(data)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(lo)
    out[1::2] = data.translate(hi)
    return bytes(out)


def ulaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """int16 LE PCM -> µ-law, one byte per sample."""
    return _encode(pcm, _encode_table("u"))


def alaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """int16 LE PCM -> A-law, one byte per sample."""
    return _encode(pcm, _encode_table("a"))


def ulaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """µ-law -> int16 LE PCM."""
    return _decode(data, _ULAW_LO, _ULAW_HI)


def alaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """A-law -> int16 LE PCM."""
    return _decode(data, _ALAW_LO, _ALAW_HI)


def ulaw_to_alaw(data: bytes | bytearray | memoryview) -> bytes:
    """Transcode without going through PCM: one table lookup per byte.

    The table is "decode µ-law to its interval mid-point, quantize that with A-law" (sign and
    magnitude separately, nearest level), so a bridged call gains at most half a step.
    Neither direction is transparent: each law is finer than the other somewhere (µ-law near
    zero, A-law around 256..512 of 16-bit), so a round trip may move a code by one level."""
    return bytes(data).translate(_ULAW_TO_ALAW)


def alaw_to_ulaw(data: bytes | bytearray | memoryview) -> bytes:
    """A-law -> µ-law by table (see :func:`ulaw_to_alaw`)."""
    return bytes(data).translate(_ALAW_TO_ULAW)


@dataclass(frozen=True)
class G711Codec:
    """A codec as the media engine uses it: RTP name, static payload type and frame
    functions (PCM bytes <-> encoded bytes)."""

    name: str
    payload_type: int
    clock_rate: int
    silence: int
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]


PCMU = G711Codec("PCMU", 0, 8000, ULAW_SILENCE, ulaw_encode, ulaw_decode)
PCMA = G711Codec("PCMA", 8, 8000, ALAW_SILENCE, alaw_encode, alaw_decode)
