"""Structured header values: RFC 3261 §7.3, §20, §25.1; RFC 3581 rport."""

from __future__ import annotations

import pytest

from zvonar.sip.errors import SipParseError
from zvonar.sip.headers import (
    CONTACT_WILDCARD,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    header_key,
    parse_auth_params,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_params,
    parse_via,
    parse_via_list,
    quote_string,
    split_comma_list,
    unquote_string,
)
from zvonar.sip.uri import AbsoluteUri, SipUri, TelUri


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("i", "Call-ID"),
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("m", "Contact"),
        ("e", "Content-Encoding"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("f", "From"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("t", "To"),
        ("v", "Via"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
        ("max-forwards", "Max-Forwards"),
        ("x-custom-thing", "X-Custom-Thing"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_header_key_folds_compact_and_case() -> None:
    assert header_key("v") == header_key("VIA") == header_key("Via") == "via"
    assert header_key("C%6Fntact") == "c%6fntact"  # RFC 4475 esc02: not Contact
    for bad in ("", "Bad Name", "Bad:Name", "Ünï"):
        with pytest.raises(SipParseError):
            header_key(bad)


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("a, b,c", ["a", "b", "c"]),
        ('"Doe, John" <sip:j@x>, <sip:k@y>', ['"Doe, John" <sip:j@x>', "<sip:k@y>"]),
        ("<sip:a,b@x>;q=1, <sip:c@y>", ["<sip:a,b@x>;q=1", "<sip:c@y>"]),
        (r'"a \", b" <sip:x@y>, <sip:z@w>', [r'"a \", b" <sip:x@y>', "<sip:z@w>"]),
        ("single", ["single"]),
        ("a,,b", ["a", "", "b"]),
    ],
)
def test_split_comma_list(value: str, items: list[str]) -> None:
    assert split_comma_list(value) == items


def test_parse_params_lws_quotes_and_valueless() -> None:
    assert parse_params(" ;  tag = abc ; lr;q=0.5") == (("tag", "abc"), ("lr", None), ("q", "0.5"))
    assert parse_params(';x="a;b, \\"c\\""') == (("x", '"a;b, \\"c\\""'),)
    assert parse_params(";received=[2001:db8::1];r2=2001:db8::9:255") == (
        ("received", "[2001:db8::1]"),
        ("r2", "2001:db8::9:255"),
    )
    assert parse_params("") == () and parse_params("  ") == ()


@pytest.mark.parametrize("text", [";;", "; ;", ";a=", "junk;a=b", ";a b", ';a="open', ";a=b c"])
def test_parse_params_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_params(text)


def test_name_addr_forms() -> None:
    na = parse_name_addr('"Bob \\"B\\" Smith" <sip:bob@biloxi.com;transport=tcp>;tag=a73kszlfl')
    assert na.display_name == 'Bob "B" Smith'
    assert isinstance(na.uri, SipUri) and na.uri.param("transport") == "tcp"
    assert na.tag == "a73kszlfl"
    assert str(na) == '"Bob \\"B\\" Smith" <sip:bob@biloxi.com;transport=tcp>;tag=a73kszlfl'

    token = parse_name_addr("Bob Smith <sip:bob@biloxi.com>")
    assert token.display_name == "Bob Smith" and token.params == ()

    glued = parse_name_addr("caller<sip:caller@example.com>;tag=323")  # RFC 4475 lwsdisp
    assert glued.display_name == "caller" and glued.tag == "323"

    bare = parse_name_addr("<sip:a@b>")
    assert bare.display_name is None and str(bare) == "<sip:a@b>"

    empty = parse_name_addr('"" <sip:a@b>')
    assert empty.display_name == ""


def test_addr_spec_params_belong_to_the_header() -> None:
    # §20.10: without <>, ";tag" / ";user" etc. after the URI are header params.
    na = parse_name_addr("sip:+12125551212@server.phone2net.com;tag=887s;user=phone")
    assert isinstance(na.uri, SipUri) and na.uri.params == ()
    assert na.params == (("tag", "887s"), ("user", "phone"))
    assert str(na) == "<sip:+12125551212@server.phone2net.com>;tag=887s;user=phone"
    inside = parse_name_addr("<sip:+12125551212@server.phone2net.com;user=phone>;tag=887s")
    assert isinstance(inside.uri, SipUri) and inside.uri.param("user") == "phone"
    assert inside.params == (("tag", "887s"),)


def test_name_addr_other_schemes() -> None:
    assert parse_name_addr("tel:+1-201-555-0123;tag=x").uri == TelUri("+1-201-555-0123")
    assert parse_name_addr("isbn:2983792873").uri == AbsoluteUri("isbn", "2983792873")
    assert parse_name_addr("<http://www.example.com>;tag=1").uri == AbsoluteUri(
        "http", "//www.example.com"
    )


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # quotbal: unterminated quote
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # baddn: comma in token
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # regbadct: ? without <>
        '"Joe" <sip:joe@example.org>;;;;',  # badinv01
        "<sip:joe@example.org",
        '"Joe" sip:joe@example.org',
        "",
        "<>",
        "<sip:a@b> junk",
    ],
)
def test_name_addr_errors(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(value)


def test_name_addr_spaces_inside_angle_brackets_are_ignored() -> None:
    na = parse_name_addr('"Watson, Thomas" < sip:t.watson@example.org >')  # RFC 4475 badaspec
    assert isinstance(na.uri, SipUri) and na.uri.host == "example.org"


def test_name_addr_list_and_wildcard() -> None:
    items = parse_name_addr_list('"A, B" <sip:a@x>;q=0.7, sip:b@y;expires=60,<sip:c,d@z>')
    assert [str(i.uri) for i in items] == ["sip:a@x", "sip:b@y", "sip:c,d@z"]
    assert items[0].param("q") == "0.7" and items[1].param("expires") == "60"
    assert parse_name_addr_list(" * ") == [CONTACT_WILDCARD]
    assert CONTACT_WILDCARD.is_wildcard and str(CONTACT_WILDCARD) == "*"
    assert not items[0].is_wildcard
    with pytest.raises(SipParseError):
        parse_name_addr_list("<sip:a@x>,,<sip:b@y>")


def test_name_addr_with_tag_and_params() -> None:
    na = parse_name_addr("<sip:a@b>;tag=1")
    assert na.with_tag("2").tag == "2" and len(na.with_tag("2").params) == 1
    assert na.with_params(expires="30").param("expires") == "30"
    assert na.tag == "1"
    assert NameAddr(None, SipUri(host="h")).param("tag") is None


def test_via_basic_and_rport_forms() -> None:
    v = parse_via("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport")
    assert (v.transport, v.host, v.port, v.branch) == (
        "UDP",
        "pc33.atlanta.com",
        5066,
        "z9hG4bK776asdhds",
    )
    assert v.rport is True and v.received is None and v.sent_by == "pc33.atlanta.com:5066"
    assert parse_via("SIP/2.0/TCP h;rport=5070;received=192.0.2.1").rport == 5070
    assert parse_via("SIP/2.0/TCP h").rport is None
    assert str(v) == "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport"
    filled = v.with_params(received="192.0.2.9", rport="4000")
    assert filled.rport == 4000 and filled.received == "192.0.2.9"
    assert str(filled).endswith(";rport=4000;received=192.0.2.9")


def test_via_lws_everywhere_and_ipv6() -> None:
    v = parse_via("SIP  /   2.0 / tcp   spindle.example.com : 5061 ; branch  =   z9hG4bK9ikj8")
    assert (v.protocol, v.transport, v.host, v.port) == (
        "SIP/2.0",
        "TCP",
        "spindle.example.com",
        5061,
    )
    assert v.branch == "z9hG4bK9ikj8"
    v6 = parse_via("SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;branch=z9hG4bKx")
    assert (v6.host, v6.port, v6.received) == ("[2001:db8::9:1]", 6050, "2001:db8::9:255")
    assert Via("UDP", "h", 1).sent_by == "h:1"


def test_via_list() -> None:
    vias = parse_via_list("SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b:5070;branch=z9hG4bK2")
    assert [(v.host, v.transport) for v in vias] == [("a", "UDP"), ("b", "TCP")]


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 192.0.2.15;;,;,,",  # RFC 4475 badinv01
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP ho st",
        "SIP/2.0/UDP 2001:db8::1",
        "",
    ],
)
def test_via_errors(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_via_list(value)


def test_cseq() -> None:
    assert parse_cseq("0009 \t INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(1, "ACK")) == "1 ACK"
    assert parse_cseq(f"{2**31 - 1} BYE").seq == 2**31 - 1
    for bad in (f"{2**31} BYE", "36893488147419103232 REGISTER", "x INVITE", "1", "1 2 3", "-1 BYE",
                "1 IN VITE", "²1 BYE"):  # fmt: skip
        with pytest.raises(SipParseError):
            parse_cseq(bad)


def test_auth_params() -> None:
    scheme, params = parse_auth_params(
        'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth,auth-int",'
        ' nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5,'
        ' Username="a\\"b"'
    )
    assert scheme == "Digest"
    assert params == {
        "realm": "atlanta.com",
        "domain": "sip:ss1.carrier.com",
        "qop": "auth,auth-int",
        "nonce": "f84f1cec41e6cbe5aea9c8e88d359",
        "opaque": "",
        "stale": "FALSE",
        "algorithm": "MD5",
        "username": 'a"b',
    }
    assert parse_auth_params("Bearer abc.def") == ("Bearer", {"": "abc.def"})
    assert parse_auth_params("Basic") == ("Basic", {})
    with pytest.raises(SipParseError):
        parse_auth_params('Digest realm="open')
    with pytest.raises(SipParseError):
        parse_auth_params("")


def test_quote_unquote() -> None:
    assert quote_string('a"b\\c') == '"a\\"b\\\\c"'
    assert unquote_string(quote_string('a"b\\c')) == 'a"b\\c'
    assert unquote_string("token") == "token"
