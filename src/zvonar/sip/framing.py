"""Message framing on stream transports (TCP/TLS): RFC 3261 §18.3, RFC 5626 §3.5.1.

On a stream, Content-Length is mandatory and is the only way to find the end of a
message. A missing, negative or malformed Content-Length, conflicting values, or a
message larger than the limit cannot be recovered from: `feed` raises FramingError and
the caller closes the connection (RFC 4475 §3.1.2.3, §3.3.9).

Keep-alives (RFC 5626 §3.5.1): between messages a double CRLF is a "ping", which the
receiver answers with a single CRLF "pong"; a lone CRLF is a pong. The framer only
counts them; the caller writes `take_pongs()` to the stream and may use
`pongs_received` to confirm its own pings.
"""

from __future__ import annotations

from zvonar.sip.errors import FramingError
from zvonar.sip.message import MAX_MESSAGE_SIZE

__all__ = ["FramingError", "StreamFramer"]

_CRLF = b"\r\n"
_CL_NAMES = (b"content-length", b"l")


def _content_length(head: bytes) -> int:
    """Content-Length of a header block (start line included), per §7.3.1 / §20.14."""
    found: int | None = None
    for line in head.split(_CRLF)[1:]:
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation line, not a header name
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in _CL_NAMES:
            value = value.strip()
            # Digits only (never a sign), and short enough that int() is cheap (RFC 4475 ncl).
            if not value.isdigit() or len(value) > 10:
                raise FramingError(f"bad Content-Length {value[:20]!r}", respond=False)
            if found is not None and int(value) != found:
                raise FramingError("conflicting Content-Length headers", respond=False)
            found = int(value)
    if found is None:
        raise FramingError("Content-Length is mandatory on streams (§18.3)", respond=False)
    return found


class StreamFramer:
    """Cut a byte stream into whole SIP messages. Sans-IO: feed bytes, get messages."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._scan = 0  # where to resume searching for the end of the headers
        self._total: int | None = None  # size of the message being received, once known
        self._half_ping = False
        self._failed: FramingError | None = None
        self._pongs_due = 0
        self.pongs_received = 0
        self.pings_received = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a message."""
        return len(self._buf)

    def take_pongs(self) -> bytes:
        """The CRLF pongs owed for pings received so far (b"" if none); resets the count."""
        out = _CRLF * self._pongs_due
        self._pongs_due = 0
        return out

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every complete message (start line to end of body).

        Raises FramingError on an unrecoverable stream; after that every call raises it.
        """
        if self._failed is not None:
            raise self._failed
        self._buf += data
        try:
            return self._drain()
        except FramingError as exc:
            self._failed = exc
            self._buf.clear()
            raise

    def _keepalives(self) -> bool:
        """Consume CRLF keep-alives at a message boundary; False when more bytes are needed."""
        buf = self._buf
        while True:
            if buf[:2] != _CRLF:
                if buf == b"\r":
                    return False  # maybe the start of a CRLF: wait
                break
            if self._half_ping:
                # The second CRLF of a ping split across reads (its first half was
                # already counted as a pong, harmless: clients ping, servers pong).
                self._half_ping = False
                self.pings_received += 1
                self._pongs_due += 1
                del buf[:2]
            elif buf[:4] == b"\r\n\r\n":
                self.pings_received += 1
                self._pongs_due += 1
                del buf[:4]
            elif buf == b"\r\n\r":
                return False  # wait for the rest of the ping
            else:
                self.pongs_received += 1
                self._half_ping = len(buf) == 2
                del buf[:2]
        if buf:
            self._half_ping = False
        return bool(buf)

    def _drain(self) -> list[bytes]:
        out: list[bytes] = []
        buf = self._buf
        while buf:
            if self._total is None:
                if self._scan == 0 and not self._keepalives():
                    break
                end = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
                if end < 0:
                    self._scan = len(buf)
                    if len(buf) > self.max_size:
                        raise FramingError(
                            f"headers exceed {self.max_size} bytes", 413, respond=False
                        )
                    break
                self._scan = 0
                total = end + 4 + _content_length(bytes(buf[:end]))
                if total > self.max_size:
                    raise FramingError(
                        f"message of {total} bytes exceeds {self.max_size}", 413, respond=False
                    )
                self._total = total
            if len(buf) < self._total:
                break  # clerr over TCP: wait; the caller's idle timeout closes (RFC 4475 §3.1.2.2)
            out.append(bytes(buf[: self._total]))
            del buf[: self._total]
            self._total = None
        return out
