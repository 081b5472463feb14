"""RTP sockets: binding in a port range, and waking the right endpoint when one is readable.

Two ways to hear about readable sockets (``SocketMux``):

* ``"epoll"`` (Linux, the default there): every RTP socket sits in one private ``epoll``
  set, and only that set's descriptor is registered with the event loop (``add_reader``).
  When it fires, one ``epoll.poll(0)`` lists every ready socket and each endpoint's handler
  runs straight from that list. A relayed call wakes up 100 times a second per leg, so
  skipping the loop's per-descriptor handle and context machinery is what lets one core
  relay hundreds of calls (figures in bench/bench_media_relay.py).
* ``"loop"``: each socket is registered with ``loop.add_reader`` on its own — portable, and
  what any asyncio loop (uvloop included) supports.

Both read with ``recvfrom_into`` into one preallocated buffer: asyncio's DatagramProtocol
allocates a fresh buffer per datagram and measured ~5x slower (shared/peers/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import select
import socket
from collections.abc import Callable

from zvonar.media.engine import AddressFamily, PortsExhaustedError

__all__ = ["PortPool", "SocketMux", "bind_rtp_socket"]

log = logging.getLogger(__name__)

Handler = Callable[[], None]


def bind_rtp_socket(host: str, port: int, *, rcvbuf: int = 256 << 10) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` (port 0: any free port); ``rcvbuf``
    0 keeps the kernel's receive buffer (RTCP: a packet every few seconds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if rcvbuf:
            with contextlib.suppress(OSError):  # capped by the kernel: keep its default
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_pair(host: str, rtp_port: int, rtcp_port: int) -> tuple[socket.socket, socket.socket]:
    """Both sockets of a leg, or neither."""
    rtp = bind_rtp_socket(host, rtp_port)
    try:
        return rtp, bind_rtp_socket(host, rtcp_port, rcvbuf=0)
    except BaseException:
        rtp.close()
        raise


class PortPool:
    """Even RTP ports of ``[low, high]`` (RFC 3550 §11: RTP on even, RTCP on the next odd
    port), handed out in random order so a restarted process does not immediately reuse a
    port a peer still sends to. ``None`` range: let the kernel choose (tests)."""

    def __init__(self, port_range: tuple[int, int] | None) -> None:
        self._free: dict[AddressFamily, list[int]] = {}
        self._range = port_range
        if port_range is not None:
            low, high = port_range
            if not 0 < low <= high <= 65535:
                raise ValueError(f"bad RTP port range {port_range}")

    def _pool(self, family: AddressFamily) -> list[int]:
        pool = self._free.get(family)
        if pool is None:
            if self._range is None:
                pool = []
            else:
                low, high = self._range
                pool = list(range(low + (low & 1), high, 2))  # RTCP's odd port in range too
                random.shuffle(pool)
            self._free[family] = pool
        return pool

    def bind(self, host: str, family: AddressFamily) -> tuple[socket.socket, socket.socket]:
        """An RTP socket and its RTCP socket: an even port and the odd one above it from the
        range (RFC 3550 §11), or two ports the kernel chooses (no range: the SDP then names
        the RTCP port with a=rtcp)."""
        if self._range is None:
            return _bind_pair(host, 0, 0)
        pool = self._pool(family)
        for _ in range(len(pool)):
            port = pool.pop()
            try:
                return _bind_pair(host, port, port + 1)
            except OSError as exc:
                pool.insert(0, port)  # someone else holds it (or its odd port): tried again last
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise PortsExhaustedError(f"no free RTP port pair in {self._range} on {host}")

    def release(self, port: int, family: AddressFamily) -> None:
        if self._range is not None and self._range[0] <= port <= self._range[1]:
            self._pool(family).insert(0, port)  # reused last


class SocketMux:
    """Calls a handler when its socket is readable, by ``epoll`` or by the loop itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mode: str = "auto") -> None:
        if mode == "auto":
            mode = "epoll" if hasattr(select, "epoll") else "loop"
        if mode not in ("epoll", "loop"):
            raise ValueError(f"unknown socket mux mode {mode!r}")
        self.mode = mode
        self._loop = loop
        self._handlers: dict[int, Handler] = {}
        self._epoll: select.epoll | None = None
        if mode == "epoll":
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._dispatch)

    def add(self, fd: int, handler: Handler) -> None:
        self._handlers[fd] = handler
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._loop.add_reader(fd, handler)

    def remove(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is None:
            return
        if self._epoll is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
        else:
            self._loop.remove_reader(fd)

    def _dispatch(self) -> None:
        epoll = self._epoll
        if epoll is None:  # closed
            return
        handlers = self._handlers
        for fd, _events in epoll.poll(0, 1024):
            handler = handlers.get(fd)
            if handler is None:
                continue
            try:
                handler()
            except Exception:  # one bad datagram must not stop every other call
                log.exception("RTP handler failed on fd %d", fd)

    def close(self) -> None:
        for fd in list(self._handlers):
            self.remove(fd)
        if self._epoll is not None:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None
