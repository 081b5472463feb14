"""The garbage collector's policy for a running PBX (issue #5's throughput measurements).

CPython's cyclic collector walks every tracked object of a generation. A PBX keeps many
objects alive for a while on purpose — SIP transactions wait out their 32 s timers, the journal
remembers recent calls — and start-up leaves ~160,000 more (modules, ORM and API metadata) that
never become garbage. Yet the call path makes no cyclic garbage at all (measured: a bench run
with ``gc.DEBUG_SAVEALL`` found none in thousands of calls): everything a call builds is freed
by reference counting. Every collection is pure cost, and its pause stalls every call in flight.

Two things made that cost hurt with CPython's own policy:

- the young generation's trigger counts allocations *minus deallocations*, so once old objects
  die as fast as new ones are kept (32 s into a steady load) it hardly ever fires, the young
  list grows with everything kept since, and the collection that finally comes walks it all
  (pauses of 20-50 ms at 150-300 calls/s, the post-dial delay's p99);
- whatever survives lands in the old generations, walked again by every gen1 / full collection
  (full ones of 0.3-0.6 s with the default thresholds).

:func:`settle_heap`, called once start-up is done: collect, ``gc.freeze()`` what is left (never
scanned again), and set young thresholds for bursts. Called inside a running loop it also
starts a :class:`HeapKeeper` there: every ``interval`` (20 ms) it collects what is not frozen —
only objects born since its last run, so the pause stays short and even — and freezes the
survivors. A frozen object is still freed by reference counting the moment it is no longer used;
only a reference *cycle* that was alive at a freeze and dies later is never reclaimed.
:func:`sweep_heap` (unfreeze, full collection, freeze) reclaims those, at a pause proportional
to the whole heap; the keeper runs it every ``sweep_every`` (5 minutes), because the same
process serves the API and the web UI, whose requests do make cycles (exceptions with their
tracebacks, ORM sessions): frozen for good they would leak for as long as the process runs
(a sweep of ~540,000 objects measured 148 ms). :func:`release_heap` (when the PBX stops)
stops the keeper and unfreezes everything.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

__all__ = [
    "KEEP_INTERVAL",
    "PBX_THRESHOLDS",
    "SWEEP_EVERY",
    "HeapKeeper",
    "keeper_for",
    "release_heap",
    "settle_heap",
    "sweep_heap",
]

# Automatic collections stay on for bursts between two keeper runs (and when no keeper runs,
# or it runs late on a saturated loop): gen0 every 3,000 net allocations (default 700), gen1
# every 5 of those (a gen1 run walks at most ~18,000 objects: ~6 ms; with 20 it was ~20 ms at
# 400 calls/s), a full collection after 100 gen1 runs at most (and only when a quarter of the
# old objects are new).
PBX_THRESHOLDS = (3_000, 5, 100)
# How often the keeper collects the young objects. Measured at 150-400 calls/s: a run walks
# the few thousand objects born in 20 ms (~1-2 ms), instead of 20-50 ms pauses now and then
# (post-dial delay p99 at ~195 calls/s: 16-26 ms before, 3-6 ms with it). The price: every
# object that lives longer than 20 ms is walked once, where the old policy let many of a
# short call's objects die unseen: ~+40 us of CPU per call at 400 calls/s in the bench
# (10 ms and 50 ms both measured worse than 20).
KEEP_INTERVAL = 0.02
# How often the keeper also sweeps (a full collection of everything, frozen or not): the
# bound on how long a frozen cycle's memory stays taken, at one whole-heap pause each time.
SWEEP_EVERY = 300.0


class HeapKeeper:
    """Collects the unfrozen objects every ``interval`` seconds on ``loop`` and freezes what
    survives (see the module docstring). Stops by itself when the loop closes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float = KEEP_INTERVAL,
        sweep_every: float = SWEEP_EVERY,
    ) -> None:
        self.loop = loop
        self.interval = interval
        self.sweep_every = sweep_every
        self.runs = 0
        self.sweeps = 0
        self._next_sweep = loop.time() + sweep_every
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        if self._handle is None and not self.loop.is_closed():
            self._handle = self.loop.call_later(self.interval, self._run)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        self._handle = None
        # Everything older than the last run is frozen, so the young generations hold only
        # what was born since (an automatic gen1 run may have promoted a little of it to
        # gen2: the freeze takes that along). Not a full collection: that would also empty
        # the interpreter's free lists every time.
        if self.loop.time() >= self._next_sweep:
            sweep_heap()
            self.sweeps += 1
            self._next_sweep = self.loop.time() + self.sweep_every
        else:
            gc.collect(1)
            gc.freeze()
        self.runs += 1
        self.start()


_keepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HeapKeeper] = (
    weakref.WeakKeyDictionary()
)


def keeper_for(loop: asyncio.AbstractEventLoop) -> HeapKeeper | None:
    """The keeper started on ``loop``, if any."""
    return _keepers.get(loop)


def settle_heap(thresholds: tuple[int, int, int] = PBX_THRESHOLDS, *, keep: bool = True) -> int:
    """Freeze what start-up built and set ``thresholds``; inside a running loop (and with
    ``keep``) start its :class:`HeapKeeper` (once per loop). Returns how many objects are
    frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    if keep:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            keeper = _keepers.get(loop)
            if keeper is None:
                keeper = _keepers[loop] = HeapKeeper(loop)
            keeper.start()
    return gc.get_freeze_count()


def release_heap() -> None:
    """A stopping PBX: stop the running loop's keeper and unfreeze everything, so what the
    PBX kept (and any cycle frozen with it) goes back to the default collector. Nothing
    happens where no keeper runs."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    keeper = _keepers.pop(loop, None)
    if keeper is not None:
        keeper.stop()
        gc.unfreeze()


def sweep_heap() -> int:
    """Unfreeze, collect everything, freeze again: reclaims reference cycles that died after
    being frozen. Pauses for as long as a walk of the whole heap. Returns what it collected."""
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found
