"""Stream framing: Content-Length framing (§18.3), CRLF keep-alives (RFC 5626 §3.5.1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zvonar.sip.errors import FramingError, SipParseError
from zvonar.sip.framing import StreamFramer
from zvonar.sip.message import parse_message


def msg(body: bytes = b"", cl: str | None = None, extra: str = "") -> bytes:
    length = str(len(body)) if cl is None else cl
    return (
        "OPTIONS sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
        "From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        f"{extra}Content-Length: {length}\r\n\r\n"
    ).encode() + body


def test_one_message_in_one_read() -> None:
    f = StreamFramer()
    assert f.feed(msg(b"hello")) == [msg(b"hello")]
    assert f.buffered == 0


def test_several_messages_in_one_read_and_partial_tail() -> None:
    a, b, c = msg(b"1"), msg(b"22"), msg(b"333")
    f = StreamFramer()
    assert f.feed(a + b + c[:10]) == [a, b]
    assert f.buffered == 10
    assert f.feed(c[10:]) == [c]


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
def test_arbitrary_chunking(sizes: list[int]) -> None:
    stream = b"\r\n\r\n".join([msg(b"x" * 7), msg(b""), msg(b"body\r\n\r\nwith blank lines")])
    f = StreamFramer()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        n = sizes[i % len(sizes)]
        out += f.feed(stream[pos : pos + n])
        pos += n
        i += 1
    assert out == [msg(b"x" * 7), msg(b""), msg(b"body\r\n\r\nwith blank lines")]
    assert f.pings_received == 2 and f.take_pongs() == b"\r\n\r\n"
    assert f.buffered == 0


def test_keepalive_ping_gets_a_pong_and_lone_crlf_is_a_pong() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n\r\n") == []
    assert f.take_pongs() == b"\r\n" and f.take_pongs() == b""
    assert f.pings_received == 1
    assert f.feed(b"\r\n") == []  # a pong from the other side
    assert f.pongs_received == 1 and f.take_pongs() == b""
    assert f.feed(msg()) == [msg()]


def test_ping_split_across_reads_still_gets_a_pong() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n") == [] and f.feed(b"\r\n") == []
    assert f.take_pongs() == b"\r\n"
    g = StreamFramer()
    assert g.feed(b"\r\n\r") == [] and g.take_pongs() == b""
    assert g.feed(b"\n" + msg()) == [msg()] and g.take_pongs() == b"\r\n"


def test_compact_content_length_and_folded_headers() -> None:
    data = (
        msg(b"abc")
        .replace(b"Content-Length: 3", b"l :  3")
        .replace(b"Call-ID: c1", b"Call-ID:\r\n c1")
    )
    assert StreamFramer().feed(data) == [data]


def test_waits_for_a_body_shorter_than_content_length() -> None:
    # RFC 4475 clerr over TCP: wait for more bytes; the caller's idle timer closes.
    f = StreamFramer()
    assert f.feed(msg(b"short", cl="9999")) == []
    assert f.buffered == len(msg(b"short", cl="9999"))


@pytest.mark.parametrize(
    "data",
    [
        msg(cl="-999"),  # RFC 4475 ncl
        msg(cl="abc"),
        msg().replace(b"Content-Length: 0\r\n", b""),  # mandatory on streams
        msg(b"12345", extra="Content-Length: 13\r\n"),  # RFC 4475 mcl01
        msg(cl="99999999999"),
    ],
)
def test_fatal_framing_errors(data: bytes) -> None:
    f = StreamFramer()
    with pytest.raises(FramingError) as info:
        f.feed(data)
    assert isinstance(info.value, SipParseError) and not info.value.respond
    with pytest.raises(FramingError):  # the stream stays failed
        f.feed(msg())


def test_max_size() -> None:
    f = StreamFramer(max_size=200)
    with pytest.raises(FramingError) as info:
        f.feed(msg(b"x" * 300))
    assert info.value.status_hint == 413
    g = StreamFramer(max_size=100)
    with pytest.raises(FramingError):
        for _ in range(20):
            g.feed(b"X-Endless-Header: aaaaaaaaaa\r\n")  # never ends its headers


def test_framed_messages_parse() -> None:
    f = StreamFramer()
    (framed,) = f.feed(msg(b"hi"))
    assert parse_message(framed).body == b"hi"


def _shared() -> Path:
    env = os.environ.get("ZVONAR_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


def test_rfc4475_stream_cases() -> None:
    corpus = _shared() / "conformance" / "sip" / "rfc4475"
    if not corpus.is_dir():
        pytest.skip(f"conformance corpus not found at {corpus}")
    # clerr: wait; ncl and mcl01: close the connection.
    assert StreamFramer().feed((corpus / "clerr.dat").read_bytes()) == []
    for name in ("ncl.dat", "mcl01.dat"):
        with pytest.raises(FramingError):
            StreamFramer().feed((corpus / name).read_bytes())


@given(st.lists(st.binary(max_size=60) | st.sampled_from([b"\r\n", b"\r\n\r\n", msg(b"ab")]),
                max_size=12))  # fmt: skip
def test_random_streams_only_raise_framing_error(chunks: list[bytes]) -> None:
    f = StreamFramer(max_size=2000)
    try:
        for chunk in chunks:
            for framed in f.feed(chunk):
                # Whatever is framed holds a whole header block and the announced body.
                _head, sep, _ = framed.partition(b"\r\n\r\n")
                assert sep and len(framed) <= 2000
    except FramingError:
        pass
