"""The PBX's collector policy: start-up objects frozen, young generations collected rarely."""

from __future__ import annotations

import gc

from zvonar.pbx.heap import PBX_THRESHOLDS, settle_heap


def test_settle_heap_freezes_start_up_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    try:
        kept = [object() for _ in range(10)]
        frozen = settle_heap()
        assert frozen >= len(kept) and gc.get_freeze_count() == frozen
        assert gc.get_threshold() == PBX_THRESHOLDS
        assert len(gc.get_objects(generation=2)) < frozen  # frozen objects are not scanned
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
