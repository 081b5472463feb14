"""Who writes which open journal rows: a lease per process.

A call's row stays ``open`` from its first INVITE to its end. If the process handling the call
dies, somebody must close the row, but only then: a second process starting on the same
database (another node, or a CLI run by mistake) must not close calls that are still going on.
So every process that writes call rows stamps them with its id (``calls.owner_id``) and renews
its lease in ``call_owners`` every ``HEARTBEAT`` seconds. A row whose owner has not renewed for
``STALE`` seconds belongs to a dead process: :func:`zvonar.journal.recovery.recover_open_calls`
closes it, taking the owner's last renewal as the call's end (the process was alive, and the
call with it, until then). Every such process sweeps every ``SWEEP`` seconds, so a killed
node's calls are closed by the others, or by itself within a minute of its restart.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, update

from zvonar.core.tasks import cancel
from zvonar.journal.models import CallOwner, CallRecord, CallStatus
from zvonar.store.base import utcnow
from zvonar.store.db import Database

log = logging.getLogger(__name__)

HEARTBEAT = 5.0  # seconds between renewals: a recovered call's end is this close to the truth
STALE = timedelta(seconds=20)  # a lease not renewed for this long is a dead process's
SWEEP = 15.0  # seconds between looks for dead processes' rows
FORGET = timedelta(days=1)  # a dead process's lease with no open row left is deleted after this


async def renew(db: Database, owner_id: uuid.UUID, now: datetime) -> None:
    """Create or renew ``owner_id``'s lease."""
    async with db.unit_of_work() as uow:
        s = uow.session
        done = await s.execute(
            update(CallOwner).where(CallOwner.id == owner_id).values(renewed_at=now)
        )
        if not getattr(done, "rowcount", 0):
            s.add(CallOwner(id=owner_id, started_at=now, renewed_at=now))


async def release(db: Database, owner_id: uuid.UUID) -> None:
    """A process that stops cleanly drops its lease (its calls ended with it)."""
    async with db.unit_of_work() as uow:
        await uow.session.execute(delete(CallOwner).where(CallOwner.id == owner_id))


async def forget_dead(db: Database, now: datetime) -> int:
    """Delete leases dead for ``FORGET`` that own no open row any more; how many."""
    async with db.unit_of_work() as uow:
        owns_open = exists().where(
            CallRecord.owner_id == CallOwner.id, CallRecord.status == CallStatus.open
        )
        done = await uow.session.execute(
            delete(CallOwner).where(CallOwner.renewed_at < now - FORGET, ~owns_open)
        )
        return int(getattr(done, "rowcount", 0) or 0)


class OwnerLease:
    """Renews this process's lease and sweeps dead processes' rows, until stopped.

    ``sweep(now)`` is the journal's recovery of dead owners' rows (JournalService). A failed
    renewal or sweep is logged and tried again next time: the database may be briefly away,
    and the calls go on meanwhile.
    """

    def __init__(
        self,
        db: Database,
        owner_id: uuid.UUID,
        sweep: Callable[[datetime], Awaitable[int]],
        *,
        heartbeat: float = HEARTBEAT,
        sweep_every: float = SWEEP,
        clock: Callable[[], datetime] = utcnow,
        before_release: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.owner_id = owner_id
        self._sweep = sweep
        self.heartbeat = heartbeat
        self.sweep_every = sweep_every
        self._clock = clock
        self._before_release = before_release  # the journal's flush: rows land, then the lease
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the lease now (before the first call is written), then keep it."""
        await renew(self.db, self.owner_id, self._clock())
        self._task = asyncio.create_task(self._run(), name="journal-owner-lease")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        try:
            if self._before_release is not None:
                await self._before_release()
            await release(self.db, self.owner_id)
        except Exception:  # the database may be gone at shutdown: the lease then runs out
            log.warning("journal: could not release this process's lease", exc_info=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_every
        while True:
            await asyncio.sleep(self.heartbeat)
            now = self._clock()
            try:
                await renew(self.db, self.owner_id, now)
            except Exception:
                log.warning("journal: renewing this process's lease failed", exc_info=True)
            if loop.time() < next_sweep:
                continue
            next_sweep = loop.time() + self.sweep_every
            try:
                await self._sweep(now)
                await forget_dead(self.db, now)
            except Exception:
                log.warning("journal: sweeping dead processes' calls failed", exc_info=True)
