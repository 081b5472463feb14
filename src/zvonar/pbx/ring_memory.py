"""Round-robin pointers that outlive the process.

The routing engine remembers, per account, where each round-robin ring step goes on next
("round robin with memory"). The resolver keeps them in memory for the call path; this writes
the changed ones behind, every ``interval`` seconds and at stop, and reads them all at start,
so a restart does not send every group's next call to its first member again. A failed write
is logged and tried again with the next one; at worst a crash loses the last few seconds'
moves, which only makes one member's turn come early.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping

from sqlalchemy import delete, select, tuple_

from zvonar.core.tasks import cancel
from zvonar.pbx.models import RingPointer
from zvonar.store.base import utcnow
from zvonar.store.db import Database

log = logging.getLogger(__name__)

INTERVAL = 5.0


class RingMemory:
    def __init__(self, db: Database, *, interval: float = INTERVAL) -> None:
        self.db = db
        self.interval = interval
        self._pointers: dict[uuid.UUID, dict[str, int]] = {}
        self._dirty: set[tuple[uuid.UUID, str]] = set()
        self._task: asyncio.Task[None] | None = None

    def of(self, account_id: uuid.UUID) -> Mapping[str, int]:
        return self._pointers.get(account_id, {})

    def remember(self, account_id: uuid.UUID, memory: Mapping[str, int]) -> None:
        """What a call's routing moved (the call path: memory only)."""
        pointers = self._pointers.setdefault(account_id, {})
        for key, pointer in memory.items():
            if pointers.get(key) != pointer:
                pointers[key] = pointer
                self._dirty.add((account_id, key))

    async def load(self) -> None:
        async with self.db.read() as s:
            for row in await s.scalars(select(RingPointer)):
                self._pointers.setdefault(row.account_id, {})[row.key] = row.pointer

    async def flush(self) -> None:
        """Write what moved since the last flush (one transaction)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        try:
            now = utcnow()
            rows = [
                {"account_id": a, "key": k, "pointer": self._pointers[a][k], "updated_at": now}
                for a, k in sorted(dirty)
            ]
            async with self.db.unit_of_work() as uow:
                keys = [(r["account_id"], r["key"]) for r in rows]
                await uow.session.execute(
                    delete(RingPointer).where(
                        tuple_(RingPointer.account_id, RingPointer.key).in_(keys)
                    )
                )
                uow.session.add_all(RingPointer(**r) for r in rows)
        except Exception:
            self._dirty |= dirty  # written with the next flush
            raise

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ring-memory")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        try:
            await self.flush()
        except Exception:
            log.warning("ring memory: the last pointers were not written", exc_info=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.warning("ring memory: writing pointers failed, will retry", exc_info=True)
