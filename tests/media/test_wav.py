"""WAV reading in every common encoding, conversion to 8 kHz mono, crash-safe writing."""

from __future__ import annotations

import io
import math
import struct
from array import array
from pathlib import Path

import pytest

from zvonar.media.errors import WavError
from zvonar.media.g711 import alaw_encode, ulaw_encode
from zvonar.media.goertzel import goertzel_power
from zvonar.media.resample import resample
from zvonar.media.wav import (
    WavFile,
    WavFormat,
    WavWriter,
    encode_wav,
    interleave_stereo,
    parse_wav,
    wav_to_pcm8k,
)


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> list[float]:
    return [amp * math.sin(2 * math.pi * freq * i / rate) for i in range(round(rate * seconds))]


def int16(values: list[float]) -> bytes:
    clipped = [max(-32768, min(32767, round(v * 32768))) for v in values]
    return struct.pack(f"<{len(clipped)}h", *clipped)


def encode_samples(values: list[float], fmt: WavFormat, bits: int) -> bytes:
    if fmt is WavFormat.FLOAT:
        return struct.pack(f"<{len(values)}{'f' if bits == 32 else 'd'}", *values)
    if fmt is WavFormat.ALAW:
        return alaw_encode(int16(values))
    if fmt is WavFormat.ULAW:
        return ulaw_encode(int16(values))
    if bits == 8:
        return bytes(max(0, min(255, round(v * 128) + 128)) for v in values)
    if bits == 16:
        return int16(values)
    scale = 1 << (bits - 1)
    ints = [max(-scale, min(scale - 1, round(v * scale))) for v in values]
    if bits == 24:
        return b"".join(i.to_bytes(3, "little", signed=True) for i in ints)
    return struct.pack(f"<{len(ints)}i", *ints)


def pcm_values(pcm: bytes) -> list[int]:
    return list(array("h", pcm))


def tone_db(values: list[int] | list[float], freq: float, rate: int = 8000) -> float:
    """Level of ``freq`` in dB relative to a full-scale sine, over the middle of the signal."""
    mid = values[len(values) // 4 : 3 * len(values) // 4]
    power = goertzel_power(mid, 2 * math.cos(2 * math.pi * freq / rate))
    amp = 2 * math.sqrt(max(power, 1e-12)) / len(mid)
    return 20 * math.log10(amp / 32768)


@pytest.mark.parametrize(
    ("fmt", "bits", "rate", "channels"),
    [
        (WavFormat.PCM, 8, 8000, 1),
        (WavFormat.PCM, 16, 44100, 2),
        (WavFormat.PCM, 24, 48000, 1),
        (WavFormat.PCM, 32, 16000, 2),
        (WavFormat.FLOAT, 32, 22050, 1),
        (WavFormat.FLOAT, 64, 11025, 2),
        (WavFormat.ALAW, 8, 8000, 1),
        (WavFormat.ULAW, 8, 8000, 2),
    ],
)
def test_every_encoding_converts_to_8k_mono(
    fmt: WavFormat, bits: int, rate: int, channels: int
) -> None:
    mono = sine(1000, rate, 0.3)
    interleaved = [v for v in mono for _ in range(channels)]
    data = encode_wav(
        encode_samples(interleaved, fmt, bits),
        sample_rate=rate,
        channels=channels,
        bits=bits,
        wav_format=fmt,
    )
    wav = parse_wav(data)
    assert (wav.format, wav.bits_per_sample, wav.sample_rate, wav.channels) == (
        fmt,
        bits,
        rate,
        channels,
    )
    assert wav.frames == len(mono)
    assert wav.duration == pytest.approx(0.3, abs=1e-3)
    out = pcm_values(wav_to_pcm8k(data))
    assert len(out) == round(0.3 * 8000)
    level = tone_db(out, 1000)
    tolerance = 0.4 if bits == 8 else 0.05  # 8-bit formats quantize coarsely
    assert level == pytest.approx(20 * math.log10(0.5), abs=tolerance)


def test_8k_mono_16bit_is_returned_byte_exact() -> None:
    pcm = int16(sine(440, 8000, 0.1))
    assert wav_to_pcm8k(encode_wav(pcm)) == pcm


def test_stereo_is_averaged() -> None:
    left = sine(1000, 8000, 0.2)
    interleaved = [v for pair in zip(left, [0.0] * len(left), strict=True) for v in pair]
    data = encode_wav(int16(interleaved), channels=2)
    out = pcm_values(wav_to_pcm8k(data))
    assert tone_db(out, 1000) == pytest.approx(20 * math.log10(0.25), abs=0.05)
    opposite = [v for x in left for v in (x, -x)]
    assert (
        max(abs(v) for v in pcm_values(wav_to_pcm8k(encode_wav(int16(opposite), channels=2)))) <= 1
    )


@pytest.mark.parametrize(
    ("rate", "freq"), [(44100, 6000), (48000, 5000), (16000, 4200), (44100, 11000)]
)
def test_resampling_does_not_alias(rate: int, freq: float) -> None:
    # these tones would fold back to 2000, 3000, 3800 and 3000 Hz without the filter
    data = encode_wav(int16(sine(freq, rate, 0.3, amp=0.9)), sample_rate=rate)
    out = pcm_values(wav_to_pcm8k(data))
    alias = abs(8000 - freq % 8000) if freq % 8000 > 4000 else freq % 8000
    assert tone_db(out, alias) < -70


@pytest.mark.parametrize(
    ("freq", "low", "high"), [(300, -0.05, 0.05), (3200, -0.1, 0.05), (3400, -1.0, -0.4)]
)
def test_resampling_passband(freq: float, low: float, high: float) -> None:
    out = resample(sine(freq, 44100, 0.3, amp=1.0), 44100, 8000)
    mid = out[len(out) // 4 : 3 * len(out) // 4]
    gain = 20 * math.log10(math.sqrt(2 * sum(v * v for v in mid) / len(mid)))
    assert low <= gain <= high


def test_resample_shapes() -> None:
    assert resample([0.5, 0.25], 8000, 8000) == [0.5, 0.25]
    up = resample(sine(1000, 8000, 0.2), 8000, 16000)
    assert len(up) == 3200
    mid = up[800:2400]
    assert math.sqrt(2 * sum(v * v for v in mid) / len(mid)) == pytest.approx(0.5, rel=0.01)
    with pytest.raises(ValueError):
        resample([], 0, 8000)


def test_other_target_rate() -> None:
    out = pcm_values(wav_to_pcm8k(encode_wav(int16(sine(1000, 8000, 0.2))), sample_rate=16000))
    assert len(out) == 3200


def chunk(name: bytes, body: bytes) -> bytes:
    return name + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def fmt_body(tag: int, channels: int, rate: int, bits: int) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_extensible_format_and_extra_chunks() -> None:
    guid_tail = bytes.fromhex("000000001000800000aa00389b71")
    ext = fmt_body(0xFFFE, 1, 8000, 24) + struct.pack("<HHI", 22, 24, 4) + b"\x01\x00" + guid_tail
    samples = encode_samples([0.25, -0.25], WavFormat.PCM, 24)
    data = riff(chunk(b"LIST", b"abc"), chunk(b"fmt ", ext), chunk(b"fact", b"\x02\x00\x00\x00"),
                chunk(b"data", samples))  # fmt: skip
    wav = parse_wav(data)
    assert (wav.format, wav.bits_per_sample) == (WavFormat.PCM, 24)
    assert wav.samples() == [0.25, -0.25]


def test_truncated_data_chunk_reads_whole_frames() -> None:
    data = riff(chunk(b"fmt ", fmt_body(1, 2, 8000, 16))) + b"data" + struct.pack("<I", 0xFFFFFFFF)
    data += int16([0.5, -0.5, 0.25])  # one and a half frames
    wav = parse_wav(data)
    assert wav.frames == 1
    assert wav.mono() == [0.0]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFX\x00\x00\x00\x00WAVE",
        riff(chunk(b"data", b"\x00\x00")),  # data before fmt
        riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16))),  # no data
        riff(chunk(b"LIST", b"x")),  # no fmt
        riff(chunk(b"fmt ", fmt_body(0x55, 1, 8000, 16)), chunk(b"data", b"")),  # MP3
        riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 12)), chunk(b"data", b"")),  # 12-bit
        riff(chunk(b"fmt ", fmt_body(3, 1, 8000, 16)), chunk(b"data", b"")),  # 16-bit float
        riff(chunk(b"fmt ", fmt_body(1, 0, 8000, 16)), chunk(b"data", b"")),  # 0 channels
        riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16)[:10])),
        riff(chunk(b"fmt ", fmt_body(0xFFFE, 1, 8000, 16) + b"\x00\x00")),
    ],
)
def test_invalid_files(data: bytes) -> None:
    with pytest.raises(WavError):
        parse_wav(data)


def test_interleave_stereo_pads_the_shorter_side() -> None:
    left = struct.pack("<2h", 1, 2)
    right = struct.pack("<1h", 3)
    assert interleave_stereo(left, right) == struct.pack("<4h", 1, 3, 2, 0)
    assert interleave_stereo(b"", b"") == b""
    with pytest.raises(WavError):
        interleave_stereo(b"\x00", b"")


def test_writer_keeps_a_valid_header_after_every_write() -> None:
    sink = io.BytesIO()
    writer = WavWriter(sink, sample_rate=8000, channels=2)
    empty = parse_wav(sink.getvalue())
    assert (empty.channels, empty.sample_rate, empty.frames) == (2, 8000, 0)
    left = struct.pack("<160h", *range(160))
    right = struct.pack("<160h", *range(0, -160, -1))
    for n in range(1, 4):
        writer.write_stereo(left, right)
        data = sink.getvalue()
        wav = parse_wav(data)
        assert wav.frames == writer.frames == 160 * n
        assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8  # RIFF size
        assert struct.unpack_from("<I", data, 40)[0] == 640 * n  # data size
    values = pcm_values(parse_wav(sink.getvalue()).data)
    assert values[0:4] == [0, 0, 1, -1]  # left, right, left, right
    writer.write(b"")
    assert writer.frames == 480


def test_writer_on_a_real_file_survives_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    handle = path.open("w+b")
    try:
        writer = WavWriter(handle, channels=2)
        writer.write_stereo(int16(sine(500, 8000, 0.1)), int16(sine(700, 8000, 0.05)))
        # without closing the file (as after a crash), what is on disk is a complete WAV
        wav = parse_wav(path.read_bytes())
        assert wav.frames == 800 and wav.channels == 2
    finally:
        handle.close()


def test_writer_errors() -> None:
    writer = WavWriter(io.BytesIO(), channels=1)
    with pytest.raises(WavError):
        writer.write(b"\x00")
    with pytest.raises(WavError):
        writer.write_stereo(b"", b"")
    with pytest.raises(WavError):
        WavWriter(io.BytesIO(), channels=0)
    with pytest.raises(WavError):
        encode_wav(b"\x00\x00\x00", channels=2)


def test_wavfile_helpers() -> None:
    wav = WavFile(WavFormat.PCM, 2, 8000, 16, int16([0.5, 0.0, -0.5, 0.0]))
    assert wav.frame_size == 4 and wav.frames == 2
    assert wav.samples() == [0.5, 0.0, -0.5, 0.0]
    assert wav.mono() == [0.25, -0.25]
