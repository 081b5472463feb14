"""SIP over TLS on loopback (RFC 3261 §26.2, RFC 5922): a phone's connection, connections we
open with the server's certificate checked, and what a failed handshake does."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.certs import Pki, make_pki
from zvonar.sip.io.server import SipServer, SipServerConfig, serve_sip
from zvonar.sip.io.tls import (
    HANDSHAKE_FAILURES,
    TlsConfig,
    TlsError,
    client_context,
    server_context,
)
from zvonar.sip.message import SipRequest, SipResponse, parse_message
from zvonar.sip.security import SecurityConfig
from zvonar.sip.ua import Flow

PBX_NAME = "pbx.zvonar.test"


class Conn:
    """A TLS SIP peer with a little framer (headers + Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port = writer.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext, name: str = PBX_NAME) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def message(self, wait: float = 3.0) -> bytes:
        return await read_message(self.reader, wait)

    def close(self) -> None:
        self.writer.close()


async def read_message(reader: asyncio.StreamReader, wait: float = 3.0) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            length = int(value)
    return head + await reader.readexactly(length)


def request(method: str, conn: Conn, user: str, branch: str, extra: str = "") -> bytes:
    return (
        f"{method} sip:{user}@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:{conn.port};branch=z9hG4bK{branch}\r\n"
        f"From: <sip:{user}@127.0.0.1>;tag=f{branch}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: {branch}@t\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def server(pki: Pki) -> AsyncIterator[SipServer]:
    srv = await tls_server(pki)
    yield srv
    await srv.close()


async def tls_server(pki: Pki) -> SipServer:
    leaf = pki.issue("pbx", dns=(PBX_NAME,), ips=("127.0.0.1",))
    return await serve_sip(
        SipServerConfig(
            listen=(("127.0.0.1", 0),),
            security=SecurityConfig(trusted=("127.0.0.0/8",)),
            tls=TlsConfig(
                client=client_context(ca=pki.ca), server=server_context(leaf.cert, leaf.key)
            ),
        )
    )


def phone_context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


async def test_phone_over_tls_gets_answers_on_its_connection(server: SipServer, pki: Pki) -> None:
    conn = await Conn.open(server.flow("TLS").port, phone_context(pki))
    try:
        await conn.send(request("OPTIONS", conn, "answer", "a"))
        resp = parse_message(await conn.message())
        assert isinstance(resp, SipResponse) and resp.status == 200
        assert resp.top_via.transport == "TLS"
        await conn.send(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
        assert await asyncio.wait_for(conn.reader.readexactly(2), 2) == b"\r\n"  # the pong
        assert server.stats()["tcp_accepted"] == 1
    finally:
        conn.close()


async def test_certificate_names_the_pbx_by_domain_and_address(server: SipServer, pki: Pki) -> None:
    port = server.flow("TLS").port
    for name in (PBX_NAME, "127.0.0.1"):
        conn = await Conn.open(port, phone_context(pki), name)
        conn.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        await Conn.open(port, phone_context(pki), "other.zvonar.test")


async def test_a_plain_tcp_client_on_the_tls_port_reaches_nothing(server: SipServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.flow("TLS").port)
    try:
        writer.write(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        # The handshake fails on those bytes: the connection is closed, nothing is answered.
        assert await asyncio.wait_for(reader.read(), 6) == b""
        assert server.stats()["received"] == 0
    finally:
        writer.close()
    await until(lambda: server.stats()["tls_handshake_failures"] == 1)
    assert server.stats()["tcp_accepted"] == 0


async def test_failed_handshakes_are_counted_and_good_ones_are_not(
    server: SipServer, pki: Pki
) -> None:
    port = server.flow("TLS").port
    with pytest.raises(ssl.SSLCertVerificationError):
        await Conn.open(port, phone_context(pki), "other.zvonar.test")  # the phone refuses us
    good = await Conn.open(port, phone_context(pki))
    await until(lambda: server.stats()["tls_handshake_failures"] == 1)
    good.close()
    await asyncio.sleep(0.1)
    stats = server.stats()
    assert stats["tls_handshake_failures"] == 1 and stats["tcp_accepted"] == 1


def blocking_handshake(port: int, ctx: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
        ctx.wrap_socket(raw, server_hostname=PBX_NAME).close()


def failures(server: SipServer) -> dict[str, int]:
    stats = server.stats()
    return {r: stats[f"tls_failed_{r}"] for r in HANDSHAKE_FAILURES if stats[f"tls_failed_{r}"]}


async def test_each_failed_handshake_says_why(pki: Pki) -> None:
    await each_failure_says_why(pki)


def test_each_failed_handshake_says_why_on_uvloop(pki: Pki) -> None:
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(each_failure_says_why(pki))


async def each_failure_says_why(pki: Pki) -> None:
    """/metrics tells an administrator why phones fail to connect: one of each."""
    leaf = pki.issue("pbx", dns=(PBX_NAME,), ips=("127.0.0.1",))
    tls = TlsConfig(
        client=client_context(ca=pki.ca),
        server=server_context(leaf.cert, leaf.key),
        handshake_timeout=0.5,
    )
    server = await serve_sip(
        SipServerConfig(
            listen=(("127.0.0.1", 0),), security=SecurityConfig(trusted=("127.0.0.0/8",)), tls=tls
        )
    )
    port = server.flow("TLS").port
    try:
        # A phone set to UDP/TCP that talks plain SIP to the TLS port.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        await until(lambda: failures(server) == {"not_tls": 1})
        writer.close()
        # A phone that does not trust our certificate (it lacks our CA), and says so with an
        # alert as OpenSSL's blocking handshake does (asyncio's client just hangs up: that
        # counts as "closed").
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(blocking_handshake, port, ssl.create_default_context())
        await until(lambda: failures(server) == {"not_tls": 1, "certificate": 1})
        # An old phone: TLS 1.2 with RSA key exchange only (the listener's suites all have
        # forward secrecy).
        old = phone_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        old.set_ciphers("AES128-SHA256")
        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(blocking_handshake, port, old)
        await until(lambda: failures(server).get("protocol") == 1)
        # One that connects and says nothing, and one that leaves mid-handshake.
        _, silent = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: failures(server).get("timeout") == 1)
        silent.close()
        _, gone = await asyncio.open_connection("127.0.0.1", port)
        gone.write(b"\x16\x03\x01\x00\x05\x01\x00")  # the start of a ClientHello
        await asyncio.sleep(0.05)
        gone.transport.abort()
        await until(lambda: failures(server).get("closed") == 1)
        got = failures(server)
        assert got == {"not_tls": 1, "certificate": 1, "protocol": 1, "timeout": 1, "closed": 1}
        assert server.stats()["tls_handshake_failures"] == 5
    finally:
        await server.close()


async def until(check: Callable[[], bool], within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


async def test_call_to_a_tls_registered_phone_uses_its_connection(
    server: SipServer, pki: Pki
) -> None:
    port = server.flow("TLS").port
    bob = await Conn.open(port, phone_context(pki))
    caller = await Conn.open(port, phone_context(pki))
    try:
        contact = f"Contact: <sip:bob@127.0.0.1:{bob.port};transport=tls>\r\n"
        await bob.send(request("REGISTER", bob, "bob", "r", contact + "Expires: 60\r\n"))
        assert (await bob.message()).startswith(b"SIP/2.0 200 ")
        await caller.send(
            request("INVITE", caller, "bob", "i", f"Contact: <sip:c@127.0.0.1:{caller.port}>\r\n")
        )
        relayed = parse_message(await bob.message())
        assert isinstance(relayed, SipRequest) and relayed.method == "INVITE"
        assert relayed.top_via.transport == "TLS"
        assert relayed.top_via.port == port
        assert server.stats()["tcp_connected"] == 0  # no new outbound connection
    finally:
        bob.close()
        caller.close()


async def _tls_peer(
    pki: Pki, names: tuple[str, ...]
) -> tuple[asyncio.Server, int, list[tuple[bytes, str | None]]]:
    """A TLS server with a certificate for ``names`` that records what it reads (and the
    SNI it was asked for), answering nothing."""
    leaf = pki.issue("peer-" + names[0], dns=names)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(leaf.cert), str(leaf.key))
    sni: list[str | None] = []
    ctx.sni_callback = lambda sock, name, _ctx: sni.append(name)  # type: ignore[assignment,func-returns-value]
    got: list[tuple[bytes, str | None]] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            got.append((await read_message(reader, 5), sni[-1] if sni else None))
        finally:
            writer.close()

    listener = await asyncio.start_server(peer, "127.0.0.1", 0, ssl=ctx)
    return listener, listener.sockets[0].getsockname()[1], got


async def test_outbound_tls_checks_the_name_it_was_asked_for(server: SipServer, pki: Pki) -> None:
    listener, port, got = await _tls_peer(pki, ("carrier.zvonar.test",))
    loop = asyncio.get_running_loop()
    tls = server.runner.tls
    assert tls is not None
    try:
        tls.server_names[("127.0.0.1", port)] = "carrier.zvonar.test"
        server.pbx.originate(
            f"sip:x@carrier.zvonar.test:{port};transport=tls",
            Flow("TLS", "127.0.0.1", port),
            loop.time(),
        )
        server.runner.pump()
        for _ in range(150):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got, "the carrier never heard the INVITE"
        message, sni = got[0]
        assert message.startswith(b"INVITE sip:x@carrier.zvonar.test")
        assert b"Via: SIP/2.0/TLS " in message
        assert sni == "carrier.zvonar.test"
        assert server.stats()["tcp_connected"] == 1
    finally:
        listener.close()
        await listener.wait_closed()


async def test_a_certificate_for_another_name_fails_the_request_at_once(
    server: SipServer, pki: Pki
) -> None:
    listener, port, got = await _tls_peer(pki, ("impostor.zvonar.test",))
    loop = asyncio.get_running_loop()
    tls = server.runner.tls
    assert tls is not None
    try:
        tls.server_names[("127.0.0.1", port)] = "carrier.zvonar.test"
        leg = server.pbx.originate(
            f"sip:x@carrier.zvonar.test:{port};transport=tls",
            Flow("TLS", "127.0.0.1", port),
            loop.time(),
        )
        server.runner.pump()
        assert leg.ended is not None
        # Not after Timer B's 32 s: the failed handshake is a transport error (§8.1.3.1).
        assert await asyncio.wait_for(leg.ended, 8) == "failed 503"
        assert not got
    finally:
        listener.close()
        await listener.wait_closed()


async def test_a_flow_over_a_transport_we_do_not_have_fails_at_once() -> None:
    srv = await serve_sip(
        SipServerConfig(
            listen=(("127.0.0.1", 0),), security=SecurityConfig(trusted=("127.0.0.0/8",))
        )
    )
    try:
        # Advertised (a Via can be written) but never listened on: nothing can carry it.
        srv.ua.set_local_address("TLS", "127.0.0.1", 5061)
        loop = asyncio.get_running_loop()
        leg = srv.pbx.originate(
            "sip:x@127.0.0.1:5061;transport=tls", Flow("TLS", "127.0.0.1", 5061), loop.time()
        )
        srv.runner.pump()
        assert leg.ended is not None
        assert await asyncio.wait_for(leg.ended, 2) == "failed 503"
        assert not srv.runner.reaches("TLS") and srv.runner.reaches("UDP")
        assert srv.stats()["send_errors"] == 1
    finally:
        await srv.close()


def test_unloadable_files_say_which(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(TlsError, match=r"nope\.crt"):
        server_context(missing)
    with pytest.raises(TlsError, match="CA file"):
        client_context(ca=missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(TlsError, match=r"garbage\.pem"):
        server_context(garbage, garbage)


def test_old_protocol_versions_are_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    leaf = pki.issue("v", dns=("v.test",))
    for ctx in (server_context(leaf.cert, leaf.key), client_context(ca=pki.ca)):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client_context(verify=False).verify_mode == ssl.CERT_NONE
    assert client_context(ca=pki.ca).check_hostname


def test_the_tls_listener_on_uvloop(pki: Pki) -> None:
    """``zvonar serve`` runs on uvloop: its start_tls carries the handshakes there."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> dict[str, int]:
        server = await tls_server(pki)
        port = server.flow("TLS").port
        try:
            conn = await Conn.open(port, phone_context(pki))
            await conn.send(request("OPTIONS", conn, "answer", "u"))
            resp = parse_message(await conn.message())
            assert isinstance(resp, SipResponse) and resp.status == 200
            conn.close()
            with pytest.raises(ssl.SSLCertVerificationError):
                await Conn.open(port, phone_context(pki), "other.zvonar.test")
            await until(lambda: server.stats()["tls_handshake_failures"] == 1)
            return server.stats()
        finally:
            await server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        stats = runner.run(scenario())
    assert stats["tcp_accepted"] == 1 and stats["tls_handshake_failures"] == 1
