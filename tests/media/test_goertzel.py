"""In-band DTMF detection on synthesized audio: digits, noise, timing limits, false triggers."""

from __future__ import annotations

import math
import random
import struct

import pytest

from zvonar.media.dtmf import DtmfEnd, DtmfSource
from zvonar.media.goertzel import (
    COLUMN_FREQUENCIES,
    ROW_FREQUENCIES,
    DtmfDetector,
    goertzel_power,
)

RATE = 8000
KEYS = "123A456B789C*0#D"


def amplitude(dbm0: float) -> float:
    return 32767 * 10 ** ((dbm0 - 3.17) / 20)  # a full-scale sine is +3.17 dBm0


def tones(freqs: list[tuple[float, float]], ms: float, start: int = 0) -> list[float]:
    """Sum of sines (frequency, level dBm0) lasting ``ms``; ``start`` keeps phase continuous."""
    n = round(ms * RATE / 1000)
    return [
        sum(amplitude(level) * math.sin(2 * math.pi * f * (start + i) / RATE) for f, level in freqs)
        for i in range(n)
    ]


def digit_tone(key: str, ms: float, *, row_db: float = -10, col_db: float = -10) -> list[float]:
    index = KEYS.index(key)
    row, col = ROW_FREQUENCIES[index // 4], COLUMN_FREQUENCIES[index % 4]
    return tones([(row, row_db), (col, col_db)], ms)


def silence(ms: float) -> list[float]:
    return [0.0] * round(ms * RATE / 1000)


def to_pcm(samples: list[float], *, noise_db: float | None = None, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    sigma = amplitude(noise_db) / math.sqrt(2) if noise_db is not None else 0.0
    values = [
        max(-32768, min(32767, round(v + (rng.gauss(0, sigma) if sigma else 0)))) for v in samples
    ]
    return struct.pack(f"<{len(values)}h", *values)


def detect(pcm: bytes, chunk: int = 320, **kwargs: float) -> list[tuple[str, float, int]]:
    detector = DtmfDetector(**kwargs)  # type: ignore[arg-type]
    digits = []
    for i in range(0, len(pcm), chunk):
        digits += detector.feed(pcm[i : i + chunk])
    digits += detector.flush()
    for d in digits:
        assert d.source is DtmfSource.INBAND
    return [(d.digit, d.duration, d.timestamp) for d in digits]


def test_goertzel_power_of_a_pure_tone() -> None:
    n = 205
    samples = [1000 * math.sin(2 * math.pi * 1000 * i / RATE) for i in range(n)]
    coefficient = 2 * math.cos(2 * math.pi * 1000 / RATE)
    # |X(f)|^2 of a sine of amplitude A over N samples is about (A N / 2)^2
    assert goertzel_power(samples, coefficient) == pytest.approx((1000 * n / 2) ** 2, rel=0.02)


def test_all_sixteen_digits_in_a_row() -> None:
    audio: list[float] = silence(30)
    for key in KEYS:
        audio += digit_tone(key, 70) + silence(60)
    found = detect(to_pcm(audio))
    assert "".join(d for d, _, _ in found) == KEYS
    for index, (_, duration, start) in enumerate(found):
        true_start = (30 + index * 130) * 8
        assert abs(start - true_start) <= 102  # within one block
        assert 0.05 <= duration <= 0.08


@pytest.mark.parametrize("snr_db", [20, 15])
def test_digits_in_noise(snr_db: int) -> None:
    audio = silence(40)
    for key in "0591#":
        audio += digit_tone(key, 60, row_db=-12, col_db=-14) + silence(60)
    found = detect(to_pcm(audio, noise_db=-12 - snr_db, seed=snr_db))
    assert "".join(d for d, _, _ in found) == "0591#"


def test_chunking_does_not_matter() -> None:
    pcm = to_pcm(silence(13) + digit_tone("8", 90) + silence(50) + digit_tone("2", 45))
    reference = detect(pcm, chunk=len(pcm))
    assert [d for d, _, _ in reference] == ["8", "2"]
    for chunk in (2, 34, 160, 320, 1000):
        assert detect(pcm, chunk=chunk) == reference


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_a_40ms_digit_is_always_detected(offset: int) -> None:
    pcm = to_pcm(silence(offset / 8) + digit_tone("6", 40) + silence(50))
    assert [d for d, _, _ in detect(pcm)] == ["6"]


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_an_18ms_blip_is_never_detected(offset: int) -> None:
    pcm = to_pcm(silence(offset / 8) + digit_tone("6", 18) + silence(50))
    assert detect(pcm) == []


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_a_10ms_dropout_is_bridged(offset: int) -> None:
    audio = silence(offset / 8) + digit_tone("5", 60) + silence(10) + digit_tone("5", 60)
    found = detect(to_pcm(audio + silence(60)))
    assert [d for d, _, _ in found] == ["5"]
    assert found[0][1] >= 0.11


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_a_40ms_pause_separates_repeated_digits(offset: int) -> None:
    audio = silence(offset / 8) + digit_tone("5", 50) + silence(40) + digit_tone("5", 50)
    assert [d for d, _, _ in detect(to_pcm(audio + silence(60)))] == ["5", "5"]


def test_two_digits_without_pause_are_two_digits() -> None:
    pcm = to_pcm(digit_tone("1", 60) + digit_tone("2", 60) + silence(40))
    assert [d for d, _, _ in detect(pcm)] == ["1", "2"]


def test_flush_reports_a_digit_still_sounding() -> None:
    detector = DtmfDetector()
    assert detector.feed(to_pcm(digit_tone("9", 100))) == []
    (digit,) = detector.flush()
    assert digit.digit == "9" and digit.end_reason is DtmfEnd.TONE_STOPPED
    assert digit.volume == 10  # the level of the tones: -10 dBm0
    assert detector.flush() == []


@pytest.mark.parametrize(
    ("row_db", "col_db", "detected"),
    [
        (-10, -10, True),
        (-6, -13, True),  # 7 dB normal twist: allowed (max 8)
        (-5, -15, False),  # 10 dB normal twist
        (-13, -10, True),  # 3 dB reverse twist: allowed (max 4)
        (-16, -10, False),  # 6 dB reverse twist
        (-36, -36, False),  # below the -32 dBm0 sensitivity
        (-28, -28, True),
    ],
)
def test_level_and_twist_limits(row_db: float, col_db: float, detected: bool) -> None:
    pcm = to_pcm(digit_tone("5", 80, row_db=row_db, col_db=col_db) + silence(40))
    assert bool(detect(pcm)) is detected


@pytest.mark.parametrize(
    "freqs",
    [
        [(697, -10)],  # a single row tone
        [(1336, -10)],  # a single column tone
        [(1000, -5)],  # a test tone
        [(697, -10), (770, -10)],  # two row tones
        [(1209, -10), (1477, -10)],  # two column tones
        [(350, -13), (440, -13)],  # North American dial tone
        [(480, -10), (620, -10)],  # busy tone
    ],
)
def test_other_tones_do_not_trigger(freqs: list[tuple[float, float]]) -> None:
    assert detect(to_pcm(tones(freqs, 500))) == []


def vowel(ms: float, f0: float, formants: tuple[float, ...], seed: int) -> list[float]:
    """A voiced sound: harmonics of f0 (with vibrato) shaped by formant resonances."""
    rng = random.Random(seed)
    n = round(ms * RATE / 1000)
    out = [0.0] * n
    phases = [rng.random() * 2 * math.pi for _ in range(40)]
    for k in range(1, 40):
        freq = k * f0
        if freq > 3800:
            break
        gain = sum(1 / (1 + ((freq - f) / 90) ** 2) for f in formants) / k**0.5
        for i in range(n):
            wobble = 1 + 0.02 * math.sin(2 * math.pi * 5 * i / RATE)
            out[i] += gain * math.sin(2 * math.pi * freq * wobble * i / RATE + phases[k])
    peak = max(abs(v) for v in out)
    return [v / peak * 12000 for v in out]


@pytest.mark.parametrize(
    ("f0", "formants"),
    [
        (120, (730, 1090, 2440)),  # "a", male
        (210, (270, 2290, 3010)),  # "i", female
        (150, (300, 870, 2240)),  # "u"
        (100, (660, 1720, 2410)),  # "ae", low voice
        (180, (700, 1220, 2600)),
    ],
)
def test_speech_like_sounds_do_not_trigger(f0: float, formants: tuple[float, ...]) -> None:
    audio = vowel(400, f0, formants, seed=int(f0)) + silence(20)
    assert detect(to_pcm(audio, noise_db=-40)) == []


def test_white_noise_does_not_trigger() -> None:
    assert detect(to_pcm(silence(2000), noise_db=-10, seed=7)) == []


def test_parameter_validation_and_odd_input() -> None:
    with pytest.raises(ValueError):
        DtmfDetector(block_size=10)
    with pytest.raises(Exception, match="even"):
        DtmfDetector().feed(b"\x00")
