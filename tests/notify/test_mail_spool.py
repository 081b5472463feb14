"""The mail spool: a mail outlives the process that prepared it. One that is still failing at
shutdown, or whose process died, is sent by the next process (or another node), once, going on
with its back-off; one given up on is kept a week for follow-up."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant
from tests.notify.conftest import SmtpServer
from tests.notify.test_missed_calls import end, fixed_profile, start
from zvonar.app import create_container
from zvonar.container import Container
from zvonar.notify.mailer import Attachment, Mail, MemoryMailer
from zvonar.notify.models import QueuedMail
from zvonar.notify.outbox import MailOutbox, RetryPolicy
from zvonar.notify.spool import (
    CLAIM_MARGIN,
    KEEP_FAILED,
    MailSpool,
    claim_margin_for,
    dump_mail,
    load_mail,
)
from zvonar.settings import Settings
from zvonar.store.base import utcnow

log = logging.getLogger("test.spool")

WAV = Attachment("voicemail.wav", "audio/wav", bytes(range(256)) * 40)
MAIL = Mail(to=("boss@shop.test",), subject="Голосовое сообщение", body="тело", attachments=(WAV,))


async def never(_seconds: float) -> None:
    await asyncio.Event().wait()  # a back-off that outlasts the test: the process "stops" in it


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def rows(container: Container) -> list[QueuedMail]:
    async with container.db.read() as s:
        return list(await s.scalars(select(QueuedMail).order_by(QueuedMail.created_at)))


async def ready() -> Mail:
    return MAIL


def test_a_spooled_mail_reads_back_as_it_was() -> None:
    assert load_mail(dump_mail(MAIL)) == MAIL
    with pytest.raises(ValueError):
        load_mail("not json")


async def test_a_mail_failing_at_shutdown_is_sent_by_the_next_process(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    down = MemoryMailer()
    down.failures = 100
    first = MailOutbox(down, log, spool=MailSpool(container.db), sleep=never)
    first.submit("voicemail c-1", ready)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if down.attempts:
            break
    await asyncio.sleep(0.05)  # its failed attempt is recorded
    with caplog.at_level(logging.WARNING):
        await first.aclose()
    assert "voicemail c-1: e-mail not delivered yet, kept for the next start" in caplog.text
    [row] = await rows(container)
    assert (row.attempts, row.owner, row.locked_until, row.failed_at) == (1, None, None, None)
    assert row.last_error == "memory mailer told to fail"

    up = MemoryMailer()
    second = MailOutbox(up, log, spool=MailSpool(container.db))
    assert await second.resume() == 1
    await second.drain()
    assert up.sent == [MAIL]  # the attachment's bytes too
    assert await rows(container) == []
    assert await second.resume() == 0  # sent once


async def test_a_dead_processs_mail_waits_for_its_claim_to_run_out(container: Container) -> None:
    clock = Clock()
    down = MemoryMailer()
    down.failures = 100
    dying = MailOutbox(down, log, spool=MailSpool(container.db), sleep=never, clock=clock)
    dying.submit("missed call c-2", ready)
    await asyncio.sleep(0.1)
    [row] = await rows(container)
    # Its next attempt is 5 s away: the claim holds until then and a margin for the attempt.
    assert row.locked_until == clock.now + timedelta(seconds=5) + CLAIM_MARGIN
    for task in list(dying._tasks):  # killed: nothing released
        task.cancel()

    later = Clock()
    other = MailOutbox(
        MemoryMailer(), log, spool=MailSpool(container.db), clock=later, retry=RetryPolicy()
    )
    later.now = clock.now + CLAIM_MARGIN  # still claimed
    assert await other.resume() == 0
    later.now = clock.now + timedelta(seconds=6) + CLAIM_MARGIN
    assert await other.resume() == 1
    await other.drain()
    assert await rows(container) == [] and other.resumed == 1


async def test_two_processes_never_both_take_a_mail(container: Container) -> None:
    spool = MailSpool(container.db, owner="gone")
    await spool.add("missed call c-3", MAIL, utcnow() - 2 * CLAIM_MARGIN)
    a, b = MailSpool(container.db, owner="a"), MailSpool(container.db, owner="b")
    found = await asyncio.gather(a.claim_due(utcnow()), b.claim_due(utcnow()))
    assert sorted(len(f) for f in found) == [0, 1]


async def test_a_resumed_mail_goes_on_with_its_back_off_and_is_kept_when_given_up(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    spool = MailSpool(container.db, owner="gone")
    mail_id = await spool.add("voicemail c-4", MAIL, clock.now - 2 * CLAIM_MARGIN)
    await spool.failed_attempt(mail_id, 2, "refused", clock.now - 2 * CLAIM_MARGIN)
    down = MemoryMailer()
    down.failures = 100
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    outbox = MailOutbox(
        down, log, spool=MailSpool(container.db), sleep=sleep, clock=clock, retry=RetryPolicy()
    )
    with caplog.at_level(logging.ERROR):
        assert await outbox.resume() == 1
        await outbox.drain()
    # Two attempts were made before: the third waits 45 s, ... up to the sixth, the last.
    assert waited == [45, 135, 405] and down.attempts == 4
    assert "voicemail c-4: e-mail not delivered, giving up" in caplog.text
    assert await spool.failed() == [("voicemail c-4", 6, "memory mailer told to fail")]
    assert await outbox.resume() == 0  # never tried again
    assert await spool.purge(clock.now + KEEP_FAILED - timedelta(minutes=1)) == 0
    assert await spool.purge(clock.now + KEEP_FAILED + timedelta(minutes=1)) == 1


async def test_an_unreadable_spooled_mail_is_given_up_not_retried_forever(
    container: Container,
) -> None:
    spool = MailSpool(container.db, owner="gone")
    mail_id = await spool.add("missed call c-5", MAIL, utcnow() - 2 * CLAIM_MARGIN)
    async with container.db.unit_of_work() as uow:
        (await uow.session.get(QueuedMail, mail_id)).message = '{"to": []}'  # type: ignore[union-attr]
    outbox = MailOutbox(MemoryMailer(), log, spool=MailSpool(container.db))
    assert await outbox.resume() == 1
    [(what, _attempts, error)] = await spool.failed()
    assert what == "missed call c-5" and error is not None and error.startswith("unreadable")


class BrokenSpool(MailSpool):
    async def add(self, what: str, mail: Mail, now: datetime) -> object:  # type: ignore[override]
        raise ConnectionError("database down")


async def test_with_the_database_down_the_mail_is_still_sent_from_memory(
    container: Container,
) -> None:
    up = MemoryMailer()
    outbox = MailOutbox(up, log, spool=BrokenSpool(container.db))
    outbox.submit("missed call c-6", ready)
    await outbox.drain()
    assert up.sent == [MAIL]


async def test_the_apps_missed_call_mail_survives_a_restart_with_the_server_down(
    settings: Settings, tenant_a: Tenant, container: Container, smtp_down: SmtpServer
) -> None:
    """Through the composition root: the server is down while the call is missed and the
    process stops; the next process (a new container on the same database) mails it."""
    first = create_container(
        settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": smtp_down.port, "smtp_security": "none"}
        )
    )
    assert first.missed_calls is not None and first.mail is not None
    first.missed_calls.recipients = lambda _a: ["boss@shop.test"]
    first.missed_calls.profiles = fixed_profile()
    await first.bus.publish(start(account=tenant_a.account_id))
    await first.bus.publish(end(account=tenant_a.account_id))
    for _ in range(100):  # its first attempt fails (connection refused) and is recorded
        await asyncio.sleep(0.02)
        found = await rows(container)
        if found and found[0].attempts == 1:
            break
    await first.aclose()
    async with container.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(QueuedMail)) == 1

    await smtp_down.start()
    second = create_container(
        settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": smtp_down.port, "smtp_security": "none"}
        )
    )
    assert second.mail is not None
    second.mail.start()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if smtp_down.inbox.messages:
            break
    await second.mail.drain()
    await second.aclose()
    [(envelope, msg)] = smtp_down.inbox.messages
    assert envelope.rcpt_tos == ["boss@shop.test"]
    assert msg["Subject"] == "Пропущенный звонок: +79161234567"
    assert await rows(container) == []


class SlowMailer(MemoryMailer):
    """A server that takes the mail only when told: an attempt longer than the claim."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def send(self, mail: Mail) -> None:
        await self.go.wait()
        await super().send(mail)


async def test_a_slow_attempt_is_never_taken_again_by_its_own_process(
    container: Container,
) -> None:
    """The attempt outlasts its claim: the process's own resume pass leaves that mail to the
    attempt under way (it sent the mail twice); another process would still wait, as the claim
    margin grows with smtp_timeout."""
    clock = Clock()
    slow = SlowMailer()
    outbox = MailOutbox(slow, log, spool=MailSpool(container.db), clock=clock)
    outbox.submit("missed call c-7", ready)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if await rows(container):
            break
    clock.now += 2 * CLAIM_MARGIN  # the claim ran out while the server still talks
    assert await outbox.resume() == 0
    slow.go.set()
    await outbox.drain()
    assert slow.sent == [MAIL] and await rows(container) == []


def test_the_claim_outlasts_a_long_smtp_timeout() -> None:
    assert claim_margin_for(5) == CLAIM_MARGIN  # the floor
    assert claim_margin_for(30) == timedelta(seconds=330)  # the default: ten steps of 30 s
    assert claim_margin_for(200) == timedelta(seconds=2030)
