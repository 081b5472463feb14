"""SIP messages: parsing, header access, serialization, responses (RFC 3261 §7, §8.2.6).

Parsing is lazy: `parse_message` reads the start line, splits and unfolds header lines
(§7.3.1), frames the body by Content-Length (§18.3, §20.14) and parses only what is needed
to answer the request (Via, From, To, Call-ID, CSeq, §8.1.1). Everything else is parsed on
first access and cached on the (frozen) message.

`classify_datagram` is the single place that decides, for one UDP datagram, between
"process it", "answer with this error response" and "drop it silently" (RFC 4475).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from zvonar.sip._header_access import HeaderAccess, HeaderList, check_header
from zvonar.sip._reasons import REASONS
from zvonar.sip.errors import SipParseError
from zvonar.sip.headers import (
    _KEY_CACHE,
    TOKEN,
    NameAddr,
    Via,
    canonical_name,
    header_key,
    parse_cseq,
    parse_name_addr,
    parse_via,
    parse_via_list,
)
from zvonar.sip.uri import AbsoluteUri, SipUri, Uri, parse_uri

__all__ = [
    "MAX_MESSAGE_SIZE",
    "REASONS",
    "Classified",
    "Drop",
    "ParsedOk",
    "Reject",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "classify_datagram",
    "make_response",
    "parse_message",
    "validate_message",
]

MAX_MESSAGE_SIZE = 65536

# §7.3.1: a CRLF followed by SP/HTAB continues the header value; replace it by one SP.
# (Whitespace before the CRLF stays: it is LWS too, and a leading "[ \t]*" would make the
# substitution quadratic on long blank runs.)
_FOLD = re.compile(r"\r\n[ \t]+")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# §7.3.1 + RFC 4475 §3.3.8: these must appear at most once.
_SINGLE = ("to", "from", "call-id", "cseq", "max-forwards", "content-type")
_REQUIRED = ("via", "from", "to", "call-id", "cseq")
# media-type = m-type SLASH m-subtype *(SEMI m-parameter)  (§20.15)
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*/[ \t]*[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]*;.*)?", re.DOTALL
)


@dataclass(frozen=True, eq=False)
class SipRequest(HeaderAccess):
    method: str  # case-sensitive token as received (§7.1)
    uri: Uri
    headers: HeaderList
    body: bytes = b""
    version: str = "SIP/2.0"

    def __post_init__(self) -> None:
        # Validated when built (a start line is never injectable); headers are checked
        # by the mutators and by parse_message.
        if not TOKEN.fullmatch(self.method):
            raise ValueError(f"bad method {self.method!r}")

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    # Narrow the return types of the copy helpers for callers.
    def with_header(self, name: str, value: str) -> SipRequest:
        return super().with_header(name, value)  # type: ignore[return-value]

    def adding_header(self, name: str, value: str, first: bool = False) -> SipRequest:
        return super().adding_header(name, value, first)  # type: ignore[return-value]

    def without_header(self, name: str) -> SipRequest:
        return super().without_header(name)  # type: ignore[return-value]

    def with_body(self, body: bytes, content_type: str | None = None) -> SipRequest:
        return super().with_body(body, content_type)  # type: ignore[return-value]

    def with_top_via(self, via: Via) -> SipRequest:
        return super().with_top_via(via)  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class SipResponse(HeaderAccess):
    status: int
    reason: str
    headers: HeaderList
    body: bytes = b""
    version: str = "SIP/2.0"

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise ValueError(f"status {self.status} out of range")
        if "\r" in self.reason or "\n" in self.reason:
            raise ValueError("reason phrase with CR/LF")

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def with_header(self, name: str, value: str) -> SipResponse:
        return super().with_header(name, value)  # type: ignore[return-value]

    def adding_header(self, name: str, value: str, first: bool = False) -> SipResponse:
        return super().adding_header(name, value, first)  # type: ignore[return-value]

    def without_header(self, name: str) -> SipResponse:
        return super().without_header(name)  # type: ignore[return-value]

    def with_body(self, body: bytes, content_type: str | None = None) -> SipResponse:
        return super().with_body(body, content_type)  # type: ignore[return-value]


SipMessage: TypeAlias = SipRequest | SipResponse


def _split_head(data: bytes, max_size: int) -> tuple[list[str], int]:
    """Start line + unfolded header lines, and the offset where the body starts."""
    if len(data) > max_size:
        raise SipParseError(f"message of {len(data)} bytes exceeds the {max_size} limit", 413)
    start = 0
    while data.startswith(b"\r\n", start):  # §7.5: ignore CRLFs before the start line
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise SipParseError("no empty line after the headers")
    head = data[start:end].decode("utf-8", "surrogateescape")
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD.sub(" ", head)
    lines = head.split("\r\n")
    n = len(lines) - 1
    if head.count("\r") != n or head.count("\n") != n:
        raise SipParseError("bare CR or LF in the header section")
    return lines, end + 4


def _version_error(version: str) -> SipParseError:
    if _VERSION.fullmatch(version):
        return SipParseError(f"unsupported version {version!r}", 505)  # §8.2.2 … 505
    return SipParseError(f"bad SIP version {version!r}")


def parse_message(
    data: bytes | bytearray | memoryview, *, max_size: int = MAX_MESSAGE_SIZE
) -> SipMessage:
    """Parse one message (a whole datagram, or one message framed by StreamFramer).

    Raises SipParseError with the status an element should answer (see module doc).
    Bytes after Content-Length are ignored (RFC 4475 §3.1.1.8); without Content-Length
    the body is the rest of the datagram (§18.3).
    """
    if type(data) is not bytes:
        data = bytes(data)  # bytearray / memoryview from a transport buffer
    lines, body_start = _split_head(data, max_size)
    headers: list[tuple[str, str]] = []
    # Tuples, not lists: a message can live 32 s in a transaction, and CPython's GC
    # untracks tuples of strings after one pass, lists never (fewer objects to re-walk).
    index: dict[str, tuple[str, ...]] = {}
    repeated: dict[str, list[str]] = {}
    known = _KEY_CACHE.get
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"header line without colon: {line[:60]!r}")
        key = known(name)
        if key is None:
            # HCOLON allows LWS before ":" (§25.1); header_key validates the token.
            name = name.rstrip(" \t")
            key = header_key(name)
        value = value.strip(" \t")
        headers.append((name, value))
        values = index.get(key)
        if values is None:
            index[key] = (value,)
        else:  # repeated header: collect in a list (linear time), tuple at the end
            more = repeated.get(key)
            if more is None:
                repeated[key] = more = list(values)
            more.append(value)
    for key, more in repeated.items():
        index[key] = tuple(more)

    first = lines[0]
    msg: SipMessage
    if first[:4].upper() == "SIP/":
        parts = first.split(" ", 2)
        if parts[0].upper() != "SIP/2.0":
            raise _version_error(parts[0])
        version = "SIP/2.0"  # §7.1: case-insensitive; we always send upper case
        code = parts[1] if len(parts) > 1 else ""
        if len(code) != 3 or not (code.isdigit() and code.isascii()) or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status code {code[:20]!r}")
        body = _frame_body(data, body_start, index)
        reason = parts[2] if len(parts) > 2 else ""
        msg = SipResponse(int(code), reason, tuple(headers), body, version)
    else:
        # §7.1: Method SP Request-URI SP SIP-Version — exactly single spaces; RFC 4475
        # §3.1.2.8-10 lets us reject extra LWS, and we do.
        parts = first.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SipParseError("malformed request line")
        method, uri_text, version = parts
        if version != "SIP/2.0":
            if version.upper() != "SIP/2.0":
                raise _version_error(version)
            version = "SIP/2.0"
        if not TOKEN.fullmatch(method):
            raise SipParseError(f"bad method {method[:40]!r}")
        uri = parse_uri(uri_text)
        body = _frame_body(data, body_start, index)
        msg = SipRequest(method, uri, tuple(headers), body, version)
    cache = msg.__dict__
    cache["_index"] = index

    for key in _REQUIRED:
        if key not in index:
            raise SipParseError(f"missing {canonical_name(key)} header")
    for key in _SINGLE:
        values = index.get(key)
        if values is not None and len(values) > 1:
            raise SipParseError(f"more than one {canonical_name(key)} header")
    call_id = index["call-id"][0]
    if not call_id or len(call_id.split()) != 1:
        raise SipParseError("bad Call-ID")
    # Parse what a response needs now, so a broken message fails here rather than deep in
    # a layer above; the results fill the accessors' caches.
    cache["call_id"] = call_id
    cache["cseq"] = cseq = parse_cseq(index["cseq"][0])
    top = index["via"][0]
    cache["top_via"] = parse_via_list(top)[0] if "," in top else parse_via(top)
    cache["from_"] = parse_name_addr(index["from"][0])
    cache["to"] = parse_name_addr(index["to"][0])
    if isinstance(msg, SipRequest) and cseq.method != msg.method:
        raise SipParseError("CSeq method does not match the request method")  # §8.1.1.5
    return msg


def _frame_body(data: bytes, body_start: int, index: dict[str, tuple[str, ...]]) -> bytes:
    cls = index.get("content-length")
    if cls is None:
        return data[body_start:]
    text = cls[0]
    if len(cls) > 1 and len({v.lstrip("0") for v in cls}) > 1:
        raise SipParseError("conflicting Content-Length headers")  # RFC 4475 §3.3.9
    if not (text.isdigit() and text.isascii()):
        if text.startswith("-"):
            # RFC 4475 §3.1.2.3: never use it as a size; discard, no response.
            raise SipParseError("negative Content-Length", respond=False)
        raise SipParseError(f"bad Content-Length {text[:20]!r}")
    available = len(data) - body_start
    if len(text) > 10 or int(text) > available:
        raise SipParseError("Content-Length larger than the body")  # RFC 4475 §3.1.2.2
    return data[body_start : body_start + int(text)]


def validate_message(msg: SipMessage) -> None:
    """Deeper checks than parse_message: every list and scalar header an element relies on.

    Raises SipParseError (400) for bad Via / Contact / Route / Record-Route values,
    out-of-range Max-Forwards / Expires, a bad Content-Type, or headers in the
    Request-URI (RFC 4475 §3.1.2.11).
    """
    # Only the headers present are parsed: an absent one reads as [] / None anyway, and not
    # caching those empty results keeps long-lived messages small.
    index = msg._index
    msg.vias  # noqa: B018
    if "contact" in index:
        msg.contacts  # noqa: B018
    if "route" in index:
        msg.routes  # noqa: B018
    if "record-route" in index:
        msg.record_routes  # noqa: B018
    if "max-forwards" in index:
        msg.max_forwards  # noqa: B018
    if "expires" in index:
        msg.expires  # noqa: B018
    ctype = msg.content_type
    if ctype is not None and not _MEDIA_TYPE.fullmatch(ctype):
        raise SipParseError(f"bad Content-Type {ctype[:40]!r}")
    if isinstance(msg, SipRequest) and isinstance(msg.uri, SipUri) and msg.uri.headers:
        # §19.1.5: headers are not allowed in a Request-URI; never turn them into headers.
        raise SipParseError("Request-URI carries URI headers")


def _has_tag(to_value: str) -> bool:
    try:
        return parse_name_addr(to_value).has_param("tag")
    except SipParseError:
        return re.search(r";[ \t]*tag[ \t]*=", to_value, re.IGNORECASE) is not None


# §8.2.6.2: the headers a response copies from its request, with their canonical names, and
# the request's cached parses that stay valid for the copy (the values are copied as is).
_COPIED = tuple((key, canonical_name(key)) for key in ("via", "from", "to", "call-id", "cseq"))
_CARRIED = (("call_id", "call-id"), ("cseq", "cseq"), ("from_", "from"), ("top_via", "via"))


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response per §8.2.6.2: copy Via (all, in order), From, To, Call-ID and CSeq.

    `to_tag` is added to To unless To already has a tag. Works on the partial request
    of a `Reject` too (values are copied raw). `body` goes in as is (serialize() writes
    Content-Length; pass Content-Type in `headers`).

    The response comes with its header index and the request's parsed From, Call-ID,
    CSeq and Via (and To, plus the new tag) already in its caches: a layer reading them
    back does not parse the same text again.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} out of range")
    index = request._index
    cache = request.__dict__
    parsed_to: NameAddr | None = cache.get("to") if len(index.get("to", ())) == 1 else None
    out: list[tuple[str, str]] = []
    resp_index: dict[str, tuple[str, ...]] = {}
    tagged = False
    for key, name in _COPIED:
        values = index.get(key)
        if not values:
            continue
        if key == "to" and to_tag is not None:
            if len(values) == 1 and parsed_to is not None:
                tagged = not parsed_to.has_param("tag")  # the cached parse of this very To
                if tagged:
                    values = (f"{values[0]};tag={to_tag}",)
            else:
                parsed_to = None
                values = tuple(v if _has_tag(v) else f"{v};tag={to_tag}" for v in values)
        resp_index[key] = values
        out += [(name, v) for v in values]
    extra: set[str] = set()
    for name, value in headers:
        check_header(name, value)
        out.append((name, value))
        key = header_key(name)
        extra.add(key)
        slot = resp_index.get(key)
        resp_index[key] = (value,) if slot is None else (*slot, value)
    if reason is None:
        reason = REASONS.get(status) or REASONS.get(status // 100 * 100, "Unknown")
    response = SipResponse(status, reason, tuple(out), body)
    fill = response.__dict__
    fill["_index"] = resp_index
    for attr, key in _CARRIED:
        if attr in cache and key not in extra:
            fill[attr] = cache[attr]
    if "vias" in cache and "via" not in extra:
        fill["vias"] = list(cache["vias"])
    if parsed_to is not None and "to" not in extra and "to" in resp_index:
        if not tagged:
            fill["to"] = parsed_to
        elif to_tag is not None and TOKEN.fullmatch(to_tag):
            # ";tag=" + a token parses to exactly this (§25.1 tag-param = "tag" EQUAL token).
            params = (*parsed_to.params, ("tag", to_tag))
            fill["to"] = NameAddr(parsed_to.display_name, parsed_to.uri, params)
    return response


# -- datagram classification ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedOk:
    """The datagram is a message to process."""

    message: SipMessage


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer `request` with `status`, statelessly; `reason` says why (for logs)."""

    status: int
    reason: str
    request: SipRequest

    def response(self, to_tag: str | None = None) -> SipResponse:
        """The error response. Without `to_tag`, a tag derived from the request is used,
        so a retransmitted request gets the same answer (stateless UAS, §8.2.7)."""
        if to_tag is None:
            seed = "\0".join(
                self.request.header(n) or "" for n in ("call-id", "from", "cseq", "via")
            )
            digest = hashlib.blake2s(seed.encode("utf-8", "surrogateescape"), digest_size=5)
            to_tag = "z" + digest.hexdigest()
        return make_response(self.request, self.status, to_tag=to_tag)


@dataclass(frozen=True, slots=True)
class Drop:
    """Discard silently: a broken response, an unanswerable request, or a keep-alive."""

    reason: str


Classified: TypeAlias = ParsedOk | Reject | Drop


def _partial_request(data: bytes, max_size: int) -> SipRequest | None:
    """A best-effort request with the raw headers, only good for building an error response."""
    data = data[:max_size].lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    head = (data if end < 0 else data[:end]).decode("utf-8", "surrogateescape")
    lines = _FOLD.sub(" ", head).split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not TOKEN.fullmatch(parts[0]) or parts[0].upper().startswith("SIP/"):
        return None
    method = parts[0]
    try:
        uri: Uri = parse_uri(parts[1])
    except SipParseError:
        uri = AbsoluteUri("", parts[1])
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if colon and TOKEN.fullmatch(name) and "\r" not in value and "\n" not in value:
            headers.append((name, value.strip()))
    req = SipRequest(method, uri, tuple(headers))
    if method == "ACK" or not req.has_header("via"):
        return None  # never answer an ACK (§17.2.1); no Via, no way back
    return req


def classify_datagram(
    data: bytes | bytearray | memoryview, *, max_size: int = MAX_MESSAGE_SIZE
) -> Classified:
    """Decide what a UDP transport does with one datagram (RFC 3261 §18.2, RFC 4475).

    Never raises: ParsedOk(message), Reject(status, reason, partial request) — send
    `reject.response()` — or Drop(reason). Semantic checks that belong to an element
    (unknown method → 501, unsupported URI scheme → 416, Require → 420…) are not made here.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if not data.strip(b"\r\n"):
        return Drop("keep-alive")
    try:
        msg = parse_message(data, max_size=max_size)
        validate_message(msg)
    except SipParseError as exc:
        if not exc.respond:
            return Drop(exc.reason)
        request = _partial_request(data, max_size)
        if request is None:
            return Drop(exc.reason)  # a broken response, or nothing to answer
        return Reject(exc.status_hint, exc.reason, request)
    return ParsedOk(msg)
