"""The HTTP route client against a real HTTP server on 127.0.0.1: decisions, every fallback, the
signature, SSRF refusal of loopback without the account's permission."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from zvonar.integrations.http_route import (
    CallFacts,
    Fallback,
    FallbackReason,
    HttpRouter,
    RouteDecision,
    TargetKind,
)
from zvonar.integrations.signing import SIGNATURE_HEADER, verify

SECRET = "s3cret-per-account"
FACTS = CallFacts(
    call_id="call-1",
    caller="+79161234567",
    dialed="+74951112233",
    dialed_label="Курорты",
    started_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    session_id="sess-9",
    tracking={"utm_source": "yandex", "utm_campaign": "spring"},
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    port: int
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _response(status: int, body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{extra}"
    return head.encode() + b"\r\n" + body


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A minimal HTTP/1.1 server; the path picks the behaviour."""
    state = Server(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            state.seen.append(Seen(method, path, headers, body))
            if path == "/good":
                writer.write(_response(200, b'{"group": "0b7e4c9a-3f0e-4a53-9d1b-2c6f3f1f6a10"}'))
            elif path == "/slow":
                await state.release.wait()
                writer.write(_response(200, b'{"action": "hangup"}'))
            elif path == "/500":
                writer.write(_response(500, b"oops"))
            elif path == "/garbage":
                writer.write(_response(200, b"<html>not json</html>"))
            elif path == "/oversize":
                big = b'{"action": "hangup", "pad": "' + b"x" * 70_000 + b'"}'
                writer.write(_response(200, big))
            elif path == "/chunked-oversize":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(40):
                    writer.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
                writer.write(b"0\r\n\r\n")
            elif path == "/redirect":
                writer.write(_response(302, b"", "Location: http://127.0.0.1:1/good\r\n"))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = srv.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.release.set()
        srv.close()
        await srv.wait_closed()


@pytest.fixture
async def router() -> AsyncIterator[HttpRouter]:
    r = HttpRouter()
    yield r
    await r.aclose()


async def test_good_reply_is_a_decision_and_the_request_is_signed(
    server: Server, router: HttpRouter
) -> None:
    got = await router.route(server.url("/good"), FACTS, secret=SECRET, allow_private=True)
    assert got == RouteDecision(TargetKind.group, "0b7e4c9a-3f0e-4a53-9d1b-2c6f3f1f6a10")
    (req,) = server.seen
    assert req.method == "POST" and req.path == "/good"
    assert req.headers["host"] == f"127.0.0.1:{server.port}"
    assert verify(req.headers[SIGNATURE_HEADER.lower()], req.body, SECRET, int(time.time()))
    assert not verify(req.headers[SIGNATURE_HEADER.lower()], req.body, "other", int(time.time()))
    payload = json.loads(req.body)
    assert payload["call_id"] == "call-1" and payload["caller"] == "+79161234567"
    assert payload["dialed"] == {"number": "+74951112233", "label": "Курорты"}
    assert payload["tracking"]["utm_source"] == "yandex" and payload["session_id"] == "sess-9"
    assert payload["time"] == "2025-03-01T09:30:00+00:00"


async def test_slow_reply_falls_back_at_the_configured_timeout(
    server: Server, router: HttpRouter
) -> None:
    started = time.monotonic()
    got = await router.route(
        server.url("/slow"), FACTS, secret=SECRET, allow_private=True, timeout=0.3
    )
    elapsed = time.monotonic() - started
    assert isinstance(got, Fallback) and got.reason is FallbackReason.timeout
    assert 0.25 <= elapsed < 1.5


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/500", FallbackReason.http_status),
        ("/garbage", FallbackReason.bad_reply),
        ("/oversize", FallbackReason.oversize),
        ("/chunked-oversize", FallbackReason.oversize),
        ("/redirect", FallbackReason.redirect),
    ],
)
async def test_bad_replies_fall_back(
    server: Server, router: HttpRouter, path: str, reason: FallbackReason
) -> None:
    got = await router.route(server.url(path), FACTS, secret=SECRET, allow_private=True)
    assert isinstance(got, Fallback), got
    assert got.reason is reason


async def test_loopback_refused_without_the_accounts_permission(
    server: Server, router: HttpRouter
) -> None:
    got = await router.route(server.url("/good"), FACTS, secret=SECRET)
    assert got == Fallback(FallbackReason.unsafe_target, "loopback")
    assert server.seen == []  # nothing was sent


async def test_refused_connection_falls_back() -> None:
    router = HttpRouter()
    try:
        # Port 1 on loopback: nothing listens there.
        got = await router.route("http://127.0.0.1:1/", FACTS, secret=SECRET, allow_private=True)
    finally:
        await router.aclose()
    assert isinstance(got, Fallback) and got.reason is FallbackReason.connect_error


async def test_host_name_is_resolved_once_and_the_checked_ip_is_used(server: Server) -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    router = HttpRouter(resolver=resolver)
    try:
        url = f"http://backoffice.example:{server.port}/good"
        got = await router.route(url, FACTS, secret=SECRET, allow_private=True)
        refused = await router.route(url, FACTS, secret=SECRET)
    finally:
        await router.aclose()
    assert isinstance(got, RouteDecision)
    # The request went to the pinned IP but names the original host.
    assert server.seen[0].headers["host"] == f"backoffice.example:{server.port}"
    assert calls == ["backoffice.example", "backoffice.example"]
    assert refused == Fallback(FallbackReason.unsafe_target, "loopback")
