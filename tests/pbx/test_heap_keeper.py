"""The PBX's heap keeper: young objects collected on a timer, survivors frozen, all released
when the PBX stops."""

from __future__ import annotations

import asyncio
import gc
import weakref

from zvonar.pbx.heap import (
    KEEP_INTERVAL,
    HeapKeeper,
    keeper_for,
    release_heap,
    settle_heap,
    sweep_heap,
)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


async def _keeper_runs(times: int) -> None:
    keeper = keeper_for(asyncio.get_running_loop())
    assert keeper is not None
    start = keeper.runs
    for _ in range(200):
        if keeper.runs >= start + times:
            return
        await asyncio.sleep(KEEP_INTERVAL / 2)
    raise AssertionError("the keeper did not run")


async def test_keeper_collects_young_cycles_and_freezes_survivors() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        keeper = keeper_for(asyncio.get_running_loop())
        assert keeper is not None and keeper.running
        settle_heap()  # once per loop
        assert keeper_for(asyncio.get_running_loop()) is keeper

        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        del a, b  # a cycle that dies young: the next run collects it
        kept = Node()
        await _keeper_runs(2)
        assert dead() is None
        assert all(o is not kept for g in range(3) for o in gc.get_objects(generation=g))
        assert gc.get_freeze_count() > 0
    finally:
        release_heap()
        gc.set_threshold(*before)
    assert keeper_for(asyncio.get_running_loop()) is None
    assert gc.get_freeze_count() == 0 and not keeper.running


async def test_sweep_reclaims_a_cycle_that_died_frozen() -> None:
    try:
        settle_heap(keep=False)
        assert keeper_for(asyncio.get_running_loop()) is None
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        gc.freeze()
        del a, b
        gc.collect()
        assert dead() is not None  # frozen: the collector does not look at it
        assert sweep_heap() >= 2
        assert dead() is None
    finally:
        gc.unfreeze()


async def test_the_keeper_sweeps_on_its_own_so_frozen_cycles_do_not_leak() -> None:
    loop = asyncio.get_running_loop()
    keeper = HeapKeeper(loop, interval=0.005, sweep_every=0.03)
    try:
        gc.collect()
        gc.freeze()
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        keeper.start()
        for _ in range(100):  # survives a run: frozen with the other survivors
            if keeper.runs >= 2:
                break
            await asyncio.sleep(0.005)
        del a, b  # the cycle dies frozen
        for _ in range(200):
            if keeper.sweeps and dead() is None:
                break
            await asyncio.sleep(0.005)
        assert keeper.sweeps >= 1 and dead() is None
    finally:
        keeper.stop()
        gc.unfreeze()
