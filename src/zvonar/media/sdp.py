"""SDP session descriptions (RFC 8866, which obsoletes RFC 4566): parse and serialize.

The model is a tree of frozen dataclasses that mirrors the grammar of RFC 8866 §9::

    session-description = v= o= s= [i=] [u=] *e= *p= [c=] *b= 1*(t= *r=) [z=] [k=] *a=
                          *media-description
    media-description   = m= [i=] *c= *b= [k=] *a=

Parsing is lenient where real peers are sloppy (LF-only line ends, fields out of order inside a
section, lines of an unknown type, which are kept verbatim) and strict where a wrong guess would
misroute media (v=, o=, c=, m=, t= must be well-formed). Serializing writes the canonical order
with CRLF line ends, so ``parse_sdp(sd.serialize()) == sd`` for every description and
``parse_sdp(text).serialize() == text`` for every text already in canonical form.

Attributes are kept in wire order as (name, value) pairs, unknown ones included; typed views
(``rtpmap``, ``fmtp``, ``ptime``, ``rtcp`` of RFC 3605, the direction attributes) parse on
demand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zvonar.media.errors import SdpParseError
from zvonar.media.sdp_fields import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    Origin,
    RtcpAttribute,
    RtpMap,
    Timing,
    _check_text,
    _check_token,
    _parse_int,
)

__all__ = [
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "RtcpAttribute",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "parse_sdp",
]

_CRLF = "\r\n"
_DIRECTION_NAMES = frozenset(d.value for d in Direction)


class _AttributeMixin:
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> str | None:
        """Value of the first attribute ``name`` ("" for a property attribute), or None."""
        for attr in self.attributes:
            if attr.name == name:
                return "" if attr.value is None else attr.value
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [a.value or "" for a in self.attributes if a.name == name]

    def has_attribute(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    @property
    def direction_attribute(self) -> Direction | None:
        """The explicit direction attribute of this level, if any (RFC 3264 §5.1)."""
        for attr in self.attributes:
            if attr.name in _DIRECTION_NAMES and attr.value is None:
                return Direction(attr.name)
        return None


@dataclass(frozen=True)
class MediaDescription(_AttributeMixin):
    """One m= section: m=<media> <port>[/<number of ports>] <proto> <fmt> ... (§5.14)."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    extra_lines: tuple[tuple[str, str], ...] = ()  # lines of an unknown type, kept verbatim

    def __post_init__(self) -> None:
        _check_token(self.media, "m= media")
        _check_token(self.proto, "m= proto")
        if not 0 <= self.port <= 65535:
            raise SdpParseError(f"m= port out of range: {self.port}")
        if self.port_count is not None and self.port_count < 1:
            raise SdpParseError("m= number of ports must be positive")
        if not self.formats:
            raise SdpParseError("m= line needs at least one format")  # RFC 8866 §5.14
        for fmt in self.formats:
            _check_token(fmt, "m= format")
        for text in (self.information, self.key):
            if text is not None:
                _check_text(text, "m-level field")
        _check_extra(self.extra_lines)

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    @property
    def is_rejected(self) -> bool:
        """Port 0 marks a rejected or disabled stream (RFC 3264 §6, §8.2)."""
        return self.port == 0

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload type numbers (RTP profiles only; others are skipped)."""
        return [int(f) for f in self.formats if f.isascii() and f.isdigit() and int(f) < 128]

    def rtpmaps(self) -> dict[int, RtpMap]:
        """The a=rtpmap of each payload type (the first one wins). A malformed rtpmap (real
        peers send ``a=rtpmap:31 LPC``) is skipped: its format is then simply unknown.

        Parsed once per description (it is immutable; negotiation asks for every payload
        type); each call returns a fresh dict."""
        cached: dict[int, RtpMap] | None = self.__dict__.get("_rtpmaps")
        if cached is None:
            cached = {}
            for value in self.attribute_values("rtpmap"):
                try:
                    rtpmap = RtpMap.parse(value)
                except SdpParseError:
                    continue
                cached.setdefault(rtpmap.payload_type, rtpmap)
            self.__dict__["_rtpmaps"] = cached  # a cache, not a field: eq/hash/repr ignore it
        return dict(cached)

    def fmtp(self, payload_type: int) -> str | None:
        """Format parameters of a=fmtp:<pt> <params> (§6.15), or None."""
        for value in self.attribute_values("fmtp"):
            fmt, _, params = value.partition(" ")
            if fmt == str(payload_type):
                return params.strip()
        return None

    @property
    def ptime(self) -> float | None:
        """a=ptime in milliseconds (§6.4); None when absent or unreadable."""
        return _float_attr(self.attribute("ptime"))

    @property
    def maxptime(self) -> float | None:
        """a=maxptime in milliseconds (§6.5)."""
        return _float_attr(self.attribute("maxptime"))

    @property
    def rtcp(self) -> RtcpAttribute | None:
        value = self.attribute("rtcp")
        return None if value is None else RtcpAttribute.parse(value)

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        out.extend(f"c={c}" for c in self.connections)
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"{t}={v}" for t, v in self.extra_lines)
        out.extend(f"a={a}" for a in self.attributes)
        return out


@dataclass(frozen=True)
class SessionDescription(_AttributeMixin):
    """A whole SDP body (RFC 8866 §5)."""

    origin: Origin
    session_name: str = "-"
    media: tuple[MediaDescription, ...] = ()
    connection: Connection | None = None
    timings: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    zone: str | None = None
    key: str | None = None
    extra_lines: tuple[tuple[str, str], ...] = ()
    version: int = 0

    def __post_init__(self) -> None:
        if self.version != 0:
            raise SdpParseError("only SDP version 0 exists (RFC 8866 §5.1)")
        if not self.timings:
            raise SdpParseError("a session needs at least one t= line (RFC 8866 §5.9)")
        _check_text(self.session_name, "s= line")
        for text in (self.information, self.uri, self.zone, self.key, *self.emails, *self.phones):
            if text is not None:
                _check_text(text, "session-level field")
        _check_extra(self.extra_lines)

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The c= that applies to ``media``: its own, else the session's (RFC 8866 §5.7)."""
        return media.connection or self.connection

    def direction_for(self, media: MediaDescription) -> Direction:
        """Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1)."""
        return media.direction_attribute or self.direction_attribute or Direction.SENDRECV

    def bumped(self) -> SessionDescription:
        """The same description with o= version + 1, as a changed re-offer needs (RFC 3264 §8)."""
        return dataclasses.replace(self, origin=self.origin.bumped())

    def serialize(self) -> str:
        out = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for timing in self.timings:
            out.append(f"t={timing.start} {timing.stop}")
            out.extend(f"r={r}" for r in timing.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"{t}={v}" for t, v in self.extra_lines)
        out.extend(f"a={a}" for a in self.attributes)
        for media in self.media:
            out.extend(media.lines())
        return _CRLF.join(out) + _CRLF

    def to_bytes(self) -> bytes:
        return self.serialize().encode("utf-8")

    def __str__(self) -> str:
        return self.serialize()


def _check_extra(lines: tuple[tuple[str, str], ...]) -> None:
    for type_, value in lines:
        if len(type_) != 1 or not type_.isascii() or not type_.isalpha() or type_ in _KNOWN:
            raise SdpParseError(f"invalid extra line type {type_!r}")
        _check_text(value, "line")


def _float_attr(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number > 0 else None


_KNOWN = frozenset("vosiuepcbtrzkam")


def parse_sdp(data: str | bytes) -> SessionDescription:
    """Parse an SDP body; raise :class:`SdpParseError` on a malformed one."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpParseError("SDP body is not UTF-8") from exc
    lines = [line[:-1] if line.endswith("\r") else line for line in data.split("\n")]
    lines = [line for line in lines if line.strip()]  # tolerate blank lines / trailing CRLFs
    if not lines or lines[0] != "v=0":
        raise SdpParseError("an SDP body starts with v=0 (RFC 8866 §5.1)")
    session = _Section()
    sections = [session]
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not line[0].isascii() or not line[0].islower():
            raise SdpParseError(f"malformed SDP line: {line!r}")
        type_, value = line[0], line[2:]
        if type_ == "m":
            sections.append(_Section(value))
        else:
            sections[-1].add(type_, value)
    return session.build_session([s.build_media() for s in sections[1:]])


class _Section:
    """Collects the lines of one section in any order before building the dataclass."""

    def __init__(self, m_line: str | None = None) -> None:
        self.m_line = m_line
        self.fields: dict[str, list[str]] = {}
        self.timings: list[Timing] = []
        self.attributes: list[Attribute] = []
        self.extra: list[tuple[str, str]] = []

    def add(self, type_: str, value: str) -> None:
        if type_ == "a":
            self.attributes.append(Attribute.parse(value))
        elif type_ == "t":
            if self.m_line is not None:
                raise SdpParseError("t= inside a media section")
            parts = value.split()
            if len(parts) != 2:
                raise SdpParseError(f"malformed t= line: {value!r}")
            start, stop = (_parse_int(p, "t= time") for p in parts)
            self.timings.append(Timing(start, stop))
        elif type_ == "r":
            if not self.timings:
                raise SdpParseError("r= without a preceding t=")
            last = self.timings[-1]
            self.timings[-1] = dataclasses.replace(last, repeats=(*last.repeats, value))
        elif type_ in _KNOWN:
            self.fields.setdefault(type_, []).append(value)
        else:
            self.extra.append((type_, value))

    def single(self, type_: str) -> str | None:
        values = self.fields.get(type_, [])
        if len(values) > 1:
            raise SdpParseError(f"more than one {type_}= line in a section")
        return values[0] if values else None

    def build_session(self, media: list[MediaDescription]) -> SessionDescription:
        for type_ in self.fields:
            if type_ not in "osiuepcbzk":
                raise SdpParseError(f"{type_}= line at session level")
        origin_text = self.single("o")
        if origin_text is None or self.single("s") is None:
            raise SdpParseError("o= and s= are mandatory (RFC 8866 §5)")
        parts = origin_text.split()
        if len(parts) != 6:
            raise SdpParseError(f"malformed o= line: {origin_text!r}")
        origin = Origin(
            parts[0],
            _parse_int(parts[1], "o= session id"),
            _parse_int(parts[2], "o= session version"),
            parts[5],
            parts[3],
            parts[4],
        )
        connection = self.single("c")
        return SessionDescription(
            origin=origin,
            session_name=self.single("s") or "",
            media=tuple(media),
            connection=None if connection is None else Connection.parse(connection),
            timings=tuple(self.timings),
            attributes=tuple(self.attributes),
            information=self.single("i"),
            uri=self.single("u"),
            emails=tuple(self.fields.get("e", ())),
            phones=tuple(self.fields.get("p", ())),
            bandwidths=tuple(Bandwidth.parse(b) for b in self.fields.get("b", ())),
            zone=self.single("z"),
            key=self.single("k"),
            extra_lines=tuple(self.extra),
        )

    def build_media(self) -> MediaDescription:
        if self.m_line is None:  # the session section never gets here
            raise SdpParseError("internal: not a media section")
        for type_ in self.fields:
            if type_ not in "icbk":
                raise SdpParseError(f"{type_}= line inside a media section")
        parts = self.m_line.split()
        if len(parts) < 4:
            raise SdpParseError(f"malformed m= line: {self.m_line!r}")
        port_text, _, count_text = parts[1].partition("/")
        return MediaDescription(
            media=parts[0],
            port=_parse_int(port_text, "m= port", high=65535),
            proto=parts[2],
            formats=tuple(parts[3:]),
            port_count=_parse_int(count_text, "m= port count", low=1) if count_text else None,
            information=self.single("i"),
            connections=tuple(Connection.parse(c) for c in self.fields.get("c", ())),
            bandwidths=tuple(Bandwidth.parse(b) for b in self.fields.get("b", ())),
            key=self.single("k"),
            attributes=tuple(self.attributes),
            extra_lines=tuple(self.extra),
        )
