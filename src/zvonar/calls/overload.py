"""Shedding new calls when the PBX cannot serve them in time.

A single event loop saturated by INVITEs does not fail cleanly: every transaction slows
down, callers retransmit, the retransmissions add load, and calls already set up suffer with
the new ones (measured: past ~390 calls/s on one core the bench falls into thousands of
retransmissions). A carrier is better served by a quick ``503 Service Unavailable`` with
``Retry-After`` (RFC 3261 §21.5.4, §20.33): it fails the call over to another route or
retries later, and the calls in progress keep their timing.

:class:`OverloadGuard` is the decision, free of I/O: ``admit(calls_in_progress)`` says
whether a new INVITE may start a call. It sheds while the loop runs late (its lag, fed by
:class:`LagMonitor` and smoothed over the last samples so that one stall — a collection, a
slow disk write — is not taken for overload, above ``max_lag``; admitting again once it fell
below half of that, so it does not flap) and while ``max_calls`` calls are in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

__all__ = ["LagMonitor", "OverloadGuard"]


@dataclass
class OverloadGuard:
    max_calls: int = 5000
    max_lag: float = 0.2  # seconds the loop may run late (smoothed) before new calls are shed
    retry_after: int = 2  # seconds, in the 503's Retry-After
    lag: float = 0.0
    shedding: bool = False
    shed: int = 0  # INVITEs refused (observability)

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.max_lag <= 0 or self.retry_after < 0:
            raise ValueError("max_calls >= 1, max_lag > 0 and retry_after >= 0 are required")

    def observe(self, lag: float) -> None:
        """The loop's latest lag (seconds late on a timer), averaged with the ones before
        (each sample weighs half): a lone stall counts half, sustained lateness all of it."""
        lag = self.lag = (self.lag + lag) / 2
        if lag > self.max_lag:
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
