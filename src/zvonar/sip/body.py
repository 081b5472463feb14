"""Message bodies: the session description a message carries, alone or as one part of a
multipart body (RFC 5621; RFC 2046 §5.1 for the framing).

Carriers that interwork with the telephone network (SIP-I, SIP-T: RFC 3204, RFC 3372) send
INVITEs whose body is ``multipart/mixed``: the SDP offer plus an ISUP part marked
``handling=optional``. The call layer wants the SDP only; every other part is ignored, as
the other open PBXes do (the ISUP is for gateways). A session method (INVITE, UPDATE) with a
body of a type we cannot read at all gets 415 with ``Accept`` (RFC 3261 §8.2.3; ua/edge.py).
Pure functions over bytes.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = ["ACCEPT", "SDP", "media_type", "readable_session_body", "sdp_body"]

SDP = "application/sdp"
_MULTIPART = frozenset({"multipart/mixed", "multipart/alternative", "multipart/related"})
# The Accept of a 415: the types whose SDP we can find.
ACCEPT = "application/sdp, multipart/mixed, multipart/alternative, multipart/related"
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^;\s"]{1,70}))', re.IGNORECASE)
_MAX_DEPTH = 3  # multipart inside multipart (alternative in mixed), no deeper


class _HasBody(Protocol):
    @property
    def body(self) -> bytes: ...

    @property
    def content_type(self) -> str | None: ...


def media_type(content_type: str | None) -> str:
    """``type/subtype`` of a Content-Type value, lower case, without parameters."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].replace(" ", "").replace("\t", "").lower()


def sdp_body(message: _HasBody) -> bytes:
    """The SDP ``message`` carries: its body when that is SDP (or has no Content-Type, as
    lenient peers send), the first ``application/sdp`` part of a multipart body, else
    ``b""`` (no SDP: an offerless INVITE may still carry an ISUP part)."""
    body = message.body
    if not body:
        return b""
    return _find_sdp(body, message.content_type, 0)


def readable_session_body(message: _HasBody) -> bool:
    """Whether a session method's body is one we can read: none, SDP, or a multipart type.
    Its SDP may still be missing or broken: that is the offer/answer's 488, not a 415."""
    if not message.body.strip():
        return True
    kind = media_type(message.content_type)
    return kind in ("", SDP) or kind in _MULTIPART


def _find_sdp(body: bytes, content_type: str | None, depth: int) -> bytes:
    kind = media_type(content_type)
    if kind in ("", SDP):
        return body
    if kind not in _MULTIPART or depth >= _MAX_DEPTH or content_type is None:
        return b""
    m = _BOUNDARY.search(content_type)
    if m is None:
        return b""
    for headers, content in _parts(body, (m[1] or m[2]).encode("latin-1")):
        part_type = headers.get("content-type")
        if part_type is None:  # RFC 2046 §5.1: a part's default type is text/plain
            continue
        found = _find_sdp(content, part_type, depth + 1)
        if found:
            return found
    return b""


def _parts(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The body parts between ``--boundary`` lines (the preamble and epilogue dropped); each
    as its headers (names lower case) and its content, without the CRLF that belongs to the
    next delimiter."""
    delimiter = b"--" + boundary
    # A delimiter starts a line: at the very start of the body, or after a line break.
    pieces = re.split(rb"(?:^|\r?\n)" + re.escape(delimiter), body)
    out: list[tuple[dict[str, str], bytes]] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):  # the close delimiter: the rest is the epilogue
            break
        line_end = piece.find(b"\n")
        if line_end < 0:
            continue
        part = piece[line_end + 1 :]  # after the delimiter line (transport padding allowed)
        head, sep, content = _split_head(part)
        if not sep:
            continue
        out.append((_part_headers(head), content))
    return out


def _split_head(part: bytes) -> tuple[bytes, bytes, bytes]:
    if part.startswith((b"\r\n", b"\n")):  # no headers at all: the default type
        return b"", b"\n", part.split(b"\n", 1)[1]
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, content = part.partition(sep)
        if found:
            return head, found, content
    return part, b"", b""


def _part_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    text = head.decode("latin-1")
    for line in re.sub(r"\r?\n[ \t]+", " ", text).splitlines():  # unfold
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers
