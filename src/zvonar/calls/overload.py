"""Shedding new calls when the PBX cannot serve them in time.

A single event loop saturated by INVITEs does not fail cleanly: every transaction slows
down, callers retransmit, the retransmissions add load, and calls already set up suffer with
the new ones (measured: past ~390 calls/s on one core the bench falls into thousands of
retransmissions). A carrier is better served by a quick ``503 Service Unavailable`` with
``Retry-After`` (RFC 3261 §21.5.4, §20.33): it fails the call over to another route or
retries later, and the calls in progress keep their timing.

:class:`OverloadGuard` is the decision, free of I/O: ``admit(calls_in_progress)`` says
whether a new INVITE may start a call. It sheds while the loop runs late (its lag, fed by
:class:`LagMonitor`, above ``max_lag`` on ``late_ticks`` samples in a row — one stall, however
long (a first-time load, a slow disk write), is not overload, and a saturated loop is late on
every tick; admitting again once a sample is below half of it, so it does not flap) and while
``max_calls`` calls are in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

__all__ = ["LagMonitor", "OverloadGuard"]


@dataclass
class OverloadGuard:
    max_calls: int = 5000
    max_lag: float = 0.2  # seconds the loop may run late, late_ticks times in a row
    late_ticks: int = 3
    retry_after: int = 2  # seconds, in the 503's Retry-After
    lag: float = 0.0
    shedding: bool = False
    shed: int = 0  # INVITEs refused (observability)
    _late: int = 0  # samples in a row above max_lag

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.max_lag <= 0 or self.retry_after < 0 or self.late_ticks < 1:
            raise ValueError(
                "max_calls >= 1, max_lag > 0, late_ticks >= 1 and retry_after >= 0 are required"
            )

    def observe(self, lag: float) -> None:
        """The loop's latest lag (seconds late on a timer)."""
        self.lag = lag
        self._late = self._late + 1 if lag > self.max_lag else 0
        if self._late >= self.late_ticks:
            self.shedding = True
        elif lag < self.max_lag / 2:
            self.shedding = False

    def admit(self, in_progress: int) -> bool:
        if self.shedding or in_progress >= self.max_calls:
            self.shed += 1
            return False
        return True


class LagMonitor:
    """Measures how late the loop runs a timer every ``interval`` and tells the guard."""

    def __init__(self, guard: OverloadGuard, interval: float = 0.05) -> None:
        self.guard = guard
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.guard.observe(max(0.0, loop.time() - due))
