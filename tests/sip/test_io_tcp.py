"""TCP transport on loopback: framing, keep-alive pongs, connection reuse, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from zvonar.sip.io.server import SipServer, SipServerConfig, serve_sip
from zvonar.sip.io.tcp import TcpLimits
from zvonar.sip.message import SipRequest, SipResponse, parse_message
from zvonar.sip.security import SecurityConfig
from zvonar.sip.ua import Flow


class Conn:
    """A raw TCP SIP peer with its own little framer (headers + Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port = writer.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def message(self, wait: float = 2.0) -> bytes:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), wait)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value)
        return head + await self.reader.readexactly(length)

    async def closed(self, wait: float = 2.0) -> bool:
        return await asyncio.wait_for(self.reader.read(), wait) == b""

    def close(self) -> None:
        self.writer.close()


def request(method: str, conn: Conn, user: str, branch: str, extra: str = "") -> bytes:
    return (
        f"{method} sip:{user}@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:{conn.port};branch=z9hG4bK{branch}\r\n"
        f"From: <sip:{user}@127.0.0.1>;tag=f{branch}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: {branch}@t\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def _server(**limits: float) -> SipServer:
    return await serve_sip(
        SipServerConfig(
            listen=(("127.0.0.1", 0),),
            tcp=True,
            security=SecurityConfig(trusted=("127.0.0.0/8",)),
            tcp_limits=TcpLimits(**limits),  # type: ignore[arg-type]
        )
    )


@pytest.fixture
async def server() -> AsyncIterator[SipServer]:
    srv = await _server()
    yield srv
    await srv.close()


def _port(srv: SipServer) -> int:
    return srv.flow("TCP").port


async def test_response_on_same_connection_and_crlf_pong(server: SipServer) -> None:
    conn = await Conn.open("127.0.0.1", _port(server))
    try:
        # Two requests in one segment, the second split across writes: framing by length.
        both = request("OPTIONS", conn, "answer", "a") + request("OPTIONS", conn, "answer", "b")
        await conn.send(both[:-30])
        await conn.send(both[-30:])
        for _ in range(2):
            resp = parse_message(await conn.message())
            assert isinstance(resp, SipResponse) and resp.status == 200
        await conn.send(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
        assert await asyncio.wait_for(conn.reader.readexactly(2), 2) == b"\r\n"
        stats = server.stats()
        assert stats["tcp_accepted"] == 1 and stats["pongs_sent"] == 1
    finally:
        conn.close()


async def test_framing_error_closes_the_connection(server: SipServer) -> None:
    conn = await Conn.open("127.0.0.1", _port(server))
    try:
        no_length = request("OPTIONS", conn, "answer", "c").replace(b"Content-Length: 0\r\n", b"")
        await conn.send(no_length)  # §18.3: Content-Length is mandatory on streams
        assert await conn.closed()
        assert server.stats()["tcp_framing_errors"] == 1
    finally:
        conn.close()


async def test_per_ip_connection_limit() -> None:
    srv = await _server(max_per_ip=2)
    conns = [await Conn.open("127.0.0.1", _port(srv)) for _ in range(3)]
    try:
        assert await conns[2].closed()
        await conns[0].send(request("OPTIONS", conns[0], "answer", "d"))
        assert (await conns[0].message()).startswith(b"SIP/2.0 200 ")
        assert srv.stats()["tcp_refused"] == 1
    finally:
        for c in conns:
            c.close()
        await srv.close()


async def test_idle_connection_closed() -> None:
    srv = await _server(idle_timeout=0.2)
    conn = await Conn.open("127.0.0.1", _port(srv))
    try:
        assert await conn.closed(3.0)
        assert srv.stats()["tcp_idle_closed"] == 1
    finally:
        conn.close()
        await srv.close()


async def test_call_to_tcp_registered_user_uses_its_connection(server: SipServer) -> None:
    """A binding made over TCP is reached over that very connection (its flow)."""
    bob = await Conn.open("127.0.0.1", _port(server))
    try:
        contact = f"Contact: <sip:bob@127.0.0.1:{bob.port};transport=tcp>\r\n"
        await bob.send(request("REGISTER", bob, "bob", "r", contact + "Expires: 60\r\n"))
        assert (await bob.message()).startswith(b"SIP/2.0 200 ")
        caller = await Conn.open("127.0.0.1", _port(server))
        try:
            sdp_less = request(
                "INVITE", caller, "bob", "i", f"Contact: <sip:c@127.0.0.1:{caller.port}>\r\n"
            )
            await caller.send(sdp_less)
            relayed = parse_message(await bob.message())
            assert isinstance(relayed, SipRequest) and relayed.method == "INVITE"
            assert str(relayed.uri) == f"sip:bob@127.0.0.1:{bob.port};transport=tcp"
            assert server.stats()["tcp_connected"] == 0  # no new outbound connection
        finally:
            caller.close()
    finally:
        bob.close()


async def test_outbound_connection_and_connect_failure(server: SipServer) -> None:
    received: list[bytes] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    listener = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        server.pbx.originate(f"sip:x@127.0.0.1:{port}", Flow("TCP", "127.0.0.1", port), loop.time())
        server.runner.pump()
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.02)
        assert received and received[0].startswith(b"INVITE sip:x@127.0.0.1")
        assert server.stats()["tcp_connected"] == 1
    finally:
        listener.close()
        await listener.wait_closed()
    # Nothing listens there any more: the connect fails and the call fails with 503.
    leg = server.pbx.originate(
        f"sip:y@127.0.0.1:{port}", Flow("TCP", "127.0.0.1", port), loop.time()
    )
    server.runner.pump()
    assert leg.ended is not None
    assert await asyncio.wait_for(leg.ended, 6) == "failed 503"
