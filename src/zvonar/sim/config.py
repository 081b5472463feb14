"""What a simulation does (`SimConfig`) and what it saw (`SimReport`).

Times are real seconds except the rate profile, which is read on a *simulated* clock: a
whole day (24 profile hours) passes in ``day_seconds`` real seconds, starting at
``start_hour``. Arrivals are a non-homogeneous Poisson process whose rate at simulated hour
``h`` is ``rate_per_minute * profile[h] / mean(profile)`` calls per real minute.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["OFFICE_DAY", "Dist", "SimConfig", "SimReport", "percentile"]

# Relative call volume by hour of an office day (0h..23h): quiet nights, a morning peak.
OFFICE_DAY: tuple[float, ...] = (
    *(0.05,) * 7,
    0.3,
    0.8,
    1.6,
    2.0,
    2.0,
    1.6,
    1.7,
    1.9,
    1.8,
    1.5,
    1.0,
    0.5,
    0.3,
    *(0.1,) * 4,
)


@dataclass(frozen=True)
class Dist:
    """A distribution of seconds: ``fixed`` (a), ``uniform`` (a..b), ``exponential``
    (mean a), ``lognormal`` (median a, shape b); ``cap`` bounds every draw."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0
    cap: float = 3600.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "exponential", "lognormal"):
            raise ValueError(f"unknown distribution {self.kind!r}")
        if self.a < 0 or self.b < 0 or self.cap < 0:
            raise ValueError("distribution parameters must not be negative")
        if self.kind == "uniform" and self.b < self.a:
            raise ValueError("uniform needs a <= b")

    @classmethod
    def parse(cls, text: str) -> Dist:
        """``"2"`` (fixed), ``"1..4"`` (uniform), ``"exp:3"``, ``"lognormal:20:0.8"``."""
        text = text.strip()
        if ".." in text:
            lo, hi = text.split("..", 1)
            return cls("uniform", float(lo), float(hi))
        if text.startswith("exp:"):
            return cls("exponential", float(text[4:]))
        if text.startswith("lognormal:"):
            median, _, shape = text[10:].partition(":")
            return cls("lognormal", float(median), float(shape or 0.5))
        return cls("fixed", float(text))

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            value = self.a
        elif self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif self.kind == "exponential":
            value = rng.expovariate(1 / self.a) if self.a > 0 else 0.0
        else:
            value = self.a * math.exp(rng.gauss(0, self.b)) if self.a > 0 else 0.0
        return min(max(value, 0.0), self.cap)


@dataclass(frozen=True)
class SimConfig:
    duration: float = 60.0  # real seconds during which calls are placed
    rate_per_minute: float = 30.0  # mean arrivals per real minute over the profile
    profile: tuple[float, ...] = OFFICE_DAY  # relative rate per simulated hour
    day_seconds: float = 0.0  # real seconds per simulated day; 0: the profile is ignored
    start_hour: float = 9.0  # simulated hour at t=0
    max_calls: int = 1000  # hard bound on calls placed
    answer_delay: Dist = Dist("uniform", 0.5, 3.0)  # device rings this long before answering
    talk_time: Dist = Dist("lognormal", 10.0, 0.6)  # device hangs up after this
    patience: Dist = Dist("uniform", 5.0, 20.0)  # caller abandons if unanswered by then
    busy_probability: float = 0.1  # a device rejects 486 Busy Here
    one_call_per_device: bool = True  # a device on a call answers 486 to another
    rtp: bool = True  # send G.711 silence on answered calls (20 ms packets)
    drain_timeout: float = 30.0  # after the last arrival, wait this long for calls to end
    # Who calls (sim/numbers.py): ``callers`` distinct numbers of ``country``, a few of them
    # calling often; or exactly ``caller_ids`` when given, the first the most often.
    callers: int = 50
    country: str = "RU"
    caller_ids: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.rate_per_minute <= 0:
            raise ValueError("duration and rate must be positive")
        if not self.profile or any(w < 0 for w in self.profile) or sum(self.profile) <= 0:
            raise ValueError("the profile needs non-negative weights, not all zero")
        if not 0 <= self.busy_probability <= 1:
            raise ValueError("busy_probability must be within 0..1")
        if not 0 < self.max_calls <= 100_000:
            raise ValueError("max_calls must be 1..100000")
        if not 0 < self.callers <= 100_000:
            raise ValueError("callers must be 1..100000")
        # An hour of the day: 24 would be the next day's 0.
        if not 0 <= self.start_hour < 24:
            raise ValueError("start_hour must be at least 0 and below 24")

    def rate_at(self, t: float) -> float:
        """Arrivals per real second at real time ``t`` after the start."""
        base = self.rate_per_minute / 60
        if self.day_seconds <= 0:
            return base
        hours = len(self.profile)
        hour = (self.start_hour + 24 * t / self.day_seconds) % 24
        weight = self.profile[int(hour * hours / 24) % hours]
        return base * weight / statistics.fmean(self.profile)

    @property
    def peak_rate(self) -> float:
        if self.day_seconds <= 0:
            return self.rate_per_minute / 60
        return self.rate_per_minute / 60 * max(self.profile) / statistics.fmean(self.profile)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class SimReport:
    """Outcome counts, from the callers' side, each call in exactly one of ``answered``,
    ``abandoned``, ``rejected`` (a final 4xx/6xx from the PBX: nobody answered, everyone
    busy) and ``failed`` (5xx, no answer to the INVITE, an error). Of the answered,
    ``pbx_answered`` were answered by the PBX itself with no ringing first (voicemail, a
    greeting, a menu, a queue) and ``cut`` were still talking when the simulation ended."""

    placed: int = 0
    answered: int = 0
    abandoned: int = 0
    rejected: int = 0
    failed: int = 0
    pbx_answered: int = 0
    cut: int = 0
    device_answers: int = 0
    device_busy: int = 0
    rtp_packets_sent: int = 0
    elapsed: float = 0.0
    answer_waits: list[float] = field(default_factory=list)  # INVITE sent → 200 received
    statuses: dict[int, int] = field(default_factory=dict)  # final non-2xx statuses seen

    @property
    def finished(self) -> int:
        return self.answered + self.abandoned + self.rejected + self.failed

    def wait(self, q: float) -> float | None:
        return percentile(self.answer_waits, q)

    def summary(self) -> str:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v * 1000:.0f} ms"

        return (
            f"placed {self.placed}, answered {self.answered} (by the PBX itself "
            f"{self.pbx_answered}, cut at the end {self.cut}), abandoned {self.abandoned}, "
            f"rejected {self.rejected}, failed {self.failed} in {self.elapsed:.1f} s; "
            f"answer wait p50 {ms(self.wait(0.5))}, p90 {ms(self.wait(0.9))}, "
            f"p99 {ms(self.wait(0.99))}; devices answered {self.device_answers}, "
            f"busy {self.device_busy}; RTP packets sent {self.rtp_packets_sent}"
        )
