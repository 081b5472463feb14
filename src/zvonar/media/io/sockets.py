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
import collections
import contextlib
import errno
import logging
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from zvonar.media.engine import AddressFamily, PortsExhaustedError

__all__ = ["PortPool", "SocketMux", "bind_rtp_socket"]

log = logging.getLogger(__name__)

Handler = Callable[[], None]
Pair = tuple[socket.socket, socket.socket]  # RTP, RTCP

# Seconds a released pair waits before it is handed out again: a peer still streaming RTP
# (a packet every 20-60 ms) has sent by then.
WARM_QUIET = 0.5
WARM_MAX_UNRANGED = 64  # released pairs kept open per address without a port range (tests)


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
    port a peer still sends to. ``None`` range: let the kernel choose (tests).

    A released pair stays open, "warm", and is handed out again once it has been quiet for
    ``quiet`` seconds: a leg would otherwise pay two ``socket``, ``bind`` and ``close``
    each, about half of its set-up and release (bench/bench_media_legs.py). A warm pair
    that received anything while it waited is closed instead of handed out: its last peer
    still sends, and a new call on that port could latch onto it (a check a freshly bound
    port never gets). Within a range every pair may wait warm (they are the range's ports:
    the descriptor budget of docs/configuration.md already counts them); without one, at
    most ``warm_max`` pairs wait and the oldest is closed beyond that."""

    def __init__(
        self,
        port_range: tuple[int, int] | None,
        *,
        quiet: float = WARM_QUIET,
        warm_max: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free: dict[AddressFamily, list[int]] = {}
        self._warm: dict[tuple[str, AddressFamily], collections.deque[_WarmPair]] = {}
        self._range = port_range
        self._quiet = quiet
        if warm_max is None:
            warm_max = (port_range[1] - port_range[0] + 1) // 2 if port_range else WARM_MAX_UNRANGED
        self._warm_max = warm_max
        self._clock = clock
        self._drain = bytearray(2048)
        self.reused = 0  # pairs handed out warm (bench, tests)
        self.discarded = 0  # warm pairs closed because their old peer still sent
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
        the RTCP port with a=rtcp). A warm pair that has been quiet long enough comes
        first; when the range has no free pair left, any warm pair that is silent."""
        warm = self._warm.get((host, family))
        if warm:
            settled = self._clock() - self._quiet
            while warm and warm[0].since <= settled:
                pair = self._take(warm.popleft(), family)
                if pair is not None:
                    return pair
        try:
            return self._bind_cold(host, family)
        except PortsExhaustedError:
            while warm:
                pair = self._take(warm.popleft(), family)
                if pair is not None:
                    return pair
            raise

    def _bind_cold(self, host: str, family: AddressFamily) -> tuple[socket.socket, socket.socket]:
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

    def _take(self, pair: _WarmPair, family: AddressFamily) -> Pair | None:
        """The warm pair if nothing reached it while it waited, else ``None`` (closed)."""
        if self._silent(pair.rtp) and self._silent(pair.rtcp):
            self.reused += 1
            return pair.rtp, pair.rtcp
        self.discarded += 1
        self._close(pair, family)
        return None

    def _silent(self, sock: socket.socket) -> bool:
        try:
            sock.recv_into(self._drain)
        except BlockingIOError:
            return True
        except OSError:  # a pending ICMP error (our last datagram hit a closed port): not clean
            return False
        return False

    def release(self, rtp: socket.socket, rtcp: socket.socket, family: AddressFamily) -> None:
        """A leg's pair is no longer used: kept warm, or closed beyond ``warm_max``."""
        try:
            host = rtp.getsockname()[0]
        except OSError:  # closed already
            self._close(_WarmPair(rtp, rtcp, 0.0), family)
            return
        warm = self._warm.setdefault((host, family), collections.deque())
        warm.append(_WarmPair(rtp, rtcp, self._clock()))
        while len(warm) > self._warm_max:
            self._close(warm.popleft(), family)

    def _close(self, pair: _WarmPair, family: AddressFamily) -> None:
        port: int | None = None
        with contextlib.suppress(OSError):
            port = pair.rtp.getsockname()[1]
        pair.rtp.close()
        pair.rtcp.close()
        span = self._range
        if port is not None and span is not None and span[0] <= port <= span[1]:
            self._pool(family).insert(0, port)  # reused last

    @property
    def warm(self) -> int:
        return sum(len(pairs) for pairs in self._warm.values())

    def close(self) -> None:
        """Close every warm pair (the engine closes)."""
        for (_host, family), pairs in self._warm.items():
            while pairs:
                self._close(pairs.popleft(), family)


@dataclass(slots=True)
class _WarmPair:
    rtp: socket.socket
    rtcp: socket.socket
    since: float


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
