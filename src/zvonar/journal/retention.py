"""Recording retention: delete recordings and voicemail messages older than the account keeps
them (``Account.recording_retention_days``); the journal row stays, the file's path cleared
and its length kept: a path gone with the length still there is how the journal tells a
recording that expired from a call never recorded (``recording_expired`` in the API).
:class:`RetentionSchedule` runs it for every account at start-up and daily."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import or_, select

from zvonar.accounts.models import Account
from zvonar.core.errors import InvalidInput
from zvonar.journal import paths
from zvonar.journal.models import CallRecord
from zvonar.store.base import utcnow
from zvonar.store.db import Database

log = logging.getLogger(__name__)

DAY = 86400.0


async def purge_recordings(
    db: Database, data_dir: Path, account_id: uuid.UUID, retention_days: int, now: datetime
) -> int:
    """Delete the account's recordings and voicemail messages of calls started more than
    ``retention_days`` before ``now``; returns how many files went. A file already gone is
    fine; a file that cannot be deleted keeps its path so the next run tries again."""
    if retention_days < 1:
        raise InvalidInput("retention must be at least one day", field="retention_days")
    cutoff = now - timedelta(days=retention_days)
    purged = 0
    async with db.unit_of_work() as uow:
        rows = await uow.session.scalars(
            select(CallRecord).where(
                CallRecord.account_id == account_id,
                or_(CallRecord.recording_path.is_not(None), CallRecord.voicemail_path.is_not(None)),
                CallRecord.started_at < cutoff,
            )
        )
        for call in rows:
            if _delete(data_dir, account_id, call.recording_path):
                call.recording_path = None
                purged += 1
            if _delete(data_dir, account_id, call.voicemail_path):
                call.voicemail_path = None
                purged += 1
    return purged


def _delete(data_dir: Path, account_id: uuid.UUID, stored: str | None) -> bool:
    """Whether ``stored`` is a path that is now gone from disk (it may have been already)."""
    if stored is None:
        return False
    file = paths.to_file(data_dir, account_id, stored)
    try:
        if file is not None:
            file.unlink(missing_ok=True)
    except OSError:
        log.exception("journal: could not delete %s", stored)
        return False
    return True


class Purger(Protocol):
    """What the schedule calls per account: ``JournalService.purge_recordings`` (it flushes
    the write-behind queue first, so a call finished a moment ago is not missed)."""

    async def purge_recordings(
        self, account_id: uuid.UUID, retention_days: int, now: datetime
    ) -> int: ...


async def purge_all(db: Database, purger: Purger, now: datetime) -> dict[uuid.UUID, int]:
    """Apply every account's ``recording_retention_days``; per account, how many files
    went. One account failing (a disk error) does not stop the others."""
    async with db.read() as s:
        accounts = (await s.execute(select(Account.id, Account.recording_retention_days))).all()
    done: dict[uuid.UUID, int] = {}
    for account_id, days in accounts:
        try:
            done[account_id] = await purger.purge_recordings(account_id, max(1, days), now)
        except Exception:
            log.exception("journal: retention failed for account %s", account_id)
    return done


class RetentionSchedule:
    """Runs :func:`purge_all` at start-up and then every ``interval`` seconds (a day), as a
    background task of ``zvonar serve``: ``start()`` after the database is up, ``await
    stop()`` before the journal closes. ``runs`` and ``last`` say what it did."""

    def __init__(
        self,
        db: Database,
        purger: Purger,
        *,
        interval: float = DAY,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be positive")
        self.db = db
        self.purger = purger
        self.interval = interval
        self.clock = clock
        self.runs = 0
        self.last: dict[uuid.UUID, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._loop(), name="recording retention")

    async def run_once(self) -> dict[uuid.UUID, int]:
        self.last = await purge_all(self.db, self.purger, self.clock())
        self.runs += 1
        purged = sum(self.last.values())
        if purged:
            log.info("journal: retention deleted %d recording(s) and message(s)", purged)
        return self.last

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # the database is down: try again at the next run
                log.exception("journal: retention run failed")
            await asyncio.sleep(self.interval)
