"""The SIP layer's error tree.

Every protocol error carries the SIP status code an element would answer with
(`status_hint`), so callers translate errors to responses in one place.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "DialogError",
    "FramingError",
    "SipError",
    "SipParseError",
    "TransactionError",
]


class SipError(Exception):
    """Base class of every error raised by zvonar.sip."""

    default_status: int = 500

    def __init__(self, reason: str = "", status_hint: int | None = None) -> None:
        super().__init__(reason)
        self.reason: str = reason
        self.status_hint: int = self.default_status if status_hint is None else status_hint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status_hint={self.status_hint})"


class SipParseError(SipError):
    """The bytes are not a well-formed SIP message (RFC 3261 §7, §25).

    `status_hint` is the response the RFC (or the RFC 4475 torture tests) expects
    for a request: 400 by default, 505 for an unsupported SIP version, 413 for an
    oversize message. `respond` is False when no response may be sent at all
    (e.g. a negative Content-Length, RFC 4475 §3.1.2.3): the transport drops the
    datagram or closes the stream.
    """

    default_status = 400

    def __init__(
        self, reason: str = "", status_hint: int | None = None, *, respond: bool = True
    ) -> None:
        super().__init__(reason, status_hint)
        self.respond: bool = respond


class FramingError(SipParseError):
    """A stream (TCP/TLS) can no longer be framed: missing or bad Content-Length, message
    too large (§18.3). Fatal: the caller closes the connection, no response is sent."""


class TransactionError(SipError):
    """A transaction-layer failure (RFC 3261 §17), e.g. 481 for no matching transaction."""

    default_status = 500


class DialogError(SipError):
    """A dialog-layer failure (RFC 3261 §12): 481 no dialog, 491 glare, 500 bad CSeq…"""

    default_status = 481


class AuthError(SipError):
    """Digest authentication failure (RFC 3261 §22)."""

    default_status = 403
