"""Recording retention: delete recordings older than the account keeps them; the journal row
stays, with its recording path cleared."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from zvonar.core.errors import InvalidInput
from zvonar.journal import paths
from zvonar.journal.models import CallRecord
from zvonar.store.db import Database

log = logging.getLogger(__name__)


async def purge_recordings(
    db: Database, data_dir: Path, account_id: uuid.UUID, retention_days: int, now: datetime
) -> int:
    """Delete the account's recordings of calls started more than ``retention_days`` before
    ``now``; returns how many rows lost their recording. A file already gone is fine; a file
    that cannot be deleted keeps its path so the next run tries again."""
    if retention_days < 1:
        raise InvalidInput("retention must be at least one day", field="retention_days")
    cutoff = now - timedelta(days=retention_days)
    purged = 0
    async with db.unit_of_work() as uow:
        rows = await uow.session.scalars(
            select(CallRecord).where(
                CallRecord.account_id == account_id,
                CallRecord.recording_path.is_not(None),
                CallRecord.started_at < cutoff,
            )
        )
        for call in rows:
            stored = call.recording_path
            if stored is None:  # for the type checker: the query excludes it
                continue
            file = paths.to_file(data_dir, account_id, stored)
            try:
                if file is not None:
                    file.unlink(missing_ok=True)
            except OSError:
                log.exception("journal: could not delete recording %s", stored)
                continue
            call.recording_path = None
            call.recording_seconds = None
            purged += 1
    return purged
