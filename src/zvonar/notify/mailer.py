"""Sending e-mail: a small :class:`Mailer` interface, an SMTP implementation (aiosmtplib) and an
in-memory twin for tests (DESIGN.md style rule 7).

A mailer sends one message or raises :class:`MailError`; retrying is the caller's business (the
notifier retries with back-off in the background so no call ever waits on a mail server).
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import aiosmtplib

from zvonar.core.errors import ZvonarError


class MailError(ZvonarError):
    """The message could not be handed to the mail server (refused, unreachable, timed out)."""

    code = "mail_failed"


class SmtpSecurity(enum.StrEnum):
    none = "none"  # plain SMTP: only for a relay on localhost
    starttls = "starttls"  # RFC 3207, usually port 587
    ssl = "ssl"  # implicit TLS (RFC 8314), usually port 465


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    sender: str
    port: int = 587
    security: SmtpSecurity = SmtpSecurity.starttls
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    # None: the system's trust store. Tests pass a context trusting their own certificate.
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Attachment:
    """A file sent with a mail (e.g. a voicemail's WAV); ``content_type`` is "type/subtype"."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if "/" not in self.content_type:
            raise ValueError("an attachment's content type is type/subtype")
        if any(ch in self.filename for ch in '\r\n/\\"') or not self.filename:
            raise ValueError("an attachment needs a plain file name")


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        if not self.to:
            raise ValueError("a mail needs at least one recipient")
        for text in (self.subject, *self.to):
            # A newline in a header would let a caller's number inject headers.
            if "\r" in text or "\n" in text:
                raise ValueError("mail headers must be single lines")


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand the message to the mail system; raise :class:`MailError` when that fails."""
        ...


def build_message(mail: Mail, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(mail.body)  # text/plain; charset chosen (utf-8) when non-ASCII
    for a in mail.attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def send(self, mail: Mail) -> None:
        c = self.config
        try:
            await aiosmtplib.send(
                build_message(mail, c.sender),
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=c.password,
                use_tls=c.security is SmtpSecurity.ssl,
                start_tls=c.security is SmtpSecurity.starttls,
                tls_context=c.tls_context,
                timeout=c.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(f"SMTP delivery via {c.host}:{c.port} failed: {exc}") from exc


class MemoryMailer:
    """Keeps sent mail in ``sent``; set ``failures`` to make the next N sends fail."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.failures = 0
        self.attempts = 0

    async def send(self, mail: Mail) -> None:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise MailError("memory mailer told to fail")
        self.sent.append(mail)
