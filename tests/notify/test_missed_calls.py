"""Missed-call e-mail: the right content in the account's language and zone, sent in the
background without delaying the call, retried with back-off, never breaking the journal."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from tests.conftest import Tenant
from tests.notify.conftest import SmtpServer
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Account, Role
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    Target,
    TargetKind,
)
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.core.bus import InProcessBus, RecordingBus
from zvonar.directory.schemas import EmployeeIn, EmployeePatch
from zvonar.journal.events import CallRecovered
from zvonar.journal.models import CallRecord, CallStatus
from zvonar.notify.mailer import Mail, MemoryMailer, SmtpConfig, SmtpMailer, SmtpSecurity
from zvonar.notify.missed import (
    AccountProfile,
    CallFacts,
    MissedCallNotifier,
    RetryPolicy,
    managers_from_db,
    profiles_from_db,
    render,
)

T0 = datetime(2024, 5, 1, 9, 5, tzinfo=UTC)  # 12:05 in Moscow, 12:05 in Kyiv (summer time)
ACC = uuid.uuid4()


def start(
    account: uuid.UUID = ACC,
    call_id: str = "c-1",
    caller: str = "+79161234567",
    *,
    direction: Direction = Direction.inbound,
    contact_id: uuid.UUID | None = None,
) -> CallStarted:
    return CallStarted(
        account_id=account,
        call_id=call_id,
        direction=direction,
        caller=caller,
        dialed="+74950000001",
        number_label="Туры",
        started_at=T0,
        caller_contact_id=contact_id,
    )


def end(
    disposition: Disposition = Disposition.missed, account: uuid.UUID = ACC, call_id: str = "c-1"
) -> CallEnded:
    return CallEnded(
        account_id=account,
        call_id=call_id,
        disposition=disposition,
        ended_at=T0,
        hangup=HangupSide.caller,
    )


def fixed_profile(tz: str = "Europe/Moscow", lang: str = "ru"):  # type: ignore[no-untyped-def]
    async def profile(_account: uuid.UUID) -> AccountProfile:
        return AccountProfile(time_zone=tz, language=lang)

    return profile


class Sleeps:
    """A stand-in for asyncio.sleep: records the back-off and runs an optional hook, no waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hook: object = None

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if callable(self.hook):
            await self.hook()


def smtp_mailer(port: int) -> SmtpMailer:
    return SmtpMailer(
        SmtpConfig(
            host="127.0.0.1", port=port, security=SmtpSecurity.none, sender="pbx@z.test", timeout=5
        )
    )


@pytest.mark.parametrize(
    ("lang", "tz", "disposition", "caller", "expected"),
    [
        (
            "ru",
            "Europe/Moscow",
            Disposition.missed,
            "+79161234567",
            [
                "Кто звонил: +79161234567",
                "Линия: Туры, номер +74950000001",
                "Время: 01.05.2024 12:05 (Europe/Moscow)",
                "Никто не ответил.",
            ],
        ),
        (
            "uk",
            "Europe/Kyiv",
            Disposition.abandoned,
            "",
            [
                "Хто дзвонив: прихований номер",
                "Час: 01.05.2024 12:05 (Europe/Kyiv)",
                "Абонент поклав слухавку",
            ],
        ),
        (
            "en",
            "America/New_York",
            Disposition.missed,
            "+12025550100",
            [
                "Caller: +12025550100",
                "Line: Туры (+74950000001)",
                "Time: 2024-05-01 05:05 (America/New_York)",
                "Nobody answered.",
            ],
        ),
    ],
)
def test_render_speaks_the_accounts_language_and_time(
    lang: str, tz: str, disposition: Disposition, caller: str, expected: list[str]
) -> None:
    facts = CallFacts(caller, "+74950000001", "Туры", T0)
    subject, body = render(end(disposition), facts, AccountProfile(time_zone=tz, language=lang))
    for line in expected:
        assert line in body
    assert (caller or "прихований номер") in subject
    assert "⟦" not in subject + body


def test_unknown_language_and_zone_fall_back() -> None:
    facts = CallFacts("+1", "+2", None, T0)
    subject, body = render(end(), facts, AccountProfile(time_zone="Mars/Base", language="xx"))
    assert subject == "Missed call: +1"
    assert "Line: +2\n" in body and "(UTC)" in body


async def test_handler_returns_before_the_mail_is_sent() -> None:
    release = asyncio.Event()

    class SlowMailer(MemoryMailer):
        async def send(self, mail: Mail) -> None:
            await release.wait()
            await super().send(mail)

    mailer = SlowMailer()
    bus = InProcessBus()
    n = MissedCallNotifier(mailer, lambda _a: ["boss@shop.test"], fixed_profile())
    n.attach(bus)
    await bus.publish(start())
    await asyncio.wait_for(bus.publish(end()), timeout=1)  # does not wait on the mail server
    assert n.pending == 1 and mailer.sent == []
    release.set()
    await n.drain()
    assert len(mailer.sent) == 1 and n.delivered == 1


async def test_only_missed_and_abandoned_calls_with_recipients_send_mail() -> None:
    mailer = MemoryMailer()
    bus = InProcessBus()
    other = uuid.uuid4()

    async def recipients(account: uuid.UUID) -> list[str]:  # an async callback works too
        return ["boss@shop.test"] if account == ACC else []

    n = MissedCallNotifier(mailer, recipients, fixed_profile())
    n.attach(bus)
    for i, disposition in enumerate(Disposition):
        await bus.publish(start(call_id=f"c{i}"))
        await bus.publish(end(disposition, call_id=f"c{i}"))
    await bus.publish(start(account=other, call_id="o"))
    await bus.publish(end(account=other, call_id="o"))
    await bus.publish(end(call_id="never-started"))
    await n.drain()
    assert sorted(m.subject for m in mailer.sent) == ["Пропущенный звонок: +79161234567"] * 2
    assert n.delivered == 2 and n.pending == 0


async def test_mail_arrives_over_smtp_in_the_accounts_language(
    container: Container, bus: RecordingBus, tenant_a: Tenant, smtp: SmtpServer
) -> None:
    async with container.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Account)
            .where(Account.id == tenant_a.account_id)
            .values(time_zone="Europe/Moscow", language="ru")
        )
    n = MissedCallNotifier(
        smtp_mailer(smtp.port), lambda _a: ["boss@shop.test"], profiles_from_db(container.db)
    )
    n.attach(bus)
    await bus.publish(start(account=tenant_a.account_id))
    await bus.publish(end(account=tenant_a.account_id))
    await n.drain()
    [(envelope, msg)] = smtp.inbox.messages
    assert envelope.rcpt_tos == ["boss@shop.test"]
    assert msg["Subject"] == "Пропущенный звонок: +79161234567"
    body = msg.get_content()
    assert "Линия: Туры, номер +74950000001" in body
    assert "Время: 01.05.2024 12:05 (Europe/Moscow)" in body


async def journal_row(container: Container, call_id: str) -> CallRecord | None:
    await container.journal.flush()  # the journal writes behind
    async with container.db.read() as s:
        return await s.scalar(select(CallRecord).where(CallRecord.call_id == call_id))


async def test_smtp_down_never_loses_the_call_or_raises(
    container: Container,
    bus: RecordingBus,
    tenant_a: Tenant,
    smtp_down: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleeps = Sleeps()
    n = MissedCallNotifier(
        smtp_mailer(smtp_down.port),
        lambda _a: ["boss@shop.test"],
        profiles_from_db(container.db),
        retry=RetryPolicy(attempts=3, first_delay=2, factor=4),
        sleep=sleeps,
    )
    # The notifier's trouble must not keep the journal from its events.
    n.attach(bus)
    with caplog.at_level(logging.WARNING, logger="zvonar.notify.missed"):
        await bus.publish(start(account=tenant_a.account_id))
        await bus.publish(end(account=tenant_a.account_id))
        row = await journal_row(container, "c-1")
        assert row is not None and row.status is CallStatus.closed
        assert row.disposition is Disposition.missed
        await n.drain()
    assert sleeps.delays == [2, 8]
    assert (n.delivered, n.given_up) == (0, 1)
    assert any("giving up" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_delivery_is_retried_until_the_server_comes_up(
    container: Container, bus: RecordingBus, tenant_a: Tenant, smtp_down: SmtpServer
) -> None:
    sleeps = Sleeps()
    sleeps.hook = smtp_down.start  # the mail server comes back during the first back-off
    n = MissedCallNotifier(
        smtp_mailer(smtp_down.port),
        lambda _a: ["boss@shop.test"],
        profiles_from_db(container.db),
        retry=RetryPolicy(attempts=5, first_delay=1),
        sleep=sleeps,
    )
    n.attach(bus)
    await bus.publish(start(account=tenant_a.account_id))
    await bus.publish(end(Disposition.abandoned, account=tenant_a.account_id))
    await n.drain()
    assert sleeps.delays == [1]
    assert n.delivered == 1 and len(smtp_down.inbox.messages) == 1
    assert "Звонящий положил трубку" in smtp_down.inbox.messages[0][1].get_content()


async def test_close_cancels_queued_retries(caplog: pytest.LogCaptureFixture) -> None:
    mailer = MemoryMailer()
    mailer.failures = 100
    stuck = asyncio.Event()

    async def never(_s: float) -> None:
        await stuck.wait()

    n = MissedCallNotifier(mailer, lambda _a: ["a@b.test"], fixed_profile(), sleep=never)
    bus = InProcessBus()
    n.attach(bus)
    await bus.publish(start())
    await bus.publish(end())
    await asyncio.sleep(0)
    assert n.pending == 1
    with caplog.at_level(logging.WARNING):
        await n.aclose()
    assert n.pending == 0 and mailer.sent == []
    # Dropped, and said so: the queue does not outlive the process.
    assert "missed call c-1: e-mail not delivered, dropped at shutdown" in caplog.text


def test_default_backoff_grows_and_is_capped() -> None:
    assert RetryPolicy().delays() == [5, 15, 45, 135, 405]
    assert RetryPolicy(attempts=4, first_delay=100, factor=10, max_delay=600).delays() == [
        100,
        600,
        600,
    ]
    assert RetryPolicy(attempts=1).delays() == []


async def test_the_customers_manager_is_told_and_employees_own_calls_are_not_missed() -> None:
    mailer = MemoryMailer()
    bus = InProcessBus()
    bolts, nuts = uuid.uuid4(), uuid.uuid4()

    async def managers(account: uuid.UUID, contact: uuid.UUID) -> str | None:
        assert account == ACC
        return {bolts: "anna@shop.test", nuts: "boss@shop.test"}.get(contact)

    n = MissedCallNotifier(
        mailer, lambda _a: ["boss@shop.test"], fixed_profile(), managers=managers
    )
    n.attach(bus)
    for call_id, contact in (("bolts", bolts), ("nuts", nuts), ("stranger", None)):
        await bus.publish(start(call_id=call_id, contact_id=contact))
        await bus.publish(end(call_id=call_id))
    for direction in (Direction.outbound, Direction.internal):  # an employee dialled
        await bus.publish(start(call_id=direction.value, direction=direction))
        await bus.publish(end(call_id=direction.value))
    await n.drain()
    assert sorted(m.to for m in mailer.sent) == [
        ("boss@shop.test",),  # the stranger
        ("boss@shop.test",),  # Nuts: the boss manages it, one copy
        ("boss@shop.test", "anna@shop.test"),  # Bolts: Anna looks after it
    ]


async def test_managers_come_from_the_directory(container: Container, tenant_a: Tenant) -> None:
    p = Principal(account_id=tenant_a.account_id, role=Role.admin)
    anna = await container.directory.create_employee(
        p, EmployeeIn(name="Anna", extension="101", email="anna@shop.test")
    )
    bolts = await container.contacts.create_contact(
        p, ContactIn(name="Bolts", manager_id=anna.view.employee.id)
    )
    nuts = await container.contacts.create_contact(p, ContactIn(name="Nuts"))
    manager = managers_from_db(container.db)
    assert await manager(tenant_a.account_id, bolts.contact.id) == "anna@shop.test"
    assert await manager(tenant_a.account_id, nuts.contact.id) is None
    assert await manager(uuid.uuid4(), bolts.contact.id) is None  # another account's
    await container.directory.update_employee(p, anna.view.employee.id, EmployeePatch(active=False))
    assert await manager(tenant_a.account_id, bolts.contact.id) is None  # gone


async def test_a_customer_left_waiting_when_the_server_died_is_still_mailed(
    container: Container, bus: RecordingBus, tenant_a: Tenant
) -> None:
    """The process that rang the call is gone (no CallEnded ever comes): recovery closes the
    row as abandoned and announces it, and the notifier of the process that recovered it sends
    the mail from the journal's facts (it never saw the call start). Answered and outbound
    calls recovered the same way send nothing."""
    mailer = MemoryMailer()
    n = MissedCallNotifier(mailer, lambda _a: ["boss@shop.test"], profiles_from_db(container.db))
    acc = tenant_a.account_id
    ringing = start(account=acc, call_id="rang")
    talking = start(account=acc, call_id="talked")
    dialled = start(account=acc, call_id="dialled", direction=Direction.outbound)
    target = Target(TargetKind.employee, "Anna", None)
    for s in (ringing, talking, dialled):
        await bus.publish(s)
        await bus.publish(
            CallRinging(account_id=acc, call_id=s.call_id, leg_id="a", target=target, at=T0)
        )
    await bus.publish(CallAnswered(account_id=acc, call_id="talked", leg_id="a", at=T0))
    await container.journal.flush()
    # Another process recovers (this process's notifier never saw these calls start).
    n.attach(bus)
    later = T0.replace(year=2025)
    assert await container.journal.recover_open_calls(later) == 3
    recovered = [e for e in bus.events if isinstance(e, CallRecovered)]
    assert sorted((e.call_id, e.disposition.value) for e in recovered) == [
        ("dialled", "abandoned"),
        ("rang", "abandoned"),
        ("talked", "answered"),
    ]
    await n.drain()
    [mail] = mailer.sent
    assert mail.subject == "Пропущенный звонок: +79161234567" and mail.to == ("boss@shop.test",)
    assert "+74950000001" in mail.body
