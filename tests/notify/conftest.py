"""A real SMTP server (aiosmtpd) on 127.0.0.1, run inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.sip.peers.harness import free_port as peer_port


class Inbox:
    """Collects what the server accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope, msg))
        self.arrived.set()
        return "250 OK"


def free_port() -> int:
    return peer_port()


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.inbox, hostname="mx.test"), "127.0.0.1", self.port
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@pytest.fixture
async def smtp_down() -> AsyncIterator[SmtpServer]:
    """A server object on a free port that is not listening yet (start it to bring it up)."""
    server = SmtpServer(free_port())
    yield server
    await server.stop()


@pytest.fixture
async def smtp(smtp_down: SmtpServer) -> SmtpServer:
    await smtp_down.start()
    return smtp_down
