"""UDP transport + runner on real loopback sockets (IPv4 and IPv6)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import pytest

from zvonar.sip.io.runner import SipRunner
from zvonar.sip.io.server import SipServer, SipServerConfig, serve_sip
from zvonar.sip.io.testserver import EchoPbx
from zvonar.sip.message import SipResponse, parse_message
from zvonar.sip.security import SecurityConfig
from zvonar.sip.transaction import TimerConfig
from zvonar.sip.ua import Flow, UserAgent
from zvonar.sip.ua.events import IncomingRequest, UaEvent

FAMILIES = [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6")]


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class Client:
    """A bare UDP peer: sends datagrams, collects what comes back."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.host, self.port = host, self.sock.getsockname()[1]

    def via(self, branch: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"SIP/2.0/UDP {host}:{self.port};branch=z9hG4bK{branch};rport"

    async def send(self, data: bytes, dest: tuple[str, int]) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, dest)

    async def recv(self, wait: float = 2.0) -> bytes:
        data, _ = await asyncio.wait_for(
            asyncio.get_running_loop().sock_recvfrom(self.sock, 65535), wait
        )
        return data

    async def nothing(self, wait: float = 0.15) -> bool:
        with pytest.raises(asyncio.TimeoutError):
            await self.recv(wait)
        return True

    def close(self) -> None:
        self.sock.close()


def options(client: Client, target: str, branch: str = "1", extra: str = "") -> bytes:
    target = f"[{target}]" if ":" in target else target
    return (
        f"OPTIONS sip:answer@{target} SIP/2.0\r\nVia: {client.via(branch)}\r\n"
        f"From: <sip:c@example.com>;tag=f{branch}\r\nTo: <sip:answer@example.com>\r\n"
        f"Call-ID: {branch}@example.com\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[SipServer]:
    host = getattr(request, "param", "127.0.0.1")
    if ":" in host and not _has_ipv6():
        pytest.skip("no IPv6 loopback here")
    srv = await serve_sip(SipServerConfig(listen=((host, 0),), security=SecurityConfig()))
    yield srv
    await srv.close()


def _dest(srv: SipServer) -> tuple[str, int]:
    flow = srv.flows[0]
    return flow.host, flow.port


@pytest.mark.parametrize("server", FAMILIES, indirect=True)
async def test_options_answered_with_rport(server: SipServer) -> None:
    host, port = _dest(server)
    client = Client(host)
    try:
        await client.send(options(client, host), (host, port))
        resp = parse_message(await client.recv())
        assert isinstance(resp, SipResponse) and resp.status == 200
        # RFC 3581 §4: rport filled with the source port; received only if sent-by differs.
        assert resp.top_via.rport == client.port
        stats = server.stats()
        assert stats["received"] == 1 and stats["sent"] == 1
    finally:
        client.close()


@pytest.mark.parametrize("server", FAMILIES, indirect=True)
async def test_bad_input_answered_or_dropped_never_raised(server: SipServer) -> None:
    host, port = _dest(server)
    client = Client(host)
    try:
        bad_version = options(client, host, "2").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
        await client.send(bad_version, (host, port))
        assert (await client.recv()).startswith(b"SIP/2.0 505 ")
        no_cseq = options(client, host, "3").replace(b"CSeq: 1 OPTIONS\r\n", b"")
        await client.send(no_cseq, (host, port))
        assert (await client.recv()).startswith(b"SIP/2.0 400 Bad Request (missing CSeq")
        rng = random.Random(7)
        for _ in range(200):  # random bytes and mangled messages: answered or dropped
            msg = bytearray(options(client, host, "4"))
            for _ in range(rng.randint(1, 8)):
                msg[rng.randrange(len(msg))] = rng.randrange(256)
            await client.send(bytes(msg) if rng.random() < 0.8 else rng.randbytes(60), (host, port))
        await client.send(b"\r\n\r\n", (host, port))  # a keep-alive: no answer
        await asyncio.sleep(0.2)
        stats = server.stats()
        assert stats["internal_errors"] == 0
        assert stats["received"] == 203
        handled = stats["requests_received"] + stats["dropped_malformed"] + stats["keepalives"]
        assert handled + stats["rejected_4xx"] + stats["rejected_5xx"] >= 203
        assert stats["keepalives"] == 1
    finally:
        client.close()


async def test_oversize_datagram_answered_513() -> None:
    ua = UserAgent()
    runner = SipRunner(ua, EchoPbx(ua), max_udp_size=600)
    local = await runner.listen_udp("127.0.0.1", 0)
    client = Client("127.0.0.1")
    try:
        big = options(client, "127.0.0.1", "big", extra=f"X-Pad: {'a' * 800}\r\n")
        await client.send(big, (local.host, local.port))
        assert (await client.recv()).startswith(b"SIP/2.0 513 ")
        assert runner.all_stats()["rejected_5xx"] == 1
    finally:
        client.close()
        await runner.close()


async def test_timer_retransmits_2xx_until_ack() -> None:
    """The runner's single call_at handle drives the core's §13.3.1.4 2xx retransmissions."""
    ua = UserAgent(timers=TimerConfig(t1=0.05, t2=0.2))
    runner = SipRunner(ua, EchoPbx(ua))
    local = await runner.listen_udp("127.0.0.1", 0)
    client = Client("127.0.0.1")
    try:
        contact = f"Contact: <sip:c@127.0.0.1:{client.port}>\r\n"
        invite = options(client, "127.0.0.1", "inv", contact).replace(b"OPTIONS", b"INVITE")
        await client.send(invite, (local.host, local.port))
        first = await client.recv()
        assert first.startswith(b"SIP/2.0 200 ")
        assert await client.recv(1.0) == first  # at T1
        assert await client.recv(1.0) == first  # at 2*T1 more
        resp = parse_message(first)
        to = resp.header("To")
        ack = (
            f"ACK sip:answer@127.0.0.1 SIP/2.0\r\nVia: {client.via('ack')}\r\n"
            f"From: <sip:c@example.com>;tag=finv\r\nTo: {to}\r\nCall-ID: inv@example.com\r\n"
            "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        await client.send(ack, (local.host, local.port))
        await asyncio.sleep(0.05)
        while True:  # drain a retransmission that crossed the ACK
            try:
                await client.recv(0.01)
            except TimeoutError:
                break
        assert await client.nothing(0.5)  # no more retransmissions after the ACK
    finally:
        client.close()
        await runner.close()


async def test_blocked_source_and_scanner_dropped() -> None:
    srv = await serve_sip(SipServerConfig(listen=(("127.0.0.1", 0),)))
    host, port = _dest(srv)
    client = Client("127.0.0.1")
    try:
        await client.send(
            options(client, host, "s", "User-Agent: friendly-scanner\r\n"), (host, port)
        )
        assert await client.nothing()
        await client.send(options(client, host, "t"), (host, port))  # now blocked by IP
        assert await client.nothing()
        assert srv.stats()["blocked"] == 2
    finally:
        client.close()
        await srv.close()


class _ReplyAndPump:
    """An application that answers each OPTIONS and pumps while it is being delivered, as a
    new call's first step does (B2bua, core/eager.py). Handling the first, it also hands the
    core a second datagram (``extra``), so an event is pending during the nested pump."""

    def __init__(self, ua: UserAgent, extra: bytes, source: Flow) -> None:
        self.ua = ua
        self.extra, self.source = extra, source
        self.runner: SipRunner | None = None
        self.depth = 0
        self.delivered: list[tuple[str, int]] = []  # (Call-ID, deliveries it is inside of)
        self.sent_in_pump: list[bytes] = []

    def handle_event(self, event: UaEvent, now: float) -> None:
        if not isinstance(event, IncomingRequest):
            return
        runner = self.runner
        assert runner is not None
        self.delivered.append((event.request.call_id, self.depth))
        self.depth += 1
        sent: list[bytes] = []
        send = runner.send
        runner.send = lambda data, flow: bool(sent.append(data) or send(data, flow))  # type: ignore[method-assign]
        try:
            self.ua.reply(event, 200, now)
            if len(self.delivered) == 1:
                self.ua.receive(self.extra, self.source, now)
            runner.pump(now)  # nested: sends at once, delivers nothing
        finally:
            runner.send = send  # type: ignore[method-assign]
            self.depth -= 1
        self.sent_in_pump.extend(sent)


async def test_a_pump_called_while_an_event_is_delivered_sends_at_once_and_delivers_once() -> None:
    ua = UserAgent()
    client = Client("127.0.0.1")
    second = options(client, "127.0.0.1", "p2")
    app = _ReplyAndPump(ua, second, Flow("UDP", client.host, client.port))
    runner = SipRunner(ua, app)
    app.runner = runner
    local = await runner.listen_udp("127.0.0.1", 0)
    try:
        await client.send(options(client, "127.0.0.1", "p1"), (local.host, local.port))
        replies = {parse_message(await client.recv()).call_id for _ in range(2)}
        assert replies == {"p1@example.com", "p2@example.com"}
        # The second request's event waited for the first's delivery to end, then came.
        assert app.delivered == [("p1@example.com", 0), ("p2@example.com", 0)]
        assert [m.split(b"\r\n", 1)[0] for m in app.sent_in_pump] == [b"SIP/2.0 200 OK"] * 2
        assert await client.nothing(0.2)  # each reply went out once
    finally:
        client.close()
        await runner.close()
