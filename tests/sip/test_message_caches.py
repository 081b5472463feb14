"""The hot-path shortcuts give exactly what a fresh parse gives.

`with_top_via` (received/rport annotation) and `make_response` carry parsed values over
instead of re-parsing; every carried value must equal the parse of the new wire form.
"""

from __future__ import annotations

import pytest

from zvonar.sip.errors import SipParseError
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.transaction_server import annotate_via
from zvonar.sip.uri import parse_uri

INVITE = (
    b"INVITE sip:answer@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5061;branch=z9hG4bK-1;rport, SIP/2.0/TCP p.example:5070"
    b";branch=z9hG4bK-0\r\n"
    b"Via: SIP/2.0/UDP q.example;branch=z9hG4bK-x\r\n"
    b'From: "Alice A" <sip:alice@example.com>;tag=a1\r\n'
    b"To: <sip:answer@127.0.0.1:5060>\r\n"
    b"Call-ID: c1@h\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@192.168.1.20:5061>\r\n"
    b"Record-Route: <sip:p.example;lr>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_PARSED = ("call_id", "cseq", "from_", "to", "top_via", "vias", "contacts", "record_routes")


def _request(data: bytes = INVITE) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    for attr in _PARSED:
        getattr(msg, attr)  # fill every cache the layers use
    return msg


def _same_as_reparse(msg: SipRequest | SipResponse) -> None:
    fresh = parse_message(msg.serialize())
    for attr in _PARSED:
        assert getattr(msg, attr) == getattr(fresh, attr), attr
    for name in ("via", "to", "from", "contact", "cseq", "call-id"):
        assert msg.header_values(name) == fresh.header_values(name), name


@pytest.mark.parametrize("source", [("203.0.113.9", 40000), ("192.168.1.20", 5061), ("::1", 7)])
def test_annotate_via_keeps_caches_that_match_the_new_wire_form(source: tuple[str, int]) -> None:
    request = _request()
    annotated = annotate_via(request, source)
    assert annotated.top_via.received == source[0]
    assert annotated.top_via.rport == source[1]
    assert annotated.from_ is request.from_  # carried over, not re-parsed
    assert request.top_via.rport is True  # the original is untouched
    _same_as_reparse(annotated)
    rebuilt = SipRequest(annotated.method, annotated.uri, annotated.headers)
    assert annotated._index == rebuilt._index
    assert len(annotated.vias) == 3


def test_annotate_via_without_rport_or_received_is_the_same_object() -> None:
    data = INVITE.replace(
        b"192.168.1.20:5061;branch=z9hG4bK-1;rport", b"127.0.0.1;branch=z9hG4bK-1"
    )
    request = _request(data)
    assert annotate_via(request, ("127.0.0.1", 5060)) is request


@pytest.mark.parametrize("to_tag", [None, "t0k3n", "not a token"])
@pytest.mark.parametrize(
    "extra",
    [(), (("Contact", "<sip:me@h>"),), (("Via", "SIP/2.0/UDP z.example;branch=z9hG4bK-z"),)],
)
def test_make_response_prefilled_caches_match_a_fresh_parse(
    to_tag: str | None, extra: tuple[tuple[str, str], ...]
) -> None:
    if to_tag == "not a token":  # a caller error: the value is copied, the parse left lazy
        response = make_response(_request(), 200, to_tag=to_tag, headers=extra)
        assert "to" not in response.__dict__
        return
    response = make_response(_request(), 200, to_tag=to_tag, headers=extra, body=b"v=0\r\n")
    assert response.body == b"v=0\r\n"
    if not extra:
        assert response.to.tag == to_tag
    fresh = parse_message(response.serialize())
    for attr in ("call_id", "cseq", "from_", "to", "top_via", "vias", "contacts"):
        assert getattr(response, attr) == getattr(fresh, attr), attr
    assert response.headers == fresh.headers[:-1]  # serialize() added Content-Length
    # The index handed over equals the one the message would build from its own headers.
    rebuilt = SipResponse(response.status, response.reason, response.headers)
    assert response._index == rebuilt._index


def test_make_response_keeps_an_existing_to_tag() -> None:
    data = INVITE.replace(
        b"To: <sip:answer@127.0.0.1:5060>", b"To: <sip:answer@127.0.0.1:5060>;tag=x"
    )
    response = make_response(_request(data), 200, to_tag="new")
    assert response.to.tag == "x"
    assert response.header("To") == "<sip:answer@127.0.0.1:5060>;tag=x"


def test_uri_cache_returns_equal_values_and_still_rejects_bad_uris() -> None:
    assert parse_uri("sip:a@b.example;lr") == parse_uri("sip:a@b.example;lr")
    assert str(parse_uri("sip:a@b.example;lr")) == "sip:a@b.example;lr"
    for _ in range(2):
        with pytest.raises(SipParseError):
            parse_uri("sip:a@b c")
