"""The recording retention schedule (journal/retention.py): at start-up and then every
interval it applies each account's ``recording_retention_days``: old recordings are deleted
and their journal rows say so (no recording any more, the call itself kept); recent ones and
those of an account that keeps them longer stay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.conftest import Tenant
from tests.journal.conftest import T0, CallScript, publish
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Account, Role
from zvonar.calls.events import CallRecorded, Disposition
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal.models import CallRecord
from zvonar.journal.retention import RetentionSchedule, purge_all
from zvonar.journal.service import CallFilter, JournalService

DAY = 86400


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _days(container: Container, account_id: uuid.UUID, days: int) -> None:
    async with container.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Account).where(Account.id == account_id).values(recording_retention_days=days)
        )


async def _recorded(
    bus: RecordingBus, journal: JournalService, account_id: uuid.UUID, start: datetime
) -> tuple[CallScript, Path]:
    s = CallScript(account_id, start=start)
    path = journal.recording_path_for(s.account_id, s.call_id, s.start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVE")
    await publish(
        bus,
        s.started(),
        s.ended(60, Disposition.answered),
        CallRecorded(account_id=s.account_id, call_id=s.call_id, path=str(path), duration=60),
    )
    return s, path


async def _row(journal: JournalService, call_id: str) -> CallRecord:
    await journal.flush()
    async with journal.db.read() as s:
        found = await s.scalar(select(CallRecord).where(CallRecord.call_id == call_id))
    assert found is not None
    return found


async def _until(check: object, within: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("not in time")
        await asyncio.sleep(0.02)


async def test_schedule_purges_at_start_and_then_every_interval(
    container: Container,
    bus: RecordingBus,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    a, b = tenant_a.account_id, tenant_b.account_id
    await _days(container, a, 30)
    await _days(container, b, 365)  # b keeps its recordings a year
    now = T0 + timedelta(days=400)
    a_old, a_old_file = await _recorded(bus, journal, a, now - timedelta(days=40))
    a_new, a_new_file = await _recorded(bus, journal, a, now - timedelta(days=5))
    _, b_mid_file = await _recorded(bus, journal, b, now - timedelta(days=40))
    b_old, b_old_file = await _recorded(bus, journal, b, now - timedelta(days=399))

    clock = Clock(now)
    # A day's interval: the start-up run must not wait for it.
    schedule = RetentionSchedule(container.db, journal, interval=DAY, clock=clock)
    schedule.start()
    try:
        await _until(lambda: schedule.runs >= 1)
        assert schedule.last == {a: 1, b: 1}
        assert not a_old_file.exists() and not b_old_file.exists()
        assert a_new_file.exists() and b_mid_file.exists()
        for gone in (a_old, b_old):
            row = await _row(journal, gone.call_id)
            # The journal row stays and says the recording is gone, and how long it was.
            assert row.recording_path is None and row.recording_seconds == 60
            assert row.disposition is Disposition.answered
        kept = await _row(journal, a_new.call_id)
        assert kept.recording_path is not None and kept.recording_seconds == 60
        p = Principal(account_id=a, role=Role.admin)
        listing = await journal.list_calls(p, CallFilter(has_recording=False))
        assert [c.call_id for c in listing.items] == [a_old.call_id]
        await asyncio.sleep(0.3)
        assert schedule.runs == 1  # the next one is a day away
    finally:
        await schedule.stop()
    assert not schedule.running

    # Runs repeat: with a short interval, 26 days later a_new (31 days old) goes at a later
    # run; b_mid (66 days, b keeps a year) stays.
    schedule = RetentionSchedule(container.db, journal, interval=0.2, clock=clock)
    schedule.start()
    try:
        await _until(lambda: schedule.runs >= 1)
        clock.now = now + timedelta(days=26)
        # (the file goes inside a run, the count moves when the run is over)
        await _until(lambda: not a_new_file.exists() and schedule.runs >= 2)
        assert b_mid_file.exists()
    finally:
        await schedule.stop()
    runs = schedule.runs
    await asyncio.sleep(0.5)
    assert schedule.runs == runs  # stopped means stopped


async def test_one_failing_account_does_not_stop_the_others(
    container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.seen: list[tuple[uuid.UUID, int]] = []

        async def purge_recordings(self, account_id: uuid.UUID, days: int, now: datetime) -> int:
            self.seen.append((account_id, days))
            if account_id == tenant_a.account_id:
                raise OSError("disk says no")
            return 3

    flaky = Flaky()
    done = await purge_all(container.db, flaky, T0)
    assert done == {tenant_b.account_id: 3}
    assert sorted(flaky.seen) == sorted([(tenant_a.account_id, 90), (tenant_b.account_id, 90)])
    with pytest.raises(ValueError):
        RetentionSchedule(container.db, flaky, interval=0)
