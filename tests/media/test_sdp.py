"""SDP (RFC 8866) parse/serialize: examples from the RFCs, corner cases, round-trip properties."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zvonar.media.errors import SdpParseError
from zvonar.media.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtcpAttribute,
    RtpMap,
    SessionDescription,
    Timing,
    parse_sdp,
)

# RFC 8866 §5 example, lines in canonical order.
RFC_EXAMPLE = (
    "v=0\r\n"
    "o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r\n"
    "s=Call to John Smith\r\n"
    "i=SDP Offer #1\r\n"
    "u=http://www.jdoe.example.com/home.html\r\n"
    "e=Jane Doe <jane@jdoe.example.com>\r\n"
    "p=+1 617 555-6011\r\n"
    "c=IN IP4 198.51.100.1\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0\r\n"
    "m=audio 49180 RTP/AVP 0\r\n"
    "m=video 51372 RTP/AVP 99\r\n"
    "c=IN IP6 2001:db8::2\r\n"
    "a=rtpmap:99 h263-1998/90000\r\n"
)

OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "b=AS:64\r\n"
    "t=0 0\r\n"
    "a=sendrecv\r\n"
    "m=audio 49170 RTP/AVP 8 0 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:40\r\n"
    "a=rtcp:53020 IN IP4 126.16.64.4\r\n"
    "a=X-vendor-thing:some value: with colons\r\n"
    "a=recvonly\r\n"
)


def test_rfc8866_example_round_trips_byte_exact() -> None:
    sd = parse_sdp(RFC_EXAMPLE)
    assert sd.origin == Origin("jdoe", 3724394400, 3724394405, "198.51.100.1")
    assert sd.session_name == "Call to John Smith"
    assert sd.information == "SDP Offer #1"
    assert sd.uri == "http://www.jdoe.example.com/home.html"
    assert sd.emails == ("Jane Doe <jane@jdoe.example.com>",)
    assert sd.phones == ("+1 617 555-6011",)
    assert sd.connection == Connection("198.51.100.1")
    assert sd.timings == (Timing(0, 0),)
    assert [m.media for m in sd.media] == ["audio", "audio", "video"]
    assert [m.port for m in sd.media] == [49170, 49180, 51372]
    video = sd.media[2]
    assert video.connection == Connection("2001:db8::2", "IN", "IP6")
    assert sd.connection_for(video) == Connection("2001:db8::2", "IN", "IP6")
    assert sd.connection_for(sd.media[0]) == Connection("198.51.100.1")
    assert video.rtpmaps() == {99: RtpMap(99, "h263-1998", 90000)}
    assert sd.serialize() == RFC_EXAMPLE
    assert sd.to_bytes() == RFC_EXAMPLE.encode()


def test_offer_attributes_and_typed_views() -> None:
    sd = parse_sdp(OFFER.encode())
    audio = sd.media[0]
    assert audio.formats == ("8", "0", "101")
    assert audio.payload_types == [8, 0, 101]
    assert audio.rtpmaps()[0] == RtpMap(0, "PCMU", 8000)
    assert audio.rtpmaps()[101].matches("TELEPHONE-EVENT", 8000)
    assert audio.fmtp(101) == "0-16"
    assert audio.fmtp(0) is None
    assert audio.ptime == 20.0
    assert audio.maxptime == 40.0
    assert audio.rtcp == RtcpAttribute(53020, "126.16.64.4", "IN", "IP4")
    assert audio.attribute("X-vendor-thing") == "some value: with colons"
    assert audio.attribute("nope") is None
    assert audio.direction_attribute is Direction.RECVONLY
    assert sd.direction_attribute is Direction.SENDRECV
    # media-level direction overrides the session-level one (RFC 3264 §5.1)
    assert sd.direction_for(audio) is Direction.RECVONLY
    assert sd.bandwidths == (Bandwidth("AS", 64),)
    assert sd.serialize() == OFFER


def test_unknown_attributes_are_kept_in_order() -> None:
    sd = parse_sdp(OFFER)
    names = [a.name for a in sd.media[0].attributes]
    assert names == [
        "rtpmap", "rtpmap", "rtpmap", "fmtp", "ptime", "maxptime", "rtcp",
        "X-vendor-thing", "recvonly",
    ]  # fmt: skip


def test_direction_defaults_to_sendrecv() -> None:
    sd = parse_sdp(RFC_EXAMPLE)
    assert sd.direction_for(sd.media[0]) is Direction.SENDRECV


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("53020", RtcpAttribute(53020)),
        ("53020 IN IP4 126.16.64.4", RtcpAttribute(53020, "126.16.64.4")),
        ("53020 IN IP6 2001:2345:6789:ABCD:EF01:2345:6789:ABCD",
         RtcpAttribute(53020, "2001:2345:6789:ABCD:EF01:2345:6789:ABCD", "IN", "IP6")),
    ],
)  # fmt: skip
def test_rtcp_attribute_rfc3605(value: str, expected: RtcpAttribute) -> None:
    assert RtcpAttribute.parse(value) == expected
    assert str(expected) == value


@pytest.mark.parametrize("value", ["", "abc", "1 IN IP4", "70000", "1 IN IP4 a b"])
def test_rtcp_attribute_malformed(value: str) -> None:
    with pytest.raises(SdpParseError):
        RtcpAttribute.parse(value)


def test_ipv6_session() -> None:
    text = (
        "v=0\r\no=- 1 2 IN IP6 2001:db8::1\r\ns= \r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n"
        "m=audio 5004 RTP/AVP 0\r\n"
    )
    sd = parse_sdp(text)
    assert sd.origin.addrtype == "IP6"
    assert sd.origin.address == "2001:db8::1"
    assert sd.connection == Connection("2001:db8::1", "IN", "IP6")
    assert sd.session_name == " "  # RFC 8866 §5.3: a single space for "no name"
    assert sd.serialize() == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IN IP4 224.2.36.42/127", Connection("224.2.36.42", ttl=127)),
        ("IN IP4 224.2.1.1/127/3", Connection("224.2.1.1", ttl=127, count=3)),
        ("IN IP6 ff15::101/3", Connection("ff15::101", "IN", "IP6", count=3)),
        ("IN IP4 host.example.com", Connection("host.example.com")),
        ("ATM NSAP 47.0091.8100.0000", Connection("47.0091.8100.0000", "ATM", "NSAP")),
        ("IN X-FOO a/b/c", Connection("a/b/c", "IN", "X-FOO")),
    ],
)
def test_connection_forms(text: str, expected: Connection) -> None:
    assert Connection.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "text", ["IN IP4", "IN IP4 1.2.3.4 x", "IN IP6 ff15::1/1/2", "IN IP4 1.2.3.4/a", "IN IP4 a/300"]
)
def test_connection_malformed(text: str) -> None:
    with pytest.raises(SdpParseError):
        Connection.parse(text)


def test_null_connection_is_rfc2543_hold() -> None:
    assert Connection("0.0.0.0").is_null
    assert not Connection("0.0.0.1").is_null
    assert not Connection("::", "IN", "IP6").is_null


def test_lf_only_and_out_of_order_input_is_accepted_and_canonicalised() -> None:
    text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\nt=0 0\nc=IN IP4 10.0.0.1\nm=audio 1 RTP/AVP 0\n"
    sd = parse_sdp(text)
    assert sd.connection == Connection("10.0.0.1")
    assert sd.serialize() == (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=x\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 1 RTP/AVP 0\r\n"
    )


def test_repeat_zone_key_port_count_and_unknown_line_types() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=x\r\n"
        "t=3034423619 3042462419\r\nr=604800 3600 0 90000\r\nr=7d 1h 0 25h\r\nt=0 0\r\n"
        "z=2882844526 -1h 2898848070 0\r\nk=prompt\r\ny=0123456789\r\na=tool:x\r\n"
        "m=video 49170/2 RTP/AVP 31\r\ni=the video\r\nb=TIAS:128000\r\nk=clear:abc\r\n"
        "y=42\r\n"
    )
    sd = parse_sdp(text)
    assert sd.timings == (
        Timing(3034423619, 3042462419, ("604800 3600 0 90000", "7d 1h 0 25h")),
        Timing(0, 0),
    )
    assert sd.zone == "2882844526 -1h 2898848070 0"
    assert sd.key == "prompt"
    assert sd.extra_lines == (("y", "0123456789"),)
    video = sd.media[0]
    assert (video.port, video.port_count) == (49170, 2)
    assert video.information == "the video"
    assert video.bandwidths == (Bandwidth("TIAS", 128000),)
    assert video.key == "clear:abc"
    assert video.extra_lines == (("y", "42"),)
    assert sd.serialize() == text


def test_origin_bump_keeps_session_id() -> None:
    sd = parse_sdp(OFFER)
    bumped = sd.bumped()
    assert bumped.origin.session_id == 2890844526
    assert bumped.origin.version == 2890844527
    assert bumped.media == sd.media
    assert "o=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\n" in bumped.serialize()


def test_malformed_rtpmap_is_skipped_by_the_typed_view() -> None:
    # RFC 4475 bodies carry "a=rtpmap:31 LPC" (no clock rate): parse, keep, but ignore it.
    sd = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n"
        "m=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
    )
    assert sd.media[0].rtpmaps() == {}
    assert sd.media[0].attribute("rtpmap") == "31 LPC"


def test_rtpmap_with_channels() -> None:
    rtpmap = RtpMap.parse("97 L16/8000/2")
    assert rtpmap == RtpMap(97, "L16", 8000, 2)
    assert str(rtpmap) == "97 L16/8000/2"


@pytest.mark.parametrize("value", ["x PCMU/8000", "0 PCMU", "0 /8000", "200 PCMU/8000", "0 a/b"])
def test_rtpmap_malformed(value: str) -> None:
    with pytest.raises(SdpParseError):
        RtpMap.parse(value)


def test_ptime_unreadable_is_none() -> None:
    media = MediaDescription("audio", 1, "RTP/AVP", ("0",), attributes=(Attribute("ptime", "x"),))
    assert media.ptime is None
    media = MediaDescription(
        "audio", 1, "RTP/AVP", ("0",), attributes=(Attribute("ptime", "30.0"),)
    )
    assert media.ptime == 30.0


GOOD = "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "o=- 1 1 IN IP4 1.1.1.1\r\n",  # no v=
        GOOD.replace("v=0", "v=1"),
        GOOD.replace("o=- 1 1 IN IP4 1.1.1.1", "o=- 1 1 IN IP4"),  # 5 fields
        GOOD.replace("o=- 1 1", "o=- x 1"),  # non-numeric session id
        GOOD.replace("s=-\r\n", ""),  # no s=
        GOOD.replace("t=0 0\r\n", ""),  # no t=
        GOOD.replace("t=0 0", "t=0"),
        GOOD + "m=audio 1 RTP/AVP\r\n",  # no format
        GOOD + "m=audio 70000 RTP/AVP 0\r\n",  # port out of range
        GOOD + "m=audio x RTP/AVP 0\r\n",
        GOOD + "m=audio 1/0 RTP/AVP 0\r\n",
        GOOD + "garbage\r\n",
        GOOD + "A=foo\r\n",  # type letters are lower case
        GOOD + "c=IN IP4\r\n",
        GOOD + "b=AS\r\n",
        GOOD + "a=\r\n",
        GOOD + "o=- 1 1 IN IP4 1.1.1.1\r\n",  # a second o=
        GOOD + "m=audio 1 RTP/AVP 0\r\nt=0 0\r\n",  # t= inside media
        GOOD + "m=audio 1 RTP/AVP 0\r\ns=x\r\n",  # s= inside media
        GOOD.replace("t=0 0", "r=1 2 3\r\nt=0 0"),  # r= before t=
    ],
)
def test_malformed_sdp_raises_with_400(text: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse_sdp(text)
    assert info.value.status_hint == 400


def test_non_utf8_body_raises() -> None:
    with pytest.raises(SdpParseError):
        parse_sdp(GOOD.encode() + b"a=x:\xff\xfe\r\n")


def test_construction_is_validated() -> None:
    with pytest.raises(SdpParseError):
        Attribute("bad name")
    with pytest.raises(SdpParseError):
        Attribute("x", "a\r\nb=injected")
    with pytest.raises(SdpParseError):
        MediaDescription("audio", 1, "RTP/AVP", ())
    with pytest.raises(SdpParseError):
        SessionDescription(origin=Origin("-", 1, 1, "h"), timings=())
    with pytest.raises(SdpParseError):
        SessionDescription(origin=Origin("-", 1, 1, "h"), extra_lines=(("a", "x"),))
    with pytest.raises(SdpParseError):
        Connection("224.0.0.1", addrtype="IP6", ttl=3)


def test_direction_helpers() -> None:
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.RECVONLY.reversed() is Direction.SENDONLY
    assert Direction.SENDRECV.reversed() is Direction.SENDRECV
    assert Direction.INACTIVE.reversed() is Direction.INACTIVE
    assert Direction.from_flags(send=True, receive=False) is Direction.SENDONLY
    assert not Direction.INACTIVE.sends and not Direction.INACTIVE.receives


# --- the RFC 4475 corpus: real INVITE bodies ---------------------------------------------

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "sip" / "rfc4475"


def _sdp_bodies() -> dict[str, bytes]:
    bodies = {}
    for path in sorted(CORPUS.glob("*.dat")):
        data = path.read_bytes()
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep or not re.search(rb"(?im)^(content-type|c)\s*:\s*application/sdp", head):
            continue
        length = re.search(rb"(?im)^(content-length|l)\s*:\s*(\d+)", head)
        if length is None or int(length.group(2)) > len(body):
            continue  # the framing is the fault under test (clerr, ncl...)
        bodies[path.name] = body[: int(length.group(2))]
    return bodies


def test_rfc4475_sdp_bodies() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    bodies = _sdp_bodies()
    assert len(bodies) >= 15
    failures = set()
    for name, body in bodies.items():
        try:
            sd = parse_sdp(body)
        except SdpParseError:
            failures.add(name)
            continue
        assert parse_sdp(sd.serialize()) == sd, name
        # all bodies are canonical apart from a trailing blank line some carry
        assert sd.serialize().encode() == body.rstrip(b"\r\n") + b"\r\n", name
    # mismatch02's body lacks s= and t= (the message tests something else, but the SDP is
    # invalid under RFC 8866) and test.dat's is "v=0 / testing=123"; every other body parses.
    assert failures == {"mismatch02.dat", "test.dat"}


# --- property: any description survives serialize -> parse ------------------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.+_"
_token = st.text(st.sampled_from(_TOKEN_CHARS), min_size=1, max_size=12)
_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=20)
_ip4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ip6 = st.sampled_from(["::1", "2001:db8::1", "fe80::1:2", "ff15::101"])
_connection = st.one_of(
    st.builds(Connection, _ip4, st.just("IN"), st.just("IP4")),
    st.builds(Connection, _ip4, st.just("IN"), st.just("IP4"), st.integers(0, 255),
              st.none() | st.integers(1, 9)),
    st.builds(Connection, _ip6, st.just("IN"), st.just("IP6"), st.none(),
              st.none() | st.integers(1, 9)),
)  # fmt: skip
_attribute = st.builds(
    Attribute,
    _token,
    st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30),
)  # fmt: skip
_bandwidth = st.builds(Bandwidth, _token, st.integers(0, 10**9))
_media = st.builds(
    MediaDescription,
    media=_token,
    port=st.integers(0, 65535),
    proto=_token,
    formats=st.lists(_token, min_size=1, max_size=5).map(tuple),
    port_count=st.none() | st.integers(1, 8),
    information=st.none() | _text,
    connections=st.lists(_connection, max_size=2).map(tuple),
    bandwidths=st.lists(_bandwidth, max_size=2).map(tuple),
    key=st.none() | _text,
    attributes=st.lists(_attribute, max_size=6).map(tuple),
    extra_lines=st.lists(st.tuples(st.sampled_from("xyw"), _text), max_size=2).map(tuple),
)
_session = st.builds(
    SessionDescription,
    origin=st.builds(Origin, _token, st.integers(0, 2**64), st.integers(0, 2**64),
                     st.one_of(_ip4, _ip6), st.just("IN"), st.sampled_from(["IP4", "IP6"])),
    session_name=_text,
    media=st.lists(_media, max_size=4).map(tuple),
    connection=st.none() | _connection,
    timings=st.lists(st.builds(Timing, st.integers(0, 2**40), st.integers(0, 2**40),
                               st.lists(_token, max_size=2).map(tuple)),
                     min_size=1, max_size=2).map(tuple),
    attributes=st.lists(_attribute, max_size=6).map(tuple),
    information=st.none() | _text,
    uri=st.none() | _text,
    emails=st.lists(_text, max_size=2).map(tuple),
    phones=st.lists(_text, max_size=2).map(tuple),
    bandwidths=st.lists(_bandwidth, max_size=2).map(tuple),
    zone=st.none() | _text,
    key=st.none() | _text,
    extra_lines=st.lists(st.tuples(st.sampled_from("xyw"), _text), max_size=2).map(tuple),
)  # fmt: skip


@given(_session)
def test_property_serialize_parse_round_trip(sd: SessionDescription) -> None:
    text = sd.serialize()
    parsed = parse_sdp(text)
    assert parsed == sd
    assert parsed.serialize() == text
    assert parse_sdp(text.encode("utf-8")) == sd
