"""The asyncio runner: sockets in, the sans-IO `UserAgent` in the middle, sockets out.

For every input (datagram, framed stream message, timer) the runner calls the core,
hands the core's events to the application synchronously (it answers through the core),
writes what the core wants sent, and keeps exactly one `loop.call_at` handle armed for
the core's `next_deadline()`. Nothing a peer sends can raise out of here: the core
answers or drops bad input itself, and any bug that still raises is counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from typing import Protocol

from zvonar.sip.io.stats import TransportStats
from zvonar.sip.io.tcp import TcpLimits, TcpTransport
from zvonar.sip.io.tls import TlsConfig
from zvonar.sip.io.udp import Address, UdpTransport, bind_udp
from zvonar.sip.ua import Flow, UaEvent, UserAgent

__all__ = ["SipApplication", "SipRunner"]

log = logging.getLogger(__name__)


_PAIR_ATTEMPTS = 20


class SipApplication(Protocol):
    """What runs on top of the UA core: called for each event, answers through `ua`."""

    def handle_event(self, event: UaEvent, now: float) -> None: ...


class SipRunner:
    """Hosts one `UserAgent` on UDP/TCP/TLS listeners of one event loop."""

    def __init__(
        self,
        ua: UserAgent,
        app: SipApplication | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        tcp_limits: TcpLimits | None = None,
        max_udp_size: int = 65535,
    ) -> None:
        self.ua = ua
        self.app = app
        self.loop = loop or asyncio.get_running_loop()
        self.stats = TransportStats()
        self.max_udp_size = max_udp_size
        self._udp: dict[int, UdpTransport] = {}  # by IP family (4 / 6)
        self._tcp_limits = tcp_limits
        self._tcp = self._stream_transport(None)
        self._tls: TcpTransport | None = None
        self._tcp_listening = False
        self._timer: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._event_hooks: list[Callable[[UaEvent], None]] = []
        self._closed = False
        self._pumping = False  # a pump is delivering events (see pump)

    # -- setup --------------------------------------------------------------------------------

    async def listen_udp(self, host: str, port: int = 0) -> Flow:
        sock = bind_udp(host, port)
        family = 6 if ":" in host else 4
        transport = UdpTransport(
            self.loop,
            sock,
            lambda data, src, truncated: self._on_datagram(data, src, truncated),
            self.stats,
            max_size=self.max_udp_size,
        )
        self._udp[family] = transport
        local = Flow("UDP", transport.local[0], transport.local[1])
        self.ua.set_local_address("UDP", local.host, local.port)
        return local

    async def listen_tcp(self, host: str, port: int = 0) -> Flow:
        addr = await self._tcp.listen(host, port)
        self._tcp_listening = True
        local = Flow("TCP", addr[0], addr[1])
        self.ua.set_local_address("TCP", local.host, local.port)
        return local

    async def listen_tls(
        self,
        host: str,
        port: int,
        tls: TlsConfig,
        *,
        server_names: dict[Address, str] | None = None,
    ) -> Flow:
        """Accept SIP over TLS on host:port (5061 by convention) and open TLS connections
        with ``tls.client``; the runner has one TLS configuration. ``server_names``: the
        name each server address's certificate must carry (else the address itself)."""
        if self._tls is None:
            self._tls = self._stream_transport(tls)
        if server_names is not None:
            self._tls.server_names = server_names
        addr = await self._tls.listen(host, port)
        local = Flow("TLS", addr[0], addr[1])
        self.ua.set_local_address("TLS", local.host, local.port)
        return local

    def _stream_transport(self, tls: TlsConfig | None) -> TcpTransport:
        name = "TCP" if tls is None else "TLS"
        return TcpTransport(
            self.loop,
            lambda data, source: self._on_stream(name, data, source),
            self.stats,
            limits=self._tcp_limits,
            on_send_failure=lambda addr: self._on_send_failure(name, addr),
            tls=tls,
        )

    async def listen_pair(self, host: str, port: int = 0) -> tuple[Flow, Flow]:
        """UDP and TCP on the same port, as SIP expects (RFC 3261 §18).

        With port 0 the kernel picks the UDP port, which may already be taken for TCP by
        someone else: then pick again rather than fail.
        """
        for _ in range(_PAIR_ATTEMPTS):
            udp = await self.listen_udp(host, port)
            try:
                return udp, await self.listen_tcp(host, udp.port)
            except OSError as exc:
                if port or exc.errno != errno.EADDRINUSE:
                    raise
                family = 6 if ":" in host else 4
                self._udp.pop(family).close()
        raise OSError(errno.EADDRINUSE, f"no free port for UDP and TCP on {host}")

    def add_event_hook(self, hook: Callable[[UaEvent], None]) -> None:
        """Observe every event after the application saw it (tests, logging)."""
        self._event_hooks.append(hook)

    @property
    def tcp(self) -> TcpTransport:
        return self._tcp

    @property
    def tls(self) -> TcpTransport | None:
        """The TLS transport, once `listen_tls` ran."""
        return self._tls

    def reaches(self, transport: str) -> bool:
        """Whether the runner listens on ``transport`` ("UDP", "TCP", "TLS"): only then has
        the core an address for its Via and Contact."""
        if transport == "UDP":
            return bool(self._udp)
        if transport == "TCP":
            return self._tcp_listening
        return transport == "TLS" and self._tls is not None

    def all_stats(self) -> dict[str, int]:
        return {**self.stats.as_dict(), **self.ua.counters.as_dict()}

    # -- input --------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, source: Address, truncated: bool) -> None:
        self.stats.received += 1
        now = self.loop.time()
        try:
            self.ua.receive(data, Flow("UDP", source[0], source[1]), now, truncated=truncated)
        except Exception:
            self.stats.internal_errors += 1
            log.exception("SIP core failed on a datagram from %s", source)
        self.pump(now)

    def _on_stream(self, transport: str, data: bytes, source: Address) -> None:
        self.stats.received += 1
        now = self.loop.time()
        try:
            self.ua.receive(data, Flow(transport, source[0], source[1]), now)
        except Exception:
            self.stats.internal_errors += 1
            log.exception("SIP core failed on a message from %s", source)
        self.pump(now)

    def _on_send_failure(self, transport: str, addr: Address) -> None:
        now = self.loop.time()
        try:
            self.ua.transport_error(Flow(transport, addr[0], addr[1]), now)
        except Exception:
            self.stats.internal_errors += 1
            log.exception("SIP core failed on a transport error for %s", addr)
        self.pump(now)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed = None
        now = self.loop.time()
        try:
            self.ua.handle_timer(now)
        except Exception:
            self.stats.internal_errors += 1
            log.exception("SIP core failed in a timer")
        self.pump(now)

    # -- output -------------------------------------------------------------------------------

    def pump(self, now: float | None = None) -> None:
        """Deliver events to the application, send what is queued, re-arm the timer.

        The application may call into the core from `handle_event` (and from outside,
        e.g. a test or an API call: then it calls `pump()` afterwards).
        """
        if now is None:
            now = self.loop.time()
        ua = self.ua
        # Called from an event's delivery (a new call's first step runs there: B2bua,
        # core/eager.py), a pump only sends what is queued: the running pump delivers the
        # pending events after the current one and re-arms the timer, so no event is
        # delivered inside another's delivery.
        nested = self._pumping
        if not nested:
            self._pumping = True
            try:
                for _ in range(16):  # the application's reactions may raise more events
                    events = ua.events()
                    if not events:
                        break
                    for event in events:
                        self._deliver(event, now)
            finally:
                self._pumping = False
        for data, flow in ua.datagrams_to_send(now):
            self.send(data, flow)
        if not nested:
            self._rearm()

    def _deliver(self, event: UaEvent, now: float) -> None:
        if self.app is not None:
            try:
                self.app.handle_event(event, now)
            except Exception:
                self.stats.internal_errors += 1
                log.exception("SIP application failed on %s", type(event).__name__)
        for hook in self._event_hooks:
            try:
                hook(event)
            except Exception:
                log.exception("SIP event hook failed")

    def send(self, data: bytes, flow: Flow) -> bool:
        if flow.transport == "UDP":
            udp = self._udp.get(6 if ":" in flow.host else 4)
            if udp is not None:
                return udp.send(data, flow.address)
        elif flow.transport == "TCP":
            return self._tcp.send(data, flow.address)
        elif flow.transport == "TLS" and self._tls is not None:
            return self._tls.send(data, flow.address)
        # No such transport here (TLS without a certificate, IPv6 without a v6 socket, WS…):
        # tell the core now, so a transaction fails at once instead of retransmitting into
        # nothing until Timer B.
        self.stats.send_errors += 1
        self.loop.call_soon(self._on_send_failure, flow.transport, flow.address)
        return False

    def _rearm(self) -> None:
        if self._closed:
            return
        deadline = self.ua.next_deadline()
        armed = self._armed
        # Keep the armed handle unless the new deadline is earlier (or none is needed):
        # firing early costs one idle wake-up, re-arming on every message costs more.
        if deadline is None:
            return
        if armed is not None and armed <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._armed = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    # -- shutdown -----------------------------------------------------------------------------

    async def close(self, *, unregister_within: float = 2.0) -> None:
        """Unregister outbound registrations (waiting up to `unregister_within` seconds for
        the registrars' answers), then stop timers and close every socket."""
        if self.ua.registrations and not self._closed:
            done = asyncio.Event()

            def check(_event: object = None) -> None:
                if not self.ua.registrations:
                    done.set()

            self._event_hooks.append(check)
            now = self.loop.time()
            for reg in self.ua.registrations:
                self.ua.stop_registration(reg, now)
            self.pump(now)
            check()  # perhaps nothing was bound: nothing to wait for
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), unregister_within)
            self._event_hooks.remove(check)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for udp in self._udp.values():
            udp.close()
        self._udp.clear()
        await self._tcp.close()
        if self._tls is not None:
            await self._tls.close()
