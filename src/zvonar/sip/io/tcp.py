"""TCP transport (RFC 3261 §18): listener, outbound connections, framing, limits; with
``tls=`` it is the TLS transport (RFC 3261 §26.2; contexts in tls.py).

Messages are framed by `StreamFramer` (Content-Length, §18.3); RFC 5626 §3.5.1 CRLF pings
are answered with a CRLF pong. Connections are found again by the peer's address, so a
response goes back over the connection its request came on (§18.2.2) and a request to an
address we are already connected to (a registered contact's flow) reuses that connection
(§18.1.1). A new connection is opened only when none exists.

Limits: at most `max_per_ip` connections per remote IP (further ones are closed at once),
`idle_timeout` seconds without any byte received closes a connection, and the framer's
`max_size` bounds one message. A framing error cannot be recovered on a stream: the
connection is closed (RFC 4475 §3.1.2.3).

Over TLS a connection counts once its handshake is done (asyncio calls ``connection_made``
then), bounded by ``TlsConfig.handshake_timeout``. A TLS listener accepts sockets itself and
hands each to ``loop.connect_accepted_socket``, which raises if the handshake fails: asyncio's
own TLS server (and uvloop's) drops such a connection without a word outside debug mode, so
a phone refusing our certificate, a plain TCP client on the TLS port or a handshake that timed
out is logged here with the peer's address and why, and counted (``tls_handshake_failures``,
and by why: ``tls.handshake_failure``), and
never reaches the SIP core. A connection we open checks the server's certificate against the name
``server_names`` holds for its address (the SIP domain it was located from, RFC 5922 §4), or
against the address itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from zvonar.sip.errors import SipError
from zvonar.sip.framing import StreamFramer
from zvonar.sip.io.stats import TransportStats
from zvonar.sip.io.tls import TlsConfig, handshake_failure
from zvonar.sip.io.udp import Address, strip_brackets

__all__ = ["StreamReceiver", "TcpLimits", "TcpTransport"]

log = logging.getLogger(__name__)

StreamReceiver = Callable[[bytes, Address], None]
"""Called as (message, source) for every framed message."""
SendFailure = Callable[[Address], None]
"""Called with the destination when an outbound connection could not be made or broke."""


@dataclass(frozen=True, slots=True)
class TcpLimits:
    max_size: int = 65535
    max_per_ip: int = 64
    idle_timeout: float = 600.0
    connect_timeout: float = 5.0
    max_pending: int = 256 << 10  # bytes queued on a connection that is still connecting
    max_write_buffer: int = 4 << 20  # a peer that does not read is cut off


def _addr(raw: object) -> Address:
    if isinstance(raw, tuple) and len(raw) >= 2:
        return (str(raw[0]), int(raw[1]))
    return ("", 0)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, remote: Address | None = None) -> None:
        self.owner = owner
        self.outbound = remote is not None
        self.remote: Address = remote or ("", 0)
        self.framer = StreamFramer(owner.limits.max_size)
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # written before an outbound connection came up
        self.pending_size = 0
        self.last_active = owner.loop.time()
        self.counted = False  # holds one of its IP's connection slots
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport here
        self.last_active = self.owner.loop.time()
        if not self.outbound:
            self.remote = _addr(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket (e.g. a test's pipe)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.owner.adopt(self):
            self.closed = True
            self.transport.abort()
            return
        for chunk in self.pending:
            self.transport.write(chunk)
        self.pending.clear()
        self.pending_size = 0

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        self.last_active = owner.loop.time()
        owner.stats.bytes_received += len(data)
        try:
            messages = self.framer.feed(data)
        except SipError as exc:  # FramingError: the stream is out of sync, give it up
            owner.stats.tcp_framing_errors += 1
            log.info("closing %s connection from %s: %s", owner.name, self.remote, exc.reason)
            self.abort()
            return
        pongs = self.framer.take_pongs()
        if pongs and self.transport is not None:
            owner.stats.keepalives_received += len(pongs) // 2
            owner.stats.pongs_sent += len(pongs) // 2
            self.transport.write(pongs)
        for message in messages:
            if self.closed:
                return
            owner.deliver(message, self.remote)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.forget(self)

    def write(self, data: bytes) -> bool:
        if self.closed:
            return False
        if self.transport is None:
            if self.pending_size + len(data) > self.owner.limits.max_pending:
                return False
            self.pending.append(data)
            self.pending_size += len(data)
            return True
        if self.transport.get_write_buffer_size() > self.owner.limits.max_write_buffer:
            log.info("%s peer %s does not read; closing", self.owner.name, self.remote)
            self.abort()
            return False
        self.transport.write(data)
        return True

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True


class TcpTransport:
    """A TCP (or TLS) listener plus the connections it accepted or opened, keyed by peer
    address."""

    reliable = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        receiver: StreamReceiver,
        stats: TransportStats,
        *,
        limits: TcpLimits | None = None,
        on_send_failure: SendFailure | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self.name = "TCP" if tls is None else "TLS"
        self.tls = tls
        # Address → the name its certificate must carry (TLS connections we open); filled by
        # whoever located the address from a name (pbx/dns.py), read when connecting.
        self.server_names: dict[Address, str] = {}
        self.loop = loop
        self.stats = stats
        self.limits = limits or TcpLimits()
        self.local: Address = ("", 0)
        self._receiver = receiver
        self._on_send_failure = on_send_failure
        self._servers: list[asyncio.Server] = []
        self._listeners: list[socket.socket] = []  # TLS: accepted by _accept_tls
        self._conns: dict[Address, _Connection] = {}
        self._per_ip: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def listen(self, host: str, port: int) -> Address:
        """Accept connections on host:port (may be called for several addresses)."""
        host = strip_brackets(host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if self.tls is not None:
            if self.tls.server is None:
                raise ValueError("a TLS listener needs a server certificate")
            sockname = self._listen_tls(host, port, family)
        else:
            server = await self.loop.create_server(
                lambda: _Connection(self),
                host,
                port,
                family=family,
                reuse_address=True,
                backlog=512,
            )
            self._servers.append(server)
            sockname = server.sockets[0].getsockname()
        local = (str(sockname[0]), int(sockname[1]))
        if not self.local[0]:
            self.local = local
        if self._sweeper is None:
            self._schedule_sweep()
        return local

    def _listen_tls(self, host: str, port: int, family: socket.AddressFamily) -> tuple[str, int]:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(512)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listeners.append(sock)
        self._spawn(self._accept_tls(sock))
        name = sock.getsockname()
        return (str(name[0]), int(name[1]))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_tls(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                sock, addr = await self.loop.sock_accept(listener)
            except OSError as exc:  # out of descriptors (EMFILE)...: let some close first
                log.warning("TLS listener cannot accept: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._handshake(sock, _addr(addr)))

    async def _handshake(self, sock: socket.socket, peer: Address) -> None:
        tls = self.tls
        assert tls is not None and tls.server is not None  # listen() checked
        started = self.loop.time()
        try:
            await self.loop.connect_accepted_socket(
                lambda: _Connection(self),
                sock,
                ssl=tls.server,
                ssl_handshake_timeout=tls.handshake_timeout,
            )
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            overran = self.loop.time() - started >= tls.handshake_timeout
            reason = handshake_failure(exc, overran=overran)
            self.stats.handshake_failed(reason)
            log.info(
                "TLS handshake with %s failed (%s): %s", peer, reason, exc or type(exc).__name__
            )
            sock.close()  # closed already by the failed transport: a no-op then
        except asyncio.CancelledError:
            sock.close()
            raise

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def connected_to(self, addr: Address) -> bool:
        return (strip_brackets(addr[0]), addr[1]) in self._conns

    # -- connection bookkeeping (called by _Connection) -------------------------------------

    def adopt(self, conn: _Connection) -> bool:
        """Admit a connection that just came up; False if closed or over the per-IP limit."""
        if self._closed:
            return False
        if conn.outbound:  # its slot was taken when the connect started
            self.stats.tcp_connected += 1
            return self._conns.get(conn.remote) is conn
        ip = conn.remote[0]
        if self._per_ip.get(ip, 0) >= self.limits.max_per_ip:
            self.stats.tcp_refused += 1
            log.info(
                "refusing %s connection from %s: %d already open",
                self.name,
                ip,
                self.limits.max_per_ip,
            )
            return False
        self._take_slot(conn)
        old = self._conns.get(conn.remote)
        if old is not None:  # a stale entry for a reused address: the new one wins
            old.abort()
        self._conns[conn.remote] = conn
        self.stats.tcp_accepted += 1
        return True

    def forget(self, conn: _Connection) -> None:
        if self._conns.get(conn.remote) is conn:
            del self._conns[conn.remote]
        if conn.counted:
            conn.counted = False
            self.stats.tcp_closed += 1
            ip = conn.remote[0]
            left = self._per_ip.get(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)
        if conn.outbound and conn.transport is None and self._on_send_failure is not None:
            self._on_send_failure(conn.remote)  # never came up: what we queued is lost

    def _take_slot(self, conn: _Connection) -> None:
        self._per_ip[conn.remote[0]] = self._per_ip.get(conn.remote[0], 0) + 1
        conn.counted = True

    def deliver(self, message: bytes, source: Address) -> None:
        try:
            self._receiver(message, source)
        except Exception:  # the runner guards already; never let it reach asyncio
            self.stats.internal_errors += 1
            log.exception("SIP receiver failed on a message from %s", source)

    # -- sending ----------------------------------------------------------------------------

    def send(self, data: bytes, addr: Address) -> bool:
        """Write one message to `addr`, over the open connection or a new one."""
        key = (strip_brackets(addr[0]), addr[1])
        conn = self._conns.get(key)
        if conn is None:
            if self._closed or self._per_ip.get(key[0], 0) >= self.limits.max_per_ip:
                self.stats.send_errors += 1
                return False
            conn = _Connection(self, key)
            self._conns[key] = conn
            self._take_slot(conn)
            task = self.loop.create_task(self._open(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not conn.write(data):
            self.stats.send_errors += 1
            return False
        self.stats.sent += 1
        self.stats.bytes_sent += len(data)
        return True

    async def _open(self, conn: _Connection) -> None:
        host, port = conn.remote
        tls = self.tls
        timeout = self.limits.connect_timeout
        try:
            if tls is None:
                opening = self.loop.create_connection(lambda: conn, host, port)
            else:
                opening = self.loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=tls.client,
                    server_hostname=self.server_names.get(conn.remote, host),
                    ssl_handshake_timeout=tls.handshake_timeout,
                )
                timeout += tls.handshake_timeout
            await asyncio.wait_for(opening, timeout)
        except (TimeoutError, OSError) as exc:  # ssl.SSLError (a bad certificate) is an OSError
            log.info("%s connect to %s failed: %s", self.name, conn.remote, exc)
            conn.closed = True
            self.stats.send_errors += 1
            self.forget(conn)

    # -- idle sweep -------------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        interval = max(0.05, min(self.limits.idle_timeout / 4, 10.0))
        self._sweeper = self.loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        limit = self.loop.time() - self.limits.idle_timeout
        for conn in [c for c in self._conns.values() if c.transport and c.last_active < limit]:
            self.stats.tcp_idle_closed += 1
            conn.abort()
        if not self._closed:
            self._schedule_sweep()

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._conns.values()):
            conn.abort()
        for server in self._servers:
            server.close()
        for listener in self._listeners:
            listener.close()
        for server in self._servers:
            await server.wait_closed()
