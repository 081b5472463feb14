from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zvonar.media.rtpengine.bencode import BencodeError, decode, encode


def test_known_encodings() -> None:
    assert encode({"command": "ping"}) == b"d7:command4:pinge"
    assert encode(0) == b"i0e" and encode(-42) == b"i-42e"
    assert encode(["a", b"\x00\xff", 3]) == b"l1:a2:\x00\xffi3ee"
    # Keys are sorted as raw bytes (BEP 3), whatever order the dict has.
    assert encode({"sdp": "v=0", "call-id": "x", "Z": 1}) == b"d1:Zi1e7:call-id1:x3:sdp3:v=0e"
    assert encode({"flags": ["trust address"], "codec": {"transcode": ["PCMA"]}}) == (
        b"d5:codecd9:transcodel4:PCMAee5:flagsl13:trust addressee"
    )
    assert encode("ёж") == b"4:" + "ёж".encode()  # str is UTF-8; the length counts bytes


def test_decodes_rtpengine_reply() -> None:
    assert decode(b"d6:result4:ponge") == {"result": b"pong"}
    reply = decode(b"d8:durationi500e6:result2:oke")
    assert reply == {"duration": 500, "result": b"ok"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"i12",
        b"i-0e",
        b"i012e",
        b"ie",
        b"5:abc",
        b"03:abc",
        b"l1:a",
        b"d3:key",
        b"di1ei2ee",  # integer key
        b"x",
        b"i1ei2e",  # trailing data
        b"-1:a",
    ],
)
def test_malformed_input_is_refused(data: bytes) -> None:
    with pytest.raises(BencodeError):
        decode(data)


def test_unencodable_values() -> None:
    for value in (True, 1.5, None, {1: "a"}, object()):
        with pytest.raises(BencodeError):
            encode(value)
    deep: list[object] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(BencodeError):
        encode(deep)
    with pytest.raises(BencodeError):
        decode(b"l" * 100 + b"e" * 100)


values = st.recursive(
    st.integers(min_value=-(2**70), max_value=2**70) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip(value: object) -> None:
    assert decode(encode(value)) == value


@given(st.binary(max_size=60))
def test_decoder_never_crashes_on_junk(data: bytes) -> None:
    with contextlib.suppress(BencodeError):
        decode(data)
