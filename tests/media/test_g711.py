"""G.711 against the properties of ITU-T G.711 / G.191, frame functions against the scalar ones."""

from __future__ import annotations

import itertools
import struct
from array import array
from collections.abc import Callable

import pytest

from zvonar.media.errors import CodecError
from zvonar.media.g711 import (
    ALAW_SILENCE,
    PCMA,
    PCMU,
    ULAW_SILENCE,
    alaw_decode,
    alaw_decode_sample,
    alaw_encode,
    alaw_encode_sample,
    alaw_to_ulaw,
    ulaw_decode,
    ulaw_decode_sample,
    ulaw_encode,
    ulaw_encode_sample,
    ulaw_to_alaw,
)

ALL_SAMPLES = array("h", range(-32768, 32768)).tobytes()
ALL_CODES = bytes(range(256))


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xFF, 0),  # +0
        (0x7F, 0),  # -0
        (0x80, 32124),  # top of segment 7: ((2*15 + 33) << 7) - 33 = 8031 (14-bit) * 4
        (0x00, -32124),
        (0xFE, 8),  # first step of segment 0: 2 (14-bit)
        (0xF0, 120),  # end of segment 0: 30
        (0xEF, 132),  # first level of segment 1: 33 (14-bit) * 4
        (0x8F, 16764),  # first level of segment 7: (33 << 7) - 33 = 4191
    ],
)
def test_ulaw_known_code_points(code: int, value: int) -> None:
    assert ulaw_decode_sample(code) == value


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xD5, 8),  # smallest positive level: 1 (13-bit) * 8; A-law has no zero
        (0x55, -8),
        (0xAA, 32256),  # top: (2*15 + 33) << 9 = 32256
        (0x2A, -32256),
        (0xC5, 264),  # first level of segment 1: 33 (13-bit) * 8
        (0xA5, 16896),  # first level of segment 7: 33 << 9
    ],
)
def test_alaw_known_code_points(code: int, value: int) -> None:
    assert alaw_decode_sample(code) == value


def test_silence_and_extremes_encode() -> None:
    assert ulaw_encode_sample(0) == ULAW_SILENCE == 0xFF
    assert alaw_encode_sample(0) == ALAW_SILENCE == 0xD5
    assert ulaw_encode_sample(32767) == 0x80 and ulaw_encode_sample(-32768) == 0x00
    assert alaw_encode_sample(32767) == 0xAA and alaw_encode_sample(-32768) == 0x2A
    # G.191: a negative sample's magnitude is its one's complement, so -1 is in the first
    # interval like 0, just negative
    assert ulaw_encode_sample(-1) == 0x7F
    assert alaw_encode_sample(-1) == 0x55


def test_all_256_codes_round_trip() -> None:
    for code in range(256):
        assert alaw_encode_sample(alaw_decode_sample(code)) == code
        expected = 0xFF if code == 0x7F else code  # µ-law "-0" decodes to 0, encodes as "+0"
        assert ulaw_encode_sample(ulaw_decode_sample(code)) == expected


@pytest.mark.parametrize(
    ("encode", "decode", "first_steps"),
    [
        # µ-law step sizes per segment (16-bit units): 8, 16, ... 1024
        (ulaw_encode_sample, ulaw_decode_sample, [8 << s for s in range(8)]),
        # A-law: 16 in segments 0 and 1, then doubling up to 1024
        (alaw_encode_sample, alaw_decode_sample, [16, 16, 32, 64, 128, 256, 512, 1024]),
    ],
)
def test_monotonic_with_the_g711_step_sizes(
    encode: Callable[[int], int], decode: Callable[[int], int], first_steps: list[int]
) -> None:
    levels = [decode(encode(x)) for x in range(-32768, 32768)]
    assert all(a <= b for a, b in itertools.pairwise(levels))
    positive = sorted({v for v in levels if v >= 0})
    assert len(positive) == 128  # 8 segments x 16 levels (µ-law's first one is 0)
    steps = [b - a for a, b in itertools.pairwise(positive)]
    for segment in range(8):
        inner = steps[segment * 16 : segment * 16 + 15]
        assert set(inner) == {first_steps[segment]}
    # negative half mirrors the positive one
    assert sorted({-v for v in levels if v <= 0}) == positive


def test_quantization_error_is_half_a_step() -> None:
    for x in range(-32124, 32125):
        for encode, decode in (
            (ulaw_encode_sample, ulaw_decode_sample),
            (alaw_encode_sample, alaw_decode_sample),
        ):
            error = abs(decode(encode(x)) - x)
            assert error <= max(8, abs(x) // 16), x


def test_frame_functions_match_the_scalar_ones_for_every_sample() -> None:
    values = range(-32768, 32768)
    assert ulaw_encode(ALL_SAMPLES) == bytes(ulaw_encode_sample(v) for v in values)
    assert alaw_encode(ALL_SAMPLES) == bytes(alaw_encode_sample(v) for v in values)
    assert samples(ulaw_decode(ALL_CODES)) == [ulaw_decode_sample(c) for c in range(256)]
    assert samples(alaw_decode(ALL_CODES)) == [alaw_decode_sample(c) for c in range(256)]


def test_frame_shapes() -> None:
    assert ulaw_encode(b"") == b"" and alaw_decode(b"") == b""
    assert ulaw_encode(pcm(0)) == b"\xff"
    assert alaw_encode(bytearray(pcm(0, -1))) == b"\xd5\x55"
    assert ulaw_encode(memoryview(pcm(32767))) == b"\x80"
    frame = pcm(*range(-8000, 8000, 100))  # 160 samples
    assert len(ulaw_encode(frame)) == 160
    assert len(ulaw_decode(ulaw_encode(frame))) == 320
    with pytest.raises(CodecError):
        ulaw_encode(b"\x00")
    with pytest.raises(CodecError):
        ulaw_encode_sample(40000)


def test_transcoding_tables() -> None:
    for transcode, decode_in, decode_out in (
        (ulaw_to_alaw, ulaw_decode_sample, alaw_decode_sample),
        (alaw_to_ulaw, alaw_decode_sample, ulaw_decode_sample),
    ):
        table = transcode(ALL_CODES)
        assert len(table) == 256
        # symmetric: bit 7 is the sign in both laws
        assert all(table[c ^ 0x80] == table[c] ^ 0x80 for c in range(256))
        # order-preserving
        by_level = sorted(range(256), key=decode_in)
        out = [decode_out(table[c]) for c in by_level]
        assert all(a <= b for a, b in itertools.pairwise(out))
        # nearest level: no other output level is closer
        output_levels = [decode_out(c) for c in range(256)]
        for code in range(256):
            level = decode_in(code)
            best = min(abs(v - level) for v in output_levels if (v > 0) == (code >= 0x80))
            assert abs(decode_out(table[code]) - level) == best
    assert ulaw_to_alaw(bytes([0xFF, 0x7F])) == bytes([0xD5, 0x55])  # ±0 -> ±8
    assert alaw_to_ulaw(bytes([0xD5])) == bytes([0xFE])  # +8 exists in µ-law
    # each law is finer than the other somewhere, so round trips are not transparent
    assert ulaw_to_alaw(alaw_to_ulaw(ALL_CODES)) != ALL_CODES


def test_codec_descriptors() -> None:
    assert (PCMU.name, PCMU.payload_type, PCMU.silence) == ("PCMU", 0, 0xFF)
    assert (PCMA.name, PCMA.payload_type, PCMA.silence) == ("PCMA", 8, 0xD5)
    assert PCMA.decode(PCMA.encode(pcm(1000))) == pcm(1008)
