"""UDP transport: drains a non-blocking socket from `loop.add_reader` (RFC 3261 §18.1, §18.2).

asyncio's `DatagramProtocol` allocates a fresh buffer per datagram and is several times slower
than reading into one preallocated buffer (measured in shared/peers/README.md), so this
transport reads with `recvfrom_into` and writes with `sendto` directly. Sending never blocks:
a full socket buffer drops the datagram (UDP may lose it anyway; the transaction layer
retransmits) and counts a send error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from zvonar.sip.io.stats import TransportStats

__all__ = ["Address", "DatagramReceiver", "UdpTransport", "bind_udp", "strip_brackets"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
DatagramReceiver = Callable[[bytes, Address, bool], None]
"""Called as (data, source, truncated) for each datagram; truncated: it exceeded max_size."""

# Datagrams read per wake-up before yielding to the loop, so one flooding source cannot
# starve timers and other sockets.
_BATCH = 256
# ICMP errors surface on later recvfrom calls of an unconnected UDP socket on Linux; they
# say nothing about the datagram being read, so skip them.
_TRANSIENT = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EINTR})


def strip_brackets(host: str) -> str:
    """ "[::1]" → "::1": sockets want bare IPv6 literals, SIP writes them bracketed (§19.1.1)."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def bind_udp(
    host: str, port: int, *, rcvbuf: int = 4 << 20, sndbuf: int = 4 << 20
) -> socket.socket:
    """A non-blocking UDP socket bound to host:port (port 0: any free port)."""
    host = strip_brackets(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for opt, size in ((socket.SO_RCVBUF, rcvbuf), (socket.SO_SNDBUF, sndbuf)):
            with contextlib.suppress(OSError):  # refused by the kernel: keep its default
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpTransport:
    """One bound UDP socket. `receiver` is called synchronously for every datagram."""

    name = "UDP"
    reliable = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        receiver: DatagramReceiver,
        stats: TransportStats,
        *,
        max_size: int = 65535,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._receiver = receiver
        self._stats = stats
        self.max_size = max_size
        # One byte more than allowed, to tell "exactly max_size" from "truncated".
        self._buf = bytearray(max_size + 1)
        self._view = memoryview(self._buf)
        self._fd = sock.fileno()
        self._closed = False
        addr = sock.getsockname()
        self.local: Address = (addr[0], addr[1])
        loop.add_reader(self._fd, self._drain)

    @property
    def family(self) -> int:
        return self._sock.family

    def _drain(self) -> None:
        recv = self._sock.recvfrom_into
        buf, view, limit = self._buf, self._view, self.max_size
        stats = self._stats
        for _ in range(_BATCH):
            try:
                n, addr = recv(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _TRANSIENT:
                    continue
                log.warning("UDP receive on %s failed: %s", self.local, exc)
                return
            stats.bytes_received += n
            truncated = n > limit
            data = bytes(view[: limit if truncated else n])
            try:
                self._receiver(data, (addr[0], addr[1]), truncated)
            except Exception:  # the runner already guards; this is the last line of defence
                stats.internal_errors += 1
                log.exception("SIP receiver failed on a datagram from %s", addr)

    def send(self, data: bytes, addr: Address) -> bool:
        """Send one datagram; False (and a counted error) if the kernel refused it."""
        if self._closed:
            self._stats.send_errors += 1
            return False
        try:
            self._sock.sendto(data, (strip_brackets(addr[0]), addr[1]))
        except OSError as exc:
            self._stats.send_errors += 1
            log.debug("UDP send to %s failed: %s", addr, exc)
            return False
        self._stats.sent += 1
        self._stats.bytes_sent += len(data)
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._sock.close()
