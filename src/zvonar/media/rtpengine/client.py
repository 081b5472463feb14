"""An asyncio client for rtpengine's ``ng`` protocol over UDP.

The protocol logic (cookies, retransmission, reply matching) is :class:`NgProtocol`; this
module only owns the socket and the retransmission timer. Commands are coroutines named
after the ng commands; each returns the reply dictionary or raises
:class:`~zvonar.media.rtpengine.ng.NgCommandError` / :class:`NgTimeoutError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping

from zvonar.media.engine import EngineClosedError
from zvonar.media.rtpengine.bencode import BValue
from zvonar.media.rtpengine.ng import NgError, NgProtocol, NgTimeoutError, check_reply

__all__ = ["NgClient"]

log = logging.getLogger(__name__)


class NgClient:
    """One UDP socket to one rtpengine ``--listen-ng`` address."""

    def __init__(self, host: str, port: int, *, interval: float = 0.25, attempts: int = 4) -> None:
        self.address = (host, port)
        self._protocol = NgProtocol(interval=interval, attempts=attempts)
        self._futures: dict[str, asyncio.Future[dict[str, BValue]]] = {}
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(self.address)  # replies from anyone else are filtered by the kernel
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self._sock is None or self._loop is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for future in self._futures.values():
            if not future.done():
                future.set_exception(EngineClosedError("ng client closed"))
        self._futures.clear()

    async def command(self, name: str, **params: object) -> dict[str, BValue]:
        return await self.request(name, params)

    async def request(self, name: str, params: Mapping[str, object]) -> dict[str, BValue]:
        if self._sock is None or self._loop is None:
            raise EngineClosedError("ng client not connected")
        loop = self._loop
        cookie, datagram = self._protocol.request(name, params, loop.time())
        future: asyncio.Future[dict[str, BValue]] = loop.create_future()
        self._futures[cookie] = future
        self._send(datagram)
        self._arm()
        try:
            return await future
        finally:
            self._futures.pop(cookie, None)
            self._protocol.cancel(cookie)

    async def ping(self) -> bool:
        reply = await self.command("ping")
        return reply.get("result") == b"pong"

    def _send(self, datagram: bytes) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):  # lost like any UDP datagram; retransmitted
            self._sock.send(datagram)

    def _on_readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                datagram = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable: rtpengine not (yet) listening
                continue
            try:
                reply = self._protocol.receive(datagram)
            except NgError as exc:
                log.warning("bad ng reply from %s: %s", self.address, exc)
                continue
            if reply is None:
                continue
            future = self._futures.get(reply.cookie)
            if future is None or future.done():
                continue
            try:
                future.set_result(check_reply(reply))
            except NgError as exc:
                future.set_exception(exc)

    def _arm(self) -> None:
        loop = self._loop
        if loop is None:
            return
        deadline = self._protocol.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        for datagram in self._protocol.datagrams_to_send(now):
            self._send(datagram)
        for cookie, command in self._protocol.handle_timer(now):
            future = self._futures.get(cookie)
            if future is not None and not future.done():
                future.set_exception(
                    NgTimeoutError(f"no reply from rtpengine {self.address} to {command!r}")
                )
        self._timer = None
        self._arm()
