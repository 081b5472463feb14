"""The journal writes behind the call path: queue only on publish, batches in one transaction,
retries on a database outage, poison events isolated, a bounded queue, flush and close."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.calls.events import CallEvent, CallRecorded, Disposition, LegEndReason
from zvonar.container import Container
from zvonar.core.bus import InProcessBus, RecordingBus
from zvonar.journal.consumer import JournalConsumer
from zvonar.journal.models import CallLeg, CallRecord, CallStatus
from zvonar.journal.service import JournalService
from zvonar.journal.writer import JournalWriter


async def rows(c: Container) -> dict[str, CallRecord]:
    async with c.db.read() as s:
        return {r.call_id: r for r in await s.scalars(select(CallRecord))}


def full_call(script: CallScript) -> list[CallEvent]:
    return [
        script.started(),
        script.ringing("a", 1),
        script.ringing("b", 1),
        script.answered("a", 5),
        script.leg_ended("b", 5, LegEndReason.cancelled),
        script.ended(65, Disposition.answered),
    ]


def service(c: Container, **writer: float) -> tuple[JournalService, InProcessBus]:
    """A journal on its own bus (the container's journal stays on the container's bus)."""
    consumer = JournalConsumer(c.db, c.settings.data_dir)
    journal = JournalService(c.db, c.settings.data_dir, writer=JournalWriter(consumer, **writer))  # type: ignore[arg-type]
    bus = InProcessBus()
    journal.attach(bus)
    return journal, bus


async def test_publishing_only_queues_and_the_writer_catches_up_by_itself(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started())
    # The call path returned without touching the database: the event is queued.
    assert journal.writer.pending == 1 and await rows(container) == {}
    for _ in range(200):  # the writer writes within its interval, unasked (5 s at most here)
        if call.call_id in await rows(container):
            break
        await asyncio.sleep(journal.writer.interval)
    else:
        raise AssertionError("the writer never wrote the queued call")
    assert journal.writer.pending == 0


async def test_a_burst_of_calls_is_written_in_few_transactions(
    container: Container, tenant_a: Tenant
) -> None:
    journal, bus = service(container, max_batch=7)
    scripts = [CallScript(tenant_a.account_id) for _ in range(10)]
    for step in range(6):  # ten calls at once, their events interleaved
        await publish(bus, *(full_call(s)[step] for s in scripts))
    await journal.flush()
    assert journal.writer.batches == 9  # 60 events, at most 7 per transaction
    assert journal.writer.written == 60
    found = await rows(container)
    assert all(found[s.call_id].status is CallStatus.closed for s in scripts)
    assert {found[s.call_id].disposition for s in scripts} == {Disposition.answered}
    admin = Principal(account_id=tenant_a.account_id, role=Role.admin)
    view = await journal.get_call(admin, found[scripts[3].call_id].id)
    reasons = {leg.leg_id: leg.end_reason for leg in view.legs}
    assert reasons == {"a": LegEndReason.completed, "b": LegEndReason.cancelled}
    await journal.aclose()


async def test_a_poison_event_does_not_block_its_batch(
    container: Container, tenant_a: Tenant
) -> None:
    journal, bus = service(container)
    good, bad, after = (CallScript(tenant_a.account_id) for _ in range(3))
    nowhere = CallScript(uuid.uuid4())  # its account does not exist: the insert fails
    await publish(bus, good.started(), nowhere.started(), bad.started(), *full_call(after)[1:])
    await publish(bus, *full_call(after)[:1], after.answered("a", 5))
    await journal.flush()
    assert journal.writer.poisoned == 1
    found = await rows(container)
    assert set(found) == {good.call_id, bad.call_id, after.call_id}
    # ``after``'s events before its start were dropped as unknown; its answer after still counts.
    assert found[after.call_id].answered_at == after.at(5)
    await journal.aclose()


async def test_a_database_outage_is_retried_in_order_losing_nothing(
    container: Container, tenant_a: Tenant
) -> None:
    journal, bus = service(container, retry_first=0.001)
    real = journal.consumer.apply
    failures = 3

    async def flaky(events: Sequence[CallEvent], conn: AsyncConnection | None = None) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        await real(events, conn)

    journal.consumer.apply = flaky  # type: ignore[method-assign]
    call = CallScript(tenant_a.account_id)
    await publish(bus, *full_call(call))
    await journal.flush()
    assert failures == 0 and journal.writer.poisoned == 0
    done = (await rows(container))[call.call_id]
    assert done.status is CallStatus.closed and (done.wait_seconds, done.talk_seconds) == (5, 60)
    await journal.aclose()
    assert container.db.engine.pool.checkedout() == 0  # each failed try's connection closed


async def test_the_writer_keeps_one_connection_between_batches_and_closes_it(
    container: Container, tenant_a: Tenant
) -> None:
    journal, bus = service(container)
    checkouts = 0

    def checked_out(*_args: object) -> None:
        nonlocal checkouts
        checkouts += 1

    event.listen(container.db.engine.sync_engine, "checkout", checked_out)
    try:
        calls = [CallScript(tenant_a.account_id) for _ in range(3)]
        for call in calls:  # three batches: each flush waits for its own
            await publish(bus, *full_call(call))
            await journal.flush()
        assert journal.writer.batches >= 3
        assert checkouts == 1
        assert container.db.engine.pool.checkedout() == 1
        await journal.aclose()
        assert container.db.engine.pool.checkedout() == 0
        assert {c.call_id for c in calls} <= set(await rows(container))
    finally:
        event.remove(container.db.engine.sync_engine, "checkout", checked_out)


async def test_a_full_queue_pushes_back_then_drops(
    container: Container, tenant_a: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    journal, bus = service(container, max_queue=1, put_timeout=0.05)
    gate = asyncio.Event()
    real = journal.consumer.apply

    async def stuck(events: Sequence[CallEvent], conn: AsyncConnection | None = None) -> None:
        await gate.wait()  # the database is very slow
        await real(events, conn)

    journal.consumer.apply = stuck  # type: ignore[method-assign]
    one, two, three = (CallScript(tenant_a.account_id) for _ in range(3))
    await publish(bus, one.started())
    await asyncio.sleep(journal.writer.interval * 2)  # the writer took it and is stuck
    await publish(bus, two.started())  # fills the queue
    await publish(bus, three.started())  # waits put_timeout for room, then is dropped
    assert journal.writer.dropped == 1
    assert any("queue full" in r.getMessage() for r in caplog.records)
    gate.set()
    await journal.flush()
    assert set(await rows(container)) == {one.call_id, two.call_id}
    await journal.aclose()


async def test_flush_and_close_are_safe_without_a_writer(container: Container) -> None:
    idle = JournalService(container.db, container.settings.data_dir)
    await idle.flush()
    await idle.aclose()
    assert idle.writer.pending == 0


async def test_close_writes_what_is_queued_and_stops(
    container: Container, tenant_a: Tenant
) -> None:
    journal, bus = service(container, interval=60)  # would linger for a minute
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started())
    task = journal.writer._task
    await journal.aclose()
    assert call.call_id in await rows(container)
    assert task is not None and task.done()


async def test_a_swept_call_is_not_reopened_by_its_late_end(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started(), call.ringing("a", 1), call.answered("a", 4))
    assert await journal.recover_open_calls(call.at(1000)) == 1
    await publish(bus, call.ended(900, Disposition.answered))  # the consumer forgot its state
    await journal.flush()
    done = (await rows(container))[call.call_id]
    assert done.recovered and done.ended_at == call.at(4)


async def test_a_restarted_writer_continues_calls_from_the_database(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    events = full_call(call)
    await publish(bus, *events[:4])
    await journal.flush()
    fresh, fresh_bus = service(container)  # remembers nothing, as after a restart
    await publish(fresh_bus, events[0], *events[3:])  # a duplicated start, then the rest
    await fresh.flush()
    done = (await rows(container))[call.call_id]
    assert done.status is CallStatus.closed and done.disposition is Disposition.answered
    async with container.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(CallRecord)) == 1
        legs = {leg.leg_id: leg.end_reason for leg in await s.scalars(select(CallLeg))}
    assert legs == {"a": LegEndReason.completed, "b": LegEndReason.cancelled}
    await fresh.aclose()


async def test_few_ended_calls_are_remembered_and_late_facts_still_land(
    container: Container, tenant_a: Tenant
) -> None:
    data = container.settings.data_dir
    consumer = JournalConsumer(container.db, data, remember_ended=2)
    journal = JournalService(container.db, data, writer=JournalWriter(consumer))
    bus = InProcessBus()
    journal.attach(bus)
    done = [CallScript(tenant_a.account_id) for _ in range(4)]
    live = CallScript(tenant_a.account_id)
    for script in done:
        await publish(bus, *full_call(script))
    await publish(bus, live.started(), live.ringing("a", 1))
    await journal.flush()
    assert set(consumer._ended) == {(s.account_id, s.call_id) for s in done[2:]}
    assert set(consumer._known) == {(live.account_id, live.call_id)}
    # The oldest ended call is read back from the table for its late recording.
    first = done[0]
    rec = journal.recording_path_for(tenant_a.account_id, first.call_id, first.start)
    await publish(
        bus,
        CallRecorded(account_id=first.account_id, call_id=first.call_id, path=str(rec), duration=1),
        *full_call(live)[2:],
    )  # fmt: skip
    await journal.flush()
    found = await rows(container)
    assert found[first.call_id].recording_path is not None
    assert found[first.call_id].status is CallStatus.closed
    assert found[live.call_id].status is CallStatus.closed and not consumer._known
    await journal.aclose()
