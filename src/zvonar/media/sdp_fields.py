"""SDP field values (RFC 8866 §5, RFC 3605, RFC 3264 §5.1): the leaves of the SDP model.

Each class validates what it holds when built; most serialize with ``str()`` to the text after
``<type>=``. :mod:`zvonar.media.sdp` assembles them into whole descriptions.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from zvonar.media.errors import SdpParseError

__all__ = [
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "Origin",
    "RtcpAttribute",
    "RtpMap",
    "Timing",
]


def _check_token(value: str, what: str) -> None:
    # RFC 8866 §9: token-like fields are non-empty and contain no whitespace. (Plain ``in``
    # tests: every field of every offer passes here, a generator costs several times more.)
    if not value or " " in value or "\t" in value or "\r" in value or "\n" in value:
        raise SdpParseError(f"invalid {what}: {value!r}")


def _check_text(value: str, what: str) -> None:
    # RFC 8866 §9 "text": any byte but NUL, CR and LF.
    if "\r" in value or "\n" in value or "\x00" in value:
        raise SdpParseError(f"invalid {what}: {value!r}")


def _parse_int(text: str, what: str, *, low: int = 0, high: int | None = None) -> int:
    if not text.isascii() or not text.isdigit():
        raise SdpParseError(f"invalid {what}: {text!r}")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise SdpParseError(f"{what} out of range: {value}")
    return value


class Direction(enum.Enum):
    """The media direction attributes of RFC 3264 §5.1 / RFC 8866 §6.7."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, send: bool, receive: bool) -> Direction:
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(send=self.receives, receive=self.sends)


@dataclass(frozen=True)
class Origin:
    """o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address> (§5.2)."""

    username: str
    session_id: int
    version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __post_init__(self) -> None:
        for value, what in (
            (self.username, "o= username"),
            (self.address, "o= address"),
            (self.nettype, "o= nettype"),
            (self.addrtype, "o= addrtype"),
        ):
            _check_token(value, what)
        if self.session_id < 0 or self.version < 0:
            raise SdpParseError("o= session id and version are non-negative numbers")

    def bumped(self) -> Origin:
        """The origin of a changed description: same session id, version + 1 (RFC 3264 §8)."""
        return dataclasses.replace(self, version=self.version + 1)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """c=<nettype> <addrtype> <connection-address> (§5.7).

    For IP4 multicast the address may carry ``/ttl[/count]``, for IP6 ``/count`` only; these
    are split into ``ttl`` and ``count``. An address of another addrtype is kept whole.
    """

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"
    ttl: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        _check_token(self.address, "c= address")
        _check_token(self.nettype, "c= nettype")
        _check_token(self.addrtype, "c= addrtype")
        if self.addrtype in ("IP4", "IP6") and "/" in self.address:
            raise SdpParseError("c= address must not contain '/' once split")
        if self.ttl is not None and self.addrtype != "IP4":
            raise SdpParseError("c= TTL exists for IP4 multicast only")
        if self.count is not None and self.ttl is None and self.addrtype == "IP4":
            raise SdpParseError("c= IP4 address count needs a TTL before it")
        if (self.ttl is not None and not 0 <= self.ttl <= 255) or (
            self.count is not None and self.count < 1
        ):
            raise SdpParseError("c= TTL or count out of range")

    @property
    def is_null(self) -> bool:
        """The RFC 2543 hold address 0.0.0.0 (RFC 3264 §8.4): send no RTP/RTCP there."""
        return self.addrtype == "IP4" and self.address == "0.0.0.0"  # noqa: S104

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SdpParseError(f"malformed c= line: {value!r}")
        nettype, addrtype, address = parts
        ttl: int | None = None
        count: int | None = None
        if addrtype in ("IP4", "IP6") and "/" in address:
            address, *suffix = address.split("/")
            numbers = [_parse_int(s, "c= multicast suffix") for s in suffix]
            if addrtype == "IP4" and len(numbers) in (1, 2):
                ttl = numbers[0]
                count = numbers[1] if len(numbers) == 2 else None
            elif addrtype == "IP6" and len(numbers) == 1:
                count = numbers[0]
            else:
                raise SdpParseError(f"malformed c= address: {value!r}")
        return cls(address, nettype, addrtype, ttl, count)

    def __str__(self) -> str:
        address = self.address
        if self.ttl is not None:
            address += f"/{self.ttl}"
        if self.count is not None:
            address += f"/{self.count}"
        return f"{self.nettype} {self.addrtype} {address}"


@dataclass(frozen=True)
class Bandwidth:
    """b=<bwtype>:<bandwidth> (§5.8), e.g. AS (kbit/s), TIAS (bit/s, RFC 3890), RS/RR (RFC 3556)."""

    bwtype: str
    value: int

    def __post_init__(self) -> None:
        _check_token(self.bwtype, "b= type")
        if ":" in self.bwtype or self.value < 0:
            raise SdpParseError("invalid b= line")

    @classmethod
    def parse(cls, value: str) -> Bandwidth:
        bwtype, sep, amount = value.partition(":")
        if not sep:
            raise SdpParseError(f"malformed b= line: {value!r}")
        return cls(bwtype, _parse_int(amount.strip(), "b= bandwidth"))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.value}"


@dataclass(frozen=True)
class Timing:
    """t=<start-time> <stop-time> (§5.9, NTP seconds; 0 0 = unbounded) and its r= lines."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop < 0:
            raise SdpParseError("t= times are non-negative")
        for repeat in self.repeats:
            _check_text(repeat, "r= line")
            if not repeat.strip():
                raise SdpParseError("empty r= line")


@dataclass(frozen=True)
class Attribute:
    """a=<name>[:<value>] (§5.13); ``value`` is None for a property attribute (a=sendonly)."""

    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        _check_token(self.name, "attribute name")
        if ":" in self.name:
            raise SdpParseError(f"invalid attribute name: {self.name!r}")
        if self.value is not None:
            _check_text(self.value, "attribute value")

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, sep, value = text.partition(":")
        # Trailing blanks after a property attribute ("a=sendrecv ") are common and harmless.
        return cls(name.rstrip(" \t"), value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class RtpMap:
    """a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>] (§6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        pt_text, _, rest = value.strip().partition(" ")
        parts = rest.strip().split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise SdpParseError(f"malformed rtpmap: {value!r}")
        return cls(
            _parse_int(pt_text, "rtpmap payload type", high=127),
            parts[0],
            _parse_int(parts[1], "rtpmap clock rate", low=1),
            _parse_int(parts[2], "rtpmap channels", low=1) if len(parts) == 3 else None,
        )

    def matches(self, encoding: str, clock_rate: int) -> bool:
        # Encoding names are case-insensitive (RFC 4855 §3).
        return self.encoding.lower() == encoding.lower() and self.clock_rate == clock_rate

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


@dataclass(frozen=True)
class RtcpAttribute:
    """a=rtcp:<port> [<nettype> <addrtype> <connection-address>] (RFC 3605 §2.1)."""

    port: int
    address: str | None = None
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def parse(cls, value: str) -> RtcpAttribute:
        parts = value.split()
        if len(parts) == 1:
            return cls(_parse_int(parts[0], "rtcp port", high=65535))
        if len(parts) == 4:
            port = _parse_int(parts[0], "rtcp port", high=65535)
            return cls(port, parts[3], parts[1], parts[2])
        raise SdpParseError(f"malformed a=rtcp: {value!r}")

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"
