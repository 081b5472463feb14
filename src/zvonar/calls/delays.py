"""Post-dial delay as an operator watches it: from a caller's INVITE reaching us to our first
INVITE towards whoever we ring for them, in a histogram ``GET /metrics`` exposes. Only calls
rung directly count (not those we answer first for a menu or a queue: their wait is the
caller's choice, not the PBX's speed). ``bench/bench_b2bua.py`` measures the same interval."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

__all__ = ["PDD_BOUNDS", "DelayHistogram"]

# Seconds. Fine below 10 ms, where a healthy PBX lives, coarse up to the seconds an overloaded
# or blocked one reaches (a routing back office has 2 s: the HTTP route's default timeout).
PDD_BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class DelayHistogram:
    """Counts per bucket (``le``: at most that many seconds), their sum and count."""

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def buckets(self) -> list[tuple[float, int]]:
        """(upper bound, observations at most that) for every bound, then (inf, count)."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts, strict=True):
            running += n
            out.append((bound, running))
        return out
