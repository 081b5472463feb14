"""The SDP of a message body, alone or in a multipart body (RFC 5621, RFC 2046 §5.1), as
SIP-I carriers send it: SDP plus an ISUP part."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from zvonar.sip.body import media_type, readable_session_body, sdp_body

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
ISUP = bytes([0x01, 0x00, 0x49, 0x00, 0x00, 0x03, 0x02, 0x00, 0x07, 0x04, 0x10, 0x00, 0x0A, 0x0D])


@dataclass(frozen=True)
class Msg:
    body: bytes
    content_type: str | None


def sip_i(boundary: str = "unique-boundary-1", *, sdp_first: bool = True) -> bytes:
    sdp_part = b"Content-Type: application/sdp\r\n\r\n" + SDP
    isup_part = (
        b"Content-Type: application/ISUP;version=itu-t92+\r\n"
        b"Content-Disposition: signal;handling=optional\r\n\r\n" + ISUP
    )
    parts = (sdp_part, isup_part) if sdp_first else (isup_part, sdp_part)
    b = boundary.encode()
    return (
        b"preamble, ignored\r\n--" + b + b"\r\n" + parts[0] + b"\r\n--" + b + b"\r\n" + parts[1]
        + b"\r\n--" + b + b"--\r\nepilogue"
    )  # fmt: skip


def test_a_plain_sdp_body_is_the_sdp() -> None:
    assert sdp_body(Msg(SDP, "application/sdp")) == SDP
    assert sdp_body(Msg(SDP, "Application/SDP ; charset=utf-8")) == SDP
    assert sdp_body(Msg(SDP, None)) == SDP  # lenient: a body without its Content-Type
    assert sdp_body(Msg(b"", "application/sdp")) == b""


@pytest.mark.parametrize("sdp_first", [True, False])
def test_the_sdp_part_of_a_sip_i_body(sdp_first: bool) -> None:
    msg = Msg(sip_i(sdp_first=sdp_first), "multipart/mixed;boundary=unique-boundary-1")
    assert sdp_body(msg) == SDP
    assert readable_session_body(msg)


def test_a_quoted_boundary_and_bare_line_feeds() -> None:
    boundary = "=_Part 1:2/3"
    body = sip_i(boundary).replace(b"\r\n", b"\n")
    msg = Msg(body, f'multipart/mixed; boundary="{boundary}"')
    assert sdp_body(msg) == SDP.replace(b"\r\n", b"\n")


def test_nested_multipart() -> None:
    inner = b"--in\r\nContent-Type: application/sdp\r\n\r\n" + SDP + b"\r\n--in--"
    outer = (
        b"--out\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
        + inner
        + b"\r\n--out--"
    )
    assert sdp_body(Msg(outer, "multipart/mixed; boundary=out")) == SDP


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"hello", "text/plain"),  # not SDP
        (sip_i(), "multipart/mixed"),  # no boundary
        (sip_i(), "multipart/mixed; boundary=other"),  # not this body's boundary
        (
            b"--b\r\nContent-Type: application/isup\r\n\r\n\x01\r\n--b--",
            "multipart/mixed;boundary=b",
        ),
        (b"--b\r\n\r\n" + SDP + b"\r\n--b--", "multipart/mixed;boundary=b"),  # text/plain part
        (b"--b\r\nContent-Type: application/sdp", "multipart/mixed;boundary=b"),  # cut short
    ],
)
def test_no_sdp_to_find(body: bytes, ctype: str) -> None:
    assert sdp_body(Msg(body, ctype)) == b""


def test_which_session_bodies_are_readable() -> None:
    assert readable_session_body(Msg(b"", None))
    assert readable_session_body(Msg(b"\r\n", "text/plain"))  # nothing in it
    assert readable_session_body(Msg(SDP, "application/sdp"))
    assert not readable_session_body(Msg(b"hello", "text/plain"))
    assert not readable_session_body(Msg(b"<x/>", "application/xml"))
    assert media_type(" Multipart/Mixed ;boundary=x") == "multipart/mixed"
