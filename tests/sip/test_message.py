"""SIP messages: parsing (§7), header access, serialization, make_response (§8.2.6), limits."""

from __future__ import annotations

import pytest

from zvonar.sip.errors import SipParseError
from zvonar.sip.headers import CSeq
from zvonar.sip.message import (
    MAX_MESSAGE_SIZE,
    REASONS,
    Drop,
    ParsedOk,
    Reject,
    SipRequest,
    SipResponse,
    classify_datagram,
    make_response,
    parse_message,
    validate_message,
)
from zvonar.sip.uri import SipUri

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def invite(extra: str = "", body: bytes = SDP, cl: str | None = None) -> bytes:
    length = str(len(body)) if cl is None else cl
    return (
        "INVITE sip:bob@biloxi.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.com>\r\n"
        'From: "Alice" <sip:alice@atlanta.com>;tag=1928301774\r\n'
        "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:alice@pc33.atlanta.com>\r\n"
        f"{extra}"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {length}\r\n"
        "\r\n"
    ).encode() + body


def request(data: bytes) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


def test_parse_request_and_accessors() -> None:
    m = request(invite("User-Agent: Zvonar/1\r\nExpires: 300\r\n"))
    assert m.method == "INVITE" and m.version == "SIP/2.0"
    assert isinstance(m.uri, SipUri) and m.uri.user == "bob"
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert m.cseq == CSeq(314159, "INVITE")
    assert m.top_via.branch == "z9hG4bKnashds8" and len(m.vias) == 1
    assert m.from_.tag == "1928301774" and m.from_.display_name == "Alice"
    assert m.to.tag is None and m.to.display_name == "Bob"
    assert [str(c.uri) for c in m.contacts] == ["sip:alice@pc33.atlanta.com"]
    assert m.max_forwards == 70 and m.expires == 300
    assert m.content_length == len(SDP) and m.content_type == "application/sdp"
    assert m.user_agent == "Zvonar/1"
    assert m.routes == [] and m.record_routes == []
    assert m.body == SDP


def test_parse_response() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\n"
        b"t: <sip:c@d>;tag=2\r\ni: x@y\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n"
    )
    m = parse_message(data)
    assert isinstance(m, SipResponse)
    assert (m.status, m.reason) == (180, "Ringing")
    assert m.to.tag == "2" and m.call_id == "x@y" and m.content_length == 0
    assert m.header("Via") == m.header("v") == "SIP/2.0/UDP a;branch=z9hG4bK1"


def test_compact_and_case_insensitive_header_access() -> None:
    m = request(invite("s: hello\r\nk: timer\r\n"))
    assert m.header("subject") == m.header("S") == "hello"
    assert m.header_values("Supported") == ["timer"]
    assert m.has_header("SUPPORTED") and not m.has_header("Require")
    assert m.header("Require") is None and m.header_values("Require") == []


def test_header_values_splits_only_list_headers() -> None:
    m = request(
        invite(
            "Allow: INVITE, ACK,BYE\r\nAllow: CANCEL\r\n"
            "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
            'Authorization: Digest username="a", realm="b, c", nonce="n"\r\n'
            'Record-Route: <sip:p1.example.com;lr>, "x, y" <sip:p2.example.com;lr>\r\n'
        )
    )
    assert m.header_values("allow") == ["INVITE", "ACK", "BYE", "CANCEL"]
    assert m.header_values("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert m.header_values("Authorization") == ['Digest username="a", realm="b, c", nonce="n"']
    assert m.header_values("Record-Route") == [
        "<sip:p1.example.com;lr>",
        '"x, y" <sip:p2.example.com;lr>',
    ]
    assert [str(r.uri) for r in m.record_routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]


def test_header_folding_is_unfolded() -> None:
    m = request(invite("Subject: I know you're there,\r\n   pick up the phone\r\n\tand talk\r\n"))
    assert m.header("Subject") == "I know you're there, pick up the phone and talk"


def test_leading_crlf_before_start_line_is_ignored() -> None:
    assert request(b"\r\n\r\n" + invite()).method == "INVITE"


def test_unknown_headers_are_preserved_byte_exact() -> None:
    raw = 'X-Weird_Header.!%*+`\'~:  a;;,,b  <<>> "q" \u00e9\r\n'
    m = request(invite(raw))
    assert m.header("x-weird_header.!%*+`'~") == 'a;;,,b  <<>> "q" \u00e9'
    assert b'X-Weird_Header.!%*+`\'~: a;;,,b  <<>> "q" \xc3\xa9\r\n' in m.serialize()


def test_invalid_utf8_survives_a_round_trip() -> None:
    data = invite("X-Bin: @@\r\n").replace(b"@@", b"\xff\xfe")  # not UTF-8
    m = request(data)
    assert m.serialize() == data


def test_serialize_fixes_content_length_and_round_trips() -> None:
    m = request(invite())
    wire = m.serialize()
    assert wire == invite()
    assert m.serialize() is wire  # cached
    changed = m.with_body(b"hello", "text/plain")
    assert changed.header("Content-Length") == "5" and changed.content_type == "text/plain"
    again = request(changed.serialize())
    assert again.body == b"hello" and again.content_length == 5
    emptied = m.with_body(b"")
    assert (
        not emptied.has_header("Content-Type") and b"Content-Length: 0\r\n" in emptied.serialize()
    )
    # A message built without Content-Length still gets one.
    bare = SipRequest("OPTIONS", SipUri(host="h"), (("Call-ID", "x"),), b"abc")
    assert bare.serialize().endswith(b"Call-ID: x\r\nContent-Length: 3\r\n\r\nabc")


def test_header_mutators_return_copies() -> None:
    m = request(invite())
    m2 = m.adding_header("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp1", first=True)
    assert [v.host for v in m2.vias] == ["proxy.example.com", "pc33.atlanta.com"]
    assert len(m.vias) == 1
    m3 = m2.adding_header("Record-Route", "<sip:p.example.com;lr>")
    assert m3.headers[-1] == ("Record-Route", "<sip:p.example.com;lr>")
    m4 = m3.adding_header("Via", "SIP/2.0/UDP last;branch=z9hG4bKl")
    assert [v.host for v in m4.vias][-1] == "last"
    assert m4.with_header("max-forwards", "69").max_forwards == 69
    assert m4.with_header("Max-Forwards", "69").headers.index(("Max-Forwards", "69")) == 3
    assert not m4.without_header("v").has_header("Via")
    assert m4.without_header("Via").call_id == m.call_id
    with pytest.raises(ValueError):
        m.with_header("X-Inject", "a\r\nVia: evil")
    with pytest.raises(ValueError):
        m.adding_header("Bad Name", "x")


def test_make_response_copies_the_dialog_headers() -> None:
    m = request(invite().replace(b"Via: ", b"Via: SIP/2.0/UDP p1;branch=z9hG4bKa\r\nv: ", 1))
    r = make_response(m, 180, to_tag="abc", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    assert (r.status, r.reason) == (180, "Ringing")
    assert r.header_values("Via") == ["SIP/2.0/UDP p1;branch=z9hG4bKa", m.header_values("Via")[1]]
    assert r.from_ == m.from_ and r.call_id == m.call_id and r.cseq == m.cseq
    assert r.to.tag == "abc" and r.to.uri == m.to.uri
    assert r.header("Contact") == "<sip:bob@192.0.2.4>"
    assert not r.has_header("Max-Forwards") and r.body == b""
    reparsed = parse_message(r.serialize())
    assert isinstance(reparsed, SipResponse) and reparsed.to.tag == "abc"
    # An existing To tag is kept (in-dialog request), never doubled.
    tagged = make_response(
        request(invite().replace(b"Bob <sip:bob@biloxi.com>", b"<sip:b@c>;tag=9")),
        200,
        to_tag="new",
    )
    assert tagged.to.tag == "9" and tagged.header("To") == "<sip:b@c>;tag=9"
    assert make_response(m, 100).to.tag is None
    assert make_response(m, 299).reason == "OK" and make_response(m, 499, "Nope").reason == "Nope"
    with pytest.raises(ValueError):
        make_response(m, 99)


def test_reasons_table() -> None:
    assert REASONS[200] == "OK" and REASONS[481] == "Call/Transaction Does Not Exist"
    assert REASONS[505] == "Version Not Supported"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (invite().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (invite().replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n", 1), 400),
        (invite().replace(b"INVITE sip", b"INVITE  sip", 1), 400),
        (invite().replace(b"INVITE sip", b"INV@TE sip", 1), 400),
        (invite().replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", b""), 400),
        (invite().replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.com", b"Call-ID: a b"), 400),
        (invite().replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), 400),
        (invite().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nNoColonHere\r\n"), 400),
        (invite().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX: y\r\n"), 400),
        (invite(cl="abc"), 400),
        (invite(cl=str(len(SDP) + 1)), 400),
        (invite(cl="99999999999999999999"), 400),
        (invite("Content-Length: 3\r\n"), 400),
        (invite().replace(b"\r\n\r\n", b"\r\n"), 400),
        (b"", 400),
        (b"SIP/2.0 2000 OK\r\n\r\n", 400),
        (b"SIP/2.0 099 Low\r\n\r\n", 400),
        (b"SIP/2.0 700 High\r\n\r\n", 400),
    ],
)
def test_parse_errors(data: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status_hint == status
    assert info.value.respond


def test_negative_content_length_is_never_answered() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(invite(cl="-999"))
    assert not info.value.respond
    assert isinstance(classify_datagram(invite(cl="-999")), Drop)


def test_body_without_content_length_on_a_datagram_is_the_rest() -> None:
    data = invite().replace(f"Content-Length: {len(SDP)}\r\n".encode(), b"")
    m = request(data)
    assert m.body == SDP and m.content_length is None


def test_max_size() -> None:
    big = invite(body=b"x" * (MAX_MESSAGE_SIZE + 1))
    with pytest.raises(SipParseError) as info:
        parse_message(big)
    assert info.value.status_hint == 413
    assert request(invite(body=b"x" * 1000)).body == b"x" * 1000
    with pytest.raises(SipParseError):
        parse_message(invite(body=b"x" * 1000), max_size=1000)
    result = classify_datagram(invite(), max_size=100)
    assert isinstance(result, Reject) and result.status == 413


def test_validate_message_checks_the_rest() -> None:
    validate_message(request(invite()))
    for extra in (
        "Max-Forwards: 256\r\n",
        "Expires: 4294967296\r\n",
        "Contact: <sip:x@y>;;\r\n",
        "Route: <sip:a@b\r\n",
        "Record-Route: \r\n",
    ):
        data = (
            invite(extra).replace(b"Max-Forwards: 70\r\n", b"") if "Max" in extra else invite(extra)
        )
        m = request(data)
        with pytest.raises(SipParseError):
            validate_message(m)
    with pytest.raises(SipParseError):
        validate_message(request(invite().replace(b"application/sdp", b"sdp")))


# -- classify_datagram ---------------------------------------------------------------------------


def test_classify_ok_reject_drop() -> None:
    assert isinstance(classify_datagram(invite()), ParsedOk)
    for ka in (b"\r\n\r\n", b"\r\n", b""):
        assert classify_datagram(ka) == Drop("keep-alive")
    bad = classify_datagram(invite().replace(b"CSeq: 314159 INVITE", b"CSeq: 99999999999 INVITE"))
    assert isinstance(bad, Reject) and bad.status == 400
    response = bad.response()
    assert response.status == 400 and response.reason == "Bad Request"
    assert response.header("Via") == "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"
    assert response.header("Call-ID") == "a84b4c76e66710@pc33.atlanta.com"
    # No answer to a broken ACK (§17) or to a request without Via, or to a response.
    ack = invite().replace(b"INVITE sip", b"ACK sip").replace(b"314159 INVITE", b"314159 ACK")
    assert isinstance(classify_datagram(ack.replace(b"To: Bob", b'To: "Bob')), Drop)
    assert isinstance(classify_datagram(invite().replace(b"Via:", b"Xia:")), Drop)
    assert isinstance(classify_datagram(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"), Drop)
    assert isinstance(classify_datagram(b"\x00\x01garbage"), Drop)


def test_reject_reason_for_unparseable_request_uri() -> None:
    result = classify_datagram(invite().replace(b"sip:bob@biloxi.com SIP", b"<sip:bob> SIP", 1))
    assert isinstance(result, Reject) and result.status == 400
    assert str(result.request.uri) == "<sip:bob>"
    assert b"SIP/2.0 400 Bad Request\r\n" in result.response().serialize()


def test_version_is_case_insensitive_and_sent_upper_case() -> None:
    m = request(invite().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
    assert m.version == "SIP/2.0" and m.serialize().startswith(
        b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    )


def test_start_line_is_validated_when_built() -> None:
    with pytest.raises(ValueError):
        SipRequest("IN VITE", SipUri(host="h"), ())
    with pytest.raises(ValueError):
        SipResponse(200, "OK\r\nX-Injected: 1", ())
    with pytest.raises(ValueError):
        SipResponse(1000, "Big", ())


@pytest.mark.parametrize(
    "evil",
    [
        "Contact: " + "<" * 60000,
        "Contact: " + '"' * 60001,
        "Subject: a" + " " * 60000 + "\r\n b",
        "Via: SIP/2.0/UDP a" + " " * 60000 + "b:5060",
        "Contact: <sip:a@b>" + ";a" * 30000 + "!",
        "To: " + "a " * 30000 + ", <sip:x@y>",
        "Route: " + "<sip:a@b>," * 6000 + "<",
        "Contact: sip:" + "a:" * 30000,
    ],
)
def test_hostile_inputs_are_handled_in_linear_time(evil: str) -> None:
    # A quadratic regex or loop would take many seconds on 60 KB; linear code takes ms.
    import time

    data = invite(evil + "\r\n")
    start = time.perf_counter()
    result = classify_datagram(data, max_size=len(data))
    assert time.perf_counter() - start < 1.5
    assert isinstance(result, ParsedOk | Reject)


def test_reject_response_has_a_stable_to_tag() -> None:
    data = invite().replace(b"CSeq: 314159 INVITE", b"CSeq: 99999999999 INVITE")
    first, again = classify_datagram(data), classify_datagram(data)
    assert isinstance(first, Reject) and isinstance(again, Reject)
    tag = first.response().to.tag
    assert tag and tag == again.response().to.tag  # a retransmission gets the same answer
    assert first.response(to_tag="mine").to.tag == "mine"
    other = classify_datagram(data.replace(b"a84b4c76e66710", b"b84b4c76e66710"))
    assert isinstance(other, Reject) and other.response().to.tag != tag


def test_buffers_other_than_bytes_are_accepted() -> None:
    m = parse_message(bytearray(invite()))
    assert m.body == SDP and isinstance(m.body, bytes)
    assert isinstance(classify_datagram(memoryview(invite())), ParsedOk)


def test_equal_content_lengths_with_leading_zeros_do_not_conflict() -> None:
    assert request(invite(f"Content-Length: 0{len(SDP)}\r\n")).body == SDP
