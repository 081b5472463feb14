"""The garbage collector's policy for a running PBX (issue #5's throughput measurements).

CPython's cyclic collector walks every tracked object of a generation. A PBX keeps many
objects alive for a while on purpose — SIP transactions wait out their 32 s timers, the journal
remembers live calls — and start-up leaves ~160,000 more (modules, ORM and API metadata) that
never become garbage. With the default thresholds (700, 10, 10) the bench spent half of its
CPU in collections at 250 calls/s, with pauses of 0.3–0.6 s (every call in flight waits).

:func:`settle_heap`, called once start-up is done: collect, then ``gc.freeze()`` what is left
(those objects are never scanned again), and collect the young generations less often, so
short-lived objects die by reference count before a collection ever sees them.
"""

from __future__ import annotations

import gc

__all__ = ["PBX_THRESHOLDS", "settle_heap"]

# gen0 every 3,000 net allocations (default 700), gen1 every 20 of those, a full collection
# after 100 gen1 runs at most (and only when a quarter of the old objects are new). Measured
# at 200-450 calls/s: (10_000, 10, 100) gave the same throughput with 50-75 ms gen1 pauses,
# these keep them under ~35 ms; the defaults ran full collections of 0.3-0.6 s.
PBX_THRESHOLDS = (3_000, 20, 100)


def settle_heap(thresholds: tuple[int, int, int] = PBX_THRESHOLDS) -> int:
    """Freeze what start-up built and set ``thresholds``; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return gc.get_freeze_count()
