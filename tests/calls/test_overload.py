"""Overload control: the guard's decision and the loop-lag monitor that feeds it."""

from __future__ import annotations

import asyncio
import time

import pytest

from zvonar.calls.overload import LagMonitor, OverloadGuard


def test_a_lone_stall_is_no_overload_but_sustained_lateness_is() -> None:
    guard = OverloadGuard(max_calls=10, max_lag=0.1, late_ticks=3)
    for lag in (2.0, 0.15, 0.0, 0.15, 0.15):  # stalls, but never three ticks in a row
        guard.observe(lag)
        assert guard.admit(0)
    guard.observe(0.15)  # late on a third tick in a row
    assert not guard.admit(0)
    guard.observe(0.08)  # better, but not below half: still shedding (no flapping)
    assert not guard.admit(0)
    guard.observe(0.04)
    assert guard.admit(0)
    assert guard.shed == 2


def test_sheds_at_max_calls_in_progress() -> None:
    guard = OverloadGuard(max_calls=3)
    assert guard.admit(2)
    assert not guard.admit(3)
    assert guard.shed == 1


@pytest.mark.parametrize(
    "kw", [{"max_calls": 0}, {"max_lag": 0.0}, {"retry_after": -1}, {"late_ticks": 0}]
)
def test_nonsense_limits_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        OverloadGuard(**kw)  # type: ignore[arg-type]


def _stall(seconds: float) -> None:
    """Work that holds the event loop (what a saturated PBX does to it)."""
    time.sleep(seconds)


async def test_a_blocked_loop_turns_shedding_on_and_a_free_one_off() -> None:
    guard = OverloadGuard(max_lag=0.04, late_ticks=2)
    monitor = LagMonitor(guard, interval=0.01)
    monitor.start()
    try:
        await asyncio.sleep(0.03)
        assert not guard.shedding
        _stall(0.12)  # one stall: the monitor's timer fires ~0.11 s late, once
        await asyncio.sleep(0.03)
        assert not guard.shedding
        # The loop stays stuck: late on tick after tick. How many stalls it takes for the
        # monitor to run late three times in a row depends on where its timer falls among
        # them (one full run here needed more than four): bounded, not exact.
        for _ in range(20):
            _stall(0.06)
            await asyncio.sleep(0)  # only a yield: the monitor runs, late, between stalls
            if guard.shedding:
                break
        assert guard.shedding and guard.lag > 0.04
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not guard.shedding:
                break
        assert not guard.shedding
    finally:
        await monitor.stop()
