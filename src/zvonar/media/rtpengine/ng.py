"""The rtpengine ``ng`` control protocol over UDP, sans-IO.

Each datagram is ``<cookie> <bencoded dictionary>``: the request dictionary has a
``command`` key, the reply repeats the request's cookie and carries ``result`` (``ok``,
``pong``, ``error`` with ``error-reason``; ``ok`` may add ``warning``). UDP may lose either
datagram, so a request is sent again, unchanged and with the same cookie, until its reply
arrives; rtpengine recognises the cookie and answers a retransmission from its cache
instead of executing the command twice (rtpengine docs, "The ng Control Protocol").

:class:`NgProtocol` keeps the pending requests: :meth:`~NgProtocol.request` returns the
datagram to send, :meth:`~NgProtocol.receive` matches a reply by cookie,
:meth:`~NgProtocol.datagrams_to_send` yields what is due for retransmission at ``now``,
:meth:`~NgProtocol.next_deadline` says when to call again, and
:meth:`~NgProtocol.handle_timer` reports the requests that ran out of attempts. No socket,
no clock: the caller passes ``now``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from zvonar.media.engine import MediaEngineError
from zvonar.media.rtpengine.bencode import BencodeError, BValue, decode, encode

__all__ = [
    "NgCommandError",
    "NgError",
    "NgProtocol",
    "NgReply",
    "NgTimeoutError",
    "as_dict",
    "as_int",
    "as_list",
    "as_text",
    "check_reply",
]


class NgError(MediaEngineError):
    """Base of the ng-protocol errors."""


class NgTimeoutError(NgError):
    """No reply after every retransmission: rtpengine is down or unreachable."""

    status_hint = 503


class NgCommandError(NgError):
    """rtpengine answered ``result: error`` (its ``error-reason`` is the message)."""


@dataclass(frozen=True)
class NgReply:
    cookie: str
    command: str
    body: dict[str, BValue]

    @property
    def result(self) -> str:
        return as_text(self.body.get("result", b""))

    @property
    def warning(self) -> str | None:
        value = self.body.get("warning")
        return None if value is None else as_text(value)


def as_text(value: BValue | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int):
        return str(value)
    raise NgError(f"expected a string in the reply, got {type(value).__name__}")


def as_int(value: BValue | None) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, bytes) and value.strip().lstrip(b"-").isdigit():
        return int(value)
    raise NgError(f"expected an integer in the reply, got {value!r}")


def as_dict(value: BValue | None) -> dict[str, BValue]:
    if isinstance(value, dict):
        return value
    raise NgError(f"expected a dictionary in the reply, got {type(value).__name__}")


def as_list(value: BValue | None) -> list[BValue]:
    if isinstance(value, list):
        return value
    raise NgError(f"expected a list in the reply, got {type(value).__name__}")


@dataclass
class _Pending:
    command: str
    datagram: bytes
    next_send: float
    attempts: int
    interval: float = field(default=0.0)


class NgProtocol:
    """Pending ng requests with retransmission: ``interval`` doubles after each attempt
    (0.25, 0.5, 1 s...) up to ``attempts`` sends; the request fails ``interval`` after the
    last one."""

    def __init__(
        self, *, interval: float = 0.25, attempts: int = 4, prefix: str | None = None
    ) -> None:
        if interval <= 0 or attempts < 1:
            raise ValueError("interval must be positive and attempts at least 1")
        self.interval = interval
        self.attempts = attempts
        # Cookies only need to be unique among our pending requests and across restarts of
        # this process (rtpengine caches replies by cookie for a while).
        self._prefix = prefix if prefix is not None else os.urandom(4).hex()
        self._counter = itertools.count(1)
        self._pending: dict[str, _Pending] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def request(self, command: str, params: Mapping[str, object], now: float) -> tuple[str, bytes]:
        """A new request: (cookie, datagram to send now)."""
        body = dict(params)
        body["command"] = command
        try:
            payload = encode(body)
        except BencodeError as exc:
            raise NgError(f"cannot encode {command!r}: {exc}") from None
        cookie = f"{self._prefix}_{next(self._counter)}"
        datagram = cookie.encode() + b" " + payload
        self._pending[cookie] = _Pending(
            command, datagram, now + self.interval, 1, interval=self.interval
        )
        return cookie, datagram

    def receive(self, datagram: bytes) -> NgReply | None:
        """The reply in ``datagram`` if it answers a pending request (else None: a late
        duplicate, or not ours). Raises :class:`NgError` if it is malformed."""
        cookie_bytes, sep, payload = datagram.partition(b" ")
        if not sep:
            raise NgError("ng datagram without a cookie")
        cookie = cookie_bytes.decode("ascii", "replace")
        pending = self._pending.pop(cookie, None)
        if pending is None:
            return None
        try:
            body = decode(payload)
        except BencodeError as exc:
            raise NgError(f"malformed reply to {pending.command!r}: {exc}") from None
        if not isinstance(body, dict):
            raise NgError(f"reply to {pending.command!r} is not a dictionary")
        return NgReply(cookie, pending.command, body)

    def cancel(self, cookie: str) -> None:
        self._pending.pop(cookie, None)

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(p.next_send for p in self._pending.values())

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Retransmissions due at ``now`` (requests with attempts left)."""
        out = []
        for pending in self._pending.values():
            if pending.next_send <= now and pending.attempts < self.attempts:
                out.append(pending.datagram)
                pending.attempts += 1
                pending.interval *= 2
                pending.next_send = now + pending.interval
        return out

    def handle_timer(self, now: float) -> list[tuple[str, str]]:
        """(cookie, command) of the requests that got no reply to any attempt."""
        expired = [
            (cookie, p.command)
            for cookie, p in self._pending.items()
            if p.next_send <= now and p.attempts >= self.attempts
        ]
        for cookie, _ in expired:
            del self._pending[cookie]
        return expired


def check_reply(reply: NgReply) -> dict[str, BValue]:
    """The reply body, or :class:`NgCommandError` for ``result: error``."""
    result = reply.result
    if result == "error":
        reason = reply.body.get("error-reason", b"unknown error")
        raise NgCommandError(f"rtpengine refused {reply.command!r}: {as_text(reason)}")
    if result not in ("ok", "pong"):
        raise NgCommandError(f"rtpengine answered {reply.command!r} with {result!r}")
    return reply.body
