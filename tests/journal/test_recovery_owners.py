"""Crash recovery with owners: a row is closed only once the process writing it is gone (its
lease ran out), its end is when that process was last alive, and what it left on disk (the
recording, a voicemail message) stays with the call."""

from __future__ import annotations

import asyncio
import uuid
import wave
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from tests.journal.test_journal import row
from zvonar.calls.events import Disposition, HangupSide
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal import owners
from zvonar.journal.models import CallOwner, CallStatus
from zvonar.journal.service import JournalService


def write_wav(path: Path, seconds: float, channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * channels * round(8000 * seconds))


async def leases(c: Container) -> dict[uuid.UUID, datetime]:
    async with c.db.read() as s:
        return {o.id: o.renewed_at for o in await s.scalars(select(CallOwner))}


async def test_a_second_process_leaves_a_live_processs_calls_alone(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    """The audit's case: starting a second server on the same database closed the running
    one's two answered calls (talk 0, recovered) before it failed on its taken port."""
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started(), call.ringing("a", 1), call.answered("a", 4))
    alive_at = call.at(60)
    await owners.renew(container.db, journal.owner_id, alive_at)  # the running PBX's lease

    second = JournalService(container.db, container.settings.data_dir)  # its start-up recovery
    assert await second.recover_open_calls(call.at(65)) == 0
    still = await row(container, call.call_id)
    assert still is not None and still.status is CallStatus.open and not still.recovered

    # The first process dies: its lease is not renewed. Within STALE nothing moves; after it,
    # the next sweep closes the call as having lasted until the owner was last alive.
    assert await second.recover_open_calls(alive_at + owners.STALE, orphans=False) == 0
    later = alive_at + owners.STALE + timedelta(seconds=1)
    assert await second.recover_open_calls(later, orphans=False) == 1
    done = await row(container, call.call_id)
    assert done is not None and done.recovered and done.status is CallStatus.closed
    assert done.disposition is Disposition.answered and done.hangup is HangupSide.system
    assert done.ended_at == alive_at  # not the last event (the answer at 4 s), not "now"
    assert (done.wait_seconds, done.talk_seconds) == (4.0, 56.0)


async def test_what_a_dead_process_left_on_disk_stays_with_the_call(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    """The audit's case: answered calls lost their recordings and callers who were leaving a
    message became "abandoned", though both WAVs were on disk with true headers."""
    talked, messaged, silent = (CallScript(tenant_a.account_id) for _ in range(3))
    await publish(
        bus,
        talked.started(),
        talked.ringing("a", 1),
        talked.answered("a", 3),
        messaged.started(),
        messaged.ringing("a", 1),
        silent.started(),
        silent.ringing("a", 1),
    )
    base = journal.recording_path_for
    write_wav(base(tenant_a.account_id, talked.call_id, talked.start), 12.5, 2)
    vm = base(tenant_a.account_id, messaged.call_id, messaged.start)
    write_wav(vm.with_name(f"{messaged.call_id}.vm.wav"), 7.25, 1)
    # A recorder that had opened its file but written nothing: no recording to link.
    write_wav(base(tenant_a.account_id, silent.call_id, silent.start), 0, 2)
    await owners.renew(container.db, journal.owner_id, talked.at(20))
    await journal.flush()  # what the dead process's writer had written

    sweeper = JournalService(container.db, container.settings.data_dir)
    assert await sweeper.recover_open_calls(talked.at(60), orphans=False) == 3
    t = await row(container, talked.call_id)
    assert t is not None and t.disposition is Disposition.answered
    assert t.recording_path is not None and t.recording_path.endswith(f"{talked.call_id}.wav")
    assert t.recording_seconds == 12.5 and t.talk_seconds == 17.0
    m = await row(container, messaged.call_id)
    assert m is not None and m.disposition is Disposition.voicemail
    assert m.voicemail_path is not None and m.voicemail_seconds == 7.25
    s = await row(container, silent.call_id)
    assert s is not None and s.disposition is Disposition.abandoned
    assert s.recording_path is None and s.voicemail_path is None


async def test_rows_without_a_lease_are_recovered_as_before(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    """Rows written before leases existed (no owner) or by a process that never took one:
    closed at start-up at their last activity; a periodic sweep (no orphans) leaves them."""
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started(), call.ringing("a", 1), call.answered("a", 4))
    await journal.flush()
    fresh = JournalService(container.db, container.settings.data_dir)
    assert await fresh.recover_open_calls(call.at(100), orphans=False) == 0
    assert await fresh.recover_open_calls(call.at(100)) == 1
    done = await row(container, call.call_id)
    assert done is not None and done.ended_at == call.at(4) and done.talk_seconds == 0.0


async def test_the_lease_is_renewed_sweeps_and_is_released_after_the_rows_land(
    container: Container, journal: JournalService
) -> None:
    swept: list[datetime] = []
    flushed: list[bool] = []

    async def sweep(now: datetime) -> int:
        swept.append(now)
        return 0

    async def flush() -> None:
        flushed.append(True)

    owner = uuid.uuid4()
    lease = owners.OwnerLease(
        container.db, owner, sweep, heartbeat=0.02, sweep_every=0.05, before_release=flush
    )
    await lease.start()
    first = (await leases(container))[owner]
    await asyncio.sleep(0.3)
    assert (await leases(container))[owner] > first  # renewed
    assert len(swept) >= 2
    await lease.stop()
    assert flushed == [True]
    assert owner not in await leases(container)


async def test_long_dead_leases_are_forgotten_once_they_own_no_open_row(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started())
    await row(container, call.call_id)
    now = call.at(0) + owners.FORGET + timedelta(hours=1)
    idle = uuid.uuid4()
    await owners.renew(container.db, idle, call.at(0))
    await owners.renew(container.db, journal.owner_id, call.at(0))  # still owns an open row
    assert await owners.forget_dead(container.db, now) == 1
    assert set(await leases(container)) == {journal.owner_id}
