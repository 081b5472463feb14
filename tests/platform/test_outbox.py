"""Events between processes (core/event_codec.py, store/outbox.py): every event a write emits
travels as JSON and reads back equal; what another process commits reaches this bus once, in
order; this process's own rows, dry runs and rolled-back writes never do; late commits below
the highest number read are found; old rows are deleted."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import importlib
import logging
import pkgutil
import time
import types
import typing
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

import zvonar
from zvonar.accounts.access import Principal
from zvonar.accounts.events import AccountCreated, AccountSettingsChanged
from zvonar.accounts.models import Role
from zvonar.acd.queues import QueueDefined, QueueDeleted
from zvonar.app import create_container
from zvonar.callbacks.events import CallbackChanged, CallbackRequested
from zvonar.calls.events import CallRinging, Target, TargetKind
from zvonar.configfile import apply_config
from zvonar.contacts.events import ContactDeleted, ContactSaved, ContactsImported
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.core.event_codec import EventCodecError, decode_event, encode_event
from zvonar.core.events import Event
from zvonar.directory import events as directory_events
from zvonar.directory.events import EmployeeCreated
from zvonar.directory.schemas import EmployeeIn
from zvonar.routing.events import CalendarChanged, SchemeAssigned, SchemeChanged
from zvonar.settings import Settings
from zvonar.store import outbox
from zvonar.store.outbox import OutboxRelay, OutboxRow

# Every event a unit of work emits: what another process must be able to read.
WRITTEN: list[type[Event]] = [
    AccountCreated,
    AccountSettingsChanged,
    directory_events.EmployeeCreated,
    directory_events.EmployeeUpdated,
    directory_events.EmployeeDndChanged,
    directory_events.EmployeeDeleted,
    directory_events.GroupChanged,
    directory_events.NumberAdded,
    directory_events.NumberUpdated,
    directory_events.NumberRemoved,
    directory_events.TrunkChanged,
    SchemeChanged,
    SchemeAssigned,
    CalendarChanged,
    QueueDefined,
    QueueDeleted,
    CallbackRequested,
    CallbackChanged,
    ContactSaved,
    ContactDeleted,
    ContactsImported,
]


def sample(hint: Any, n: int) -> Any:
    """A value of type ``hint`` (the n-th field's: values differ between fields)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return sample(inner, n)
    if typing.get_origin(hint) is tuple:
        return (f"a{n}", f"b{n}")
    if typing.get_origin(hint) is not None:  # Mapping[str, str]
        return {f"k{n}": f"v{n}"}
    if hint is uuid.UUID:
        return uuid.uuid4()
    if hint is datetime:
        return datetime(2026, 12, 7, 21, n, tzinfo=UTC)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[-1]
    return {str: f"text {n} «ё»", int: 40 + n, float: 0.5 + n, bool: True}[hint]


def example(cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls)
    values = {f.name: sample(hints[f.name], n) for n, f in enumerate(dataclasses.fields(cls))}
    return cls(**values)


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda c: c.__name__)
def test_every_written_event_reads_back_equal(cls: type[Event]) -> None:
    event = example(cls)
    name, payload = encode_event(event)
    assert name == cls.__name__
    assert decode_event(name, payload) == event


# Events that stay in the process that made them, never emitted by a unit of work: the PBX's
# calls and the ACD's live state.
IN_PROCESS = {"zvonar.calls.events", "zvonar.calls.legs", "zvonar.acd.events"}


def test_every_other_event_can_travel() -> None:
    """A new event type either reads back or is an in-process one on purpose (else another
    process would miss it, with only a log line to say so)."""
    for module in pkgutil.walk_packages(zvonar.__path__, "zvonar."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    others: list[type[Event]] = []
    pending: list[type[Event]] = [Event]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if sub.__module__ not in IN_PROCESS:
                others.append(sub)
    assert set(WRITTEN) <= set(others)
    for cls in others:
        event = example(cls)
        assert decode_event(*encode_event(event)) == event, cls


def test_what_cannot_travel_says_so() -> None:
    with pytest.raises(EventCodecError, match="unsupported field type"):
        encode_event(_ringing())
    with pytest.raises(EventCodecError, match="unknown event type 'NoSuchEvent'"):
        decode_event("NoSuchEvent", {})
    name, payload = encode_event(CalendarChanged(account_id=uuid.uuid4()))
    del payload["account_id"]
    with pytest.raises(EventCodecError, match="does not read back"):
        decode_event(name, payload)
    with pytest.raises(EventCodecError, match="does not read back"):
        decode_event("QueueDefined", {**encode_event(example(QueueDefined))[1], "event_id": "x"})


def _ringing() -> CallRinging:
    # A nested dataclass field (Target): call events stay in their process.
    return CallRinging(
        account_id=uuid.uuid4(),
        call_id="c1",
        leg_id="l1",
        target=Target(TargetKind.employee, "Anna"),
        at=datetime.now(UTC),
    )


# --- the outbox and its relay ---------------------------------------------------------------


@pytest.fixture
async def other(settings: Settings) -> AsyncIterator[Container]:
    """Another process on the same database: its own bus and outbox origin."""
    c = create_container(settings, bus=RecordingBus())
    yield c
    await c.aclose()


def relay_for(container: Container, *, clock: Callable[[], float] = time.monotonic) -> OutboxRelay:
    """The relay ``container.outbox.relay`` gives, polling often, on ``clock``."""
    outbox = container.outbox
    return OutboxRelay(outbox.db, container.bus, outbox.origin, interval=0.05, clock=clock)


async def test_another_process_writes_reach_this_bus_once_in_order(
    container: Container, other: Container, bus: RecordingBus
) -> None:
    relay = relay_for(container)
    await relay.mark()
    account = await other.accounts.create_account("Beta", "beta")
    p = Principal(account_id=account.id, role=Role.admin)
    await other.directory.create_employee(p, EmployeeIn(name="Anna", extension="101"))
    assert bus.events == []  # not published here at commit
    assert await relay.poll() == 2
    assert bus.events == other.bus.events  # the same events: ids, times, fields
    assert [type(e) for e in bus.events] == [AccountCreated, EmployeeCreated]
    assert await relay.poll() == 0  # once

    # This process's own writes: its bus had them at commit; the relay skips them.
    await container.directory.create_employee(p, EmployeeIn(name="Boris", extension="102"))
    assert len(bus.events) == 3
    assert await relay.poll() == 0
    assert len(bus.events) == 3


async def test_the_relay_polls_on_its_own_through_failures_until_stopped(
    container: Container,
    other: Container,
    bus: RecordingBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = relay_for(container)
    poll, failures = relay.poll, [OSError("database gone")] * 3

    async def flaky() -> int:  # the database away for three polls
        if failures:
            raise failures.pop()
        return await poll()

    relay.poll = flaky  # type: ignore[method-assign]
    created = asyncio.Event()

    async def on_created(_event: Event) -> None:
        created.set()

    bus.subscribe(AccountCreated, on_created)
    await relay.start()
    try:
        await other.accounts.create_account("Beta", "beta")
        async with asyncio.timeout(5):
            await created.wait()
        assert [type(e) for e in bus.events] == [AccountCreated]
        assert caplog.text.count("a poll failed") == 3
    finally:
        await relay.stop()
    await other.accounts.create_account("Gamma", "gamma")
    await asyncio.sleep(0.2)
    assert len(bus.events) == 1  # stopped


async def test_dry_runs_and_rolled_back_writes_leave_nothing(
    container: Container, other: Container, bus: RecordingBus
) -> None:
    account = await container.accounts.create_account("Alpha", "alpha")
    relay = relay_for(container)
    await relay.mark()
    doc = {"account": {"recording_enabled": False}}
    await apply_config(other, account.id, doc, dry_run=True)
    bad = {**doc, "routing": {"schemes": {"Main": {"branches": {"working": [
        {"type": "ring", "targets": [{"employee": "101"}]}]}}}}}  # fmt: skip
    with pytest.raises(Exception, match="no employee '101'"):
        await apply_config(other, account.id, bad, dry_run=False)
    assert await relay.poll() == 0
    async with container.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxRow)) == 1  # the account
    await apply_config(other, account.id, doc, dry_run=False)
    assert await relay.poll() == 1
    (changed,) = bus.of_type(AccountSettingsChanged)
    assert changed.changed == ("recording_enabled",)


async def put(container: Container, seq: int, event: Event, *, origin: str = "elsewhere") -> None:
    name, payload = encode_event(event)
    async with container.db.unit_of_work() as uow:
        await uow.session.execute(
            insert(OutboxRow).values(seq=seq, origin=origin, event_type=name, payload=payload)
        )


async def test_a_late_commit_below_the_highest_number_is_found(
    container: Container, bus: RecordingBus
) -> None:
    now = [0.0]
    relay = relay_for(container, clock=lambda: now[0])
    await relay.mark()
    acc = uuid.uuid4()
    first, second, late, lost = (CalendarChanged(account_id=acc) for _ in range(4))
    # Numbers 11-12 were taken by transactions not committed yet; 13 committed first.
    await put(container, 10, first)
    await put(container, 13, second)
    assert await relay.poll() == 2
    assert relay.high == 13
    now[0] = 10.0
    await put(container, 11, late)  # committed 10 s later
    assert await relay.poll() == 1
    assert bus.events[-1] == late
    now[0] = 10.0 + outbox.GRACE  # 12 never came: rolled back, given up
    assert await relay.poll() == 0
    assert relay._holes == {}
    await put(container, 12, lost)  # (cannot happen: shown to prove it is no longer looked for)
    assert await relay.poll() == 0


async def test_a_row_that_cannot_be_read_is_logged_and_passed(
    container: Container, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    relay = relay_for(container)
    await relay.mark()
    async with container.db.unit_of_work() as uow:
        await uow.session.execute(
            insert(OutboxRow).values(origin="elsewhere", event_type="FromTheFuture", payload={})
        )
    await put(container, 1000, CalendarChanged(account_id=uuid.uuid4()))
    with caplog.at_level(logging.ERROR):
        assert await relay.poll() == 1
    assert "cannot be read" in caplog.text
    assert [type(e) for e in bus.events] == [CalendarChanged]


async def test_old_rows_are_deleted(container: Container) -> None:
    relay = relay_for(container)
    name, payload = encode_event(CalendarChanged(account_id=uuid.uuid4()))
    old = datetime.now(UTC) - outbox.KEEP - timedelta(minutes=1)
    async with container.db.unit_of_work() as uow:
        for created_at in (old, datetime.now(UTC)):
            await uow.session.execute(
                insert(OutboxRow).values(
                    origin="x", event_type=name, payload=payload, created_at=created_at
                )
            )
    assert await relay.prune() == 1
    async with container.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxRow)) == 1
