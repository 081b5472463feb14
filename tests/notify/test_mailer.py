"""The SMTP mailer against a real aiosmtpd server, and its in-memory twin."""

from __future__ import annotations

import pytest

from tests.notify.conftest import SmtpServer
from zvonar.notify.mailer import Mail, MailError, MemoryMailer, SmtpConfig, SmtpMailer, SmtpSecurity


def config(port: int) -> SmtpConfig:
    return SmtpConfig(
        host="127.0.0.1",
        port=port,
        security=SmtpSecurity.none,
        sender="zvonar@pbx.test",
        timeout=5,
    )


async def test_smtp_mailer_delivers_utf8_mail(smtp: SmtpServer) -> None:
    mail = Mail(to=("boss@shop.test", "ops@shop.test"), subject="Пропущенный звонок", body="Тест ✓")
    await SmtpMailer(config(smtp.port)).send(mail)
    [(envelope, msg)] = smtp.inbox.messages
    assert envelope.mail_from == "zvonar@pbx.test"
    assert envelope.rcpt_tos == ["boss@shop.test", "ops@shop.test"]
    assert msg["Subject"] == "Пропущенный звонок"
    assert msg.get_content().strip() == "Тест ✓"
    assert msg["Message-ID"].endswith("@pbx.test>")


async def test_smtp_mailer_reports_an_unreachable_server(smtp_down: SmtpServer) -> None:
    with pytest.raises(MailError) as err:
        await SmtpMailer(config(smtp_down.port)).send(Mail(("a@b.test",), "s", "b"))
    assert err.value.code == "mail_failed"


def test_mail_refuses_header_injection_and_no_recipients() -> None:
    with pytest.raises(ValueError):
        Mail(("a@b.test",), "hi\r\nBcc: victim@x.test", "b")
    with pytest.raises(ValueError):
        Mail((), "s", "b")


def test_password_never_shows_in_repr() -> None:
    c = SmtpConfig(host="smtp.test", sender="z@x.test", username="u", password="hunter2-secret")
    assert "hunter2-secret" not in repr(c)


async def test_memory_mailer_fails_on_demand() -> None:
    m = MemoryMailer()
    m.failures = 1
    with pytest.raises(MailError):
        await m.send(Mail(("a@b.test",), "s", "b"))
    await m.send(Mail(("a@b.test",), "s", "b"))
    assert m.attempts == 2 and len(m.sent) == 1
