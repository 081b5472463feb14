"""Voicemail e-mail: the message's WAV attached, the text in the account's language and zone,
sent to the voicemail step's addresses over real SMTP, retried, never raising into the bus."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tests.notify.conftest import SmtpServer
from zvonar.calls.events import (
    CallEnded,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    VoicemailLeft,
)
from zvonar.core.bus import RecordingBus
from zvonar.media.wav import encode_wav
from zvonar.notify.mailer import MemoryMailer, SmtpConfig, SmtpMailer, SmtpSecurity
from zvonar.notify.missed import AccountProfile, RetryPolicy
from zvonar.notify.voicemail import VoicemailNotifier

T0 = datetime(2024, 5, 1, 9, 5, tzinfo=UTC)  # 12:05 in Moscow and in Kyiv
ACC = uuid.uuid4()
WAV = encode_wav(b"\x01\x00" * 8000)  # one second of near-silence


def profile(lang: str, tz: str = "Europe/Moscow"):  # type: ignore[no-untyped-def]
    async def get(_account: uuid.UUID) -> AccountProfile:
        return AccountProfile(time_zone=tz, language=lang)

    return get


async def leave(bus: RecordingBus, path: Path, notify: tuple[str, ...]) -> None:
    await bus.publish(
        CallStarted(
            account_id=ACC,
            call_id="c-1",
            direction=Direction.inbound,
            caller="+79161234567",
            dialed="+74950000001",
            number_label="Туры",
            started_at=T0,
        )
    )
    await bus.publish(
        VoicemailLeft(account_id=ACC, call_id="c-1", path=str(path), duration=65.4, notify=notify)
    )
    await bus.publish(
        CallEnded(
            account_id=ACC,
            call_id="c-1",
            disposition=Disposition.voicemail,
            ended_at=T0,
            hangup=HangupSide.caller,
        )
    )


def wav_file(tmp_path: Path) -> Path:
    path = tmp_path / "c-1.vm.wav"
    path.write_bytes(WAV)
    return path


async def test_memory_mailer_gets_the_wav_in_russian(tmp_path: Path) -> None:
    mailer, bus = MemoryMailer(), RecordingBus()
    notifier = VoicemailNotifier(mailer, profile("ru"))
    notifier.attach(bus)
    await leave(bus, wav_file(tmp_path), ("boss@example.com", "boss@example.com", "ops@x.ru"))
    await notifier.drain()
    (mail,) = mailer.sent
    assert mail.to == ("boss@example.com", "ops@x.ru")
    assert mail.subject == "Голосовое сообщение от +79161234567"
    assert "Туры, номер +74950000001" in mail.body
    assert "01.05.2024 12:05 (Europe/Moscow)" in mail.body
    assert "Длительность: 1:05" in mail.body
    assert "Запись приложена" in mail.body
    (attachment,) = mail.attachments
    assert attachment.data == WAV and attachment.content_type == "audio/wav"
    assert attachment.filename == "voicemail-20240501-1205-+79161234567.wav"


async def test_no_addresses_no_mail_and_missing_file_still_mails(tmp_path: Path) -> None:
    mailer, bus = MemoryMailer(), RecordingBus()
    notifier = VoicemailNotifier(mailer, profile("en", "UTC"))
    notifier.attach(bus)
    await leave(bus, wav_file(tmp_path), ())
    await notifier.drain()
    assert mailer.sent == []
    await leave(bus, tmp_path / "gone.wav", ("a@example.com",))
    await notifier.drain()
    (mail,) = mailer.sent
    assert mail.attachments == ()
    assert "could not be attached" in mail.body and "09:05 (UTC)" in mail.body


async def test_a_step_naming_nobody_mails_the_accounts_missed_call_recipients(
    tmp_path: Path,
) -> None:
    """A scheme's default final voicemail names nobody: its messages go to whoever the
    account tells of missed calls; a step's own list still wins."""
    mailer, bus = MemoryMailer(), RecordingBus()

    async def recipients(account: uuid.UUID) -> list[str]:
        return ["office@example.com", ""] if account == ACC else []

    notifier = VoicemailNotifier(mailer, profile("ru"), recipients=recipients)
    notifier.attach(bus)
    await leave(bus, wav_file(tmp_path), ())
    await leave(bus, wav_file(tmp_path), ("boss@example.com",))
    await notifier.drain()
    assert sorted(m.to for m in mailer.sent) == [("boss@example.com",), ("office@example.com",)]


async def test_retries_then_delivers(tmp_path: Path) -> None:
    mailer, bus = MemoryMailer(), RecordingBus()
    mailer.failures = 2
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    notifier = VoicemailNotifier(
        mailer, profile("uk", "Europe/Kyiv"), retry=RetryPolicy(attempts=3), sleep=sleep
    )
    notifier.attach(bus)
    await leave(bus, wav_file(tmp_path), ("a@example.com",))
    await notifier.drain()
    assert mailer.attempts == 3 and slept == [5.0, 15.0]
    assert notifier.delivered == 1
    assert mailer.sent[0].subject == "Голосове повідомлення від +79161234567"


async def test_real_smtp_carries_the_attachment(smtp: SmtpServer, tmp_path: Path) -> None:
    config = SmtpConfig("127.0.0.1", "pbx@zvonar.test", port=smtp.port, security=SmtpSecurity.none)
    bus = RecordingBus()
    notifier = VoicemailNotifier(SmtpMailer(config), profile("en", "Europe/Moscow"))
    notifier.attach(bus)
    await leave(bus, wav_file(tmp_path), ("boss@example.com",))
    await asyncio.wait_for(notifier.drain(), 10)
    (envelope, msg) = smtp.inbox.messages[0]
    assert envelope.rcpt_tos == ["boss@example.com"]
    assert msg["Subject"] == "Voicemail from +79161234567"
    body = msg.get_body(("plain",))
    assert body is not None and "Length: 1:05" in body.get_content()
    (part,) = list(msg.iter_attachments())
    assert part.get_content_type() == "audio/wav"
    assert part.get_filename() == "voicemail-20240501-1205-+79161234567.wav"
    assert part.get_payload(decode=True) == WAV
