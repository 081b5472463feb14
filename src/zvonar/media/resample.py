"""Sample-rate conversion by windowed sinc (band-limited interpolation), stdlib only.

Each output sample is the dot product of the input around its position with a low-pass
kernel ``h(x) = c sinc(c x) w(x / W)``, where ``x`` is the distance in input samples,
``c = cutoff x min(1, out_rate / in_rate)`` is the cutoff as a fraction of the input Nyquist
rate, ``w`` is a Blackman window and ``W = ZERO_CROSSINGS / c`` the kernel half-width. On
down-sampling the kernel stretches with the ratio, which is the anti-aliasing filter.

With ``ZERO_CROSSINGS = 24`` and ``cutoff = 0.9``, converting to 8 kHz measures: flat within
0.05 dB to 3.2 kHz, -0.7 dB at 3.4 kHz, -6 dB at 3.6 kHz, and anything from 4.2 kHz up that
would fold back into the band attenuated by more than 70 dB (the tests check these bounds).
Kernels are computed once per fractional phase; for the usual rational ratios (44.1 kHz ->
8 kHz has 80 phases) that is a handful of kernels. Cost is ``O(taps)`` Python-level
multiply-adds per output sample, about 0.6 s per 10 s of 44.1 kHz input on one core: fine for
prompts, which are converted once and cached, not for live streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from operator import mul

__all__ = ["CUTOFF", "ZERO_CROSSINGS", "resample"]

ZERO_CROSSINGS = 24
CUTOFF = 0.9


def _blackman(u: float) -> float:
    """Blackman window over u in [-1, 1] (1 at the centre, 0 at the ends)."""
    if abs(u) >= 1:
        return 0.0
    angle = math.pi * u
    return 0.42 + 0.5 * math.cos(angle) + 0.08 * math.cos(2 * angle)


def _sinc(x: float) -> float:
    if x == 0:
        return 1.0
    angle = math.pi * x
    return math.sin(angle) / angle


def _kernel(frac: float, c: float, half: int) -> list[float]:
    # Taps for input indices floor(t) - half + 1 .. floor(t) + half, t = floor(t) + frac.
    width = ZERO_CROSSINGS / c
    taps = []
    for j in range(-half + 1, half + 1):
        x = j - frac
        taps.append(c * _sinc(c * x) * _blackman(x / width))
    return taps


def resample(samples: Sequence[float], in_rate: int, out_rate: int) -> list[float]:
    """Convert ``samples`` (floats, one channel) from ``in_rate`` to ``out_rate`` Hz."""
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError("sample rates must be positive")
    if in_rate == out_rate:
        return list(samples)
    c = CUTOFF * min(1.0, out_rate / in_rate)
    half = math.ceil(ZERO_CROSSINGS / c)
    step = Fraction(in_rate, out_rate)  # input samples per output sample, exact
    padded = [0.0] * half + list(samples) + [0.0] * (half + 1)
    count = len(samples) * out_rate // in_rate
    kernels: dict[Fraction, list[float]] = {}
    out: list[float] = []
    append = out.append
    for n in range(count):
        position = n * step
        base = position.numerator // position.denominator
        frac = position - base
        kernel = kernels.get(frac)
        if kernel is None:
            kernel = _kernel(float(frac), c, half)
            if len(kernels) < 4096:  # irrational-looking ratios: do not hoard memory
                kernels[frac] = kernel
        start = base + 1  # padded index of input sample base - half + 1
        append(sum(map(mul, kernel, padded[start : start + 2 * half])))
    return out
