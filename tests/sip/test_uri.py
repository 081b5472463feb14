"""URIs: RFC 3261 §19.1 (sip/sips), RFC 3966 (tel), RFC 5118 (IPv6), §19.1.4 comparison."""

from __future__ import annotations

import pytest

from zvonar.sip.errors import SipParseError
from zvonar.sip.uri import (
    AbsoluteUri,
    SipUri,
    TelUri,
    escape,
    parse_uri,
    unescape,
    uri_equal,
)


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_full_sip_uri_components() -> None:
    u = sip("sips:alice:secretword@Atlanta.COM:5061;transport=TCP;lr?subject=project%20x&x=y")
    assert u.scheme == "sips"
    assert (u.user, u.password, u.host, u.port) == ("alice", "secretword", "atlanta.com", 5061)
    assert u.params == (("transport", "TCP"), ("lr", None))
    assert u.headers == (("subject", "project%20x"), ("x", "y"))
    assert u.transport == "tcp" and u.has_param("LR") and u.param("lr") is None
    assert u.hostport == "atlanta.com:5061"


def test_scheme_is_case_insensitive_and_serializes_lowercase() -> None:
    assert str(parse_uri("SIP:bob@Biloxi.com")) == "sip:bob@biloxi.com"


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sip:alice:pw@atlanta.com;maddr=239.255.255.1;ttl=15",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sips:1212@gateway.com",
        "sip:alice@192.0.2.4:5060",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:[2001:db8::10]:5070;transport=tcp",
        "sip:user;par=u%40example.net@example.com",
    ],
)
def test_serialization_round_trips(text: str) -> None:
    assert str(parse_uri(text)) == text
    assert parse_uri(str(parse_uri(text))) == parse_uri(text)


def test_user_part_may_hold_semicolon_question_mark_and_slash() -> None:
    u = sip("sip:user;par=u%40example.net@example.com")  # RFC 4475 semiuri
    assert u.user == "user;par=u%40example.net" and u.params == ()
    assert unescape(u.user) == "user;par=u@example.net"


def test_ipv6_references_rfc5118() -> None:
    assert (sip("sip:[2001:DB8::10]").host, sip("sip:[2001:db8::10]").port) == (
        "[2001:db8::10]",
        None,
    )
    amb = sip("sip:[2001:db8::10:5070]")  # §4.3: 5070 is part of the address
    assert (amb.host, amb.port) == ("[2001:db8::10:5070]", None)
    unamb = sip("sip:[2001:db8::10]:5070")
    assert (unamb.host, unamb.port) == ("[2001:db8::10]", 5070)
    assert sip("sip:u@[::ffff:192.0.2.2]").host == "[::ffff:192.0.2.2]"


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # RFC 5118 §4.2: unbracketed IPv6
        "sip:user@host:port",
        "sip:user@host:70000",
        "sip:@host",
        "sip:user@",
        "sip:",
        "sip:user@ho st",
        "sip:user@host;",  # empty param
        "sip:user@host;a=",  # empty param value
        "sip:us%zzer@host",  # bad escape
        "sip:user@host?x",  # header without "="
        "sip:user@[2001:db8::1",
        "sip:user@[]",
        "<sip:user@host>",
        "nocolon",
        ":nothing",
        "1sip:x",
        "tel:",
        "tel:abc-xyz",
        "http://a b",
    ],
)
def test_malformed_uris_raise(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status_hint == 400


def test_tel_uri() -> None:
    t = parse_uri("tel:+1-201-555-0123;ext=42;phone-context=example.com")
    assert isinstance(t, TelUri)
    assert t.is_global and t.digits == "+12015550123"
    assert t.param("EXT") == "42"
    assert str(t) == "tel:+1-201-555-0123;ext=42;phone-context=example.com"
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelUri) and not local.is_global


def test_other_schemes_kept_verbatim() -> None:
    u = parse_uri("soap.beep://192.0.2.103:3002")
    assert u == AbsoluteUri("soap.beep", "//192.0.2.103:3002")
    assert str(u) == "soap.beep://192.0.2.103:3002"
    assert parse_uri("urn:service:sos") == AbsoluteUri("urn", "service:sos")


def test_param_lookup_unescapes_names_and_values() -> None:
    # RFC 4475 esc01: ";%6C%72" is ";lr" and n%61me=v%61lue%25%34%31 is name=value%41.
    u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert u.has_param("lr") and u.param("name") == "value%41"
    assert str(u) == "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"


def test_with_params_and_without_params() -> None:
    u = sip("sip:a@b;transport=udp")
    v = u.with_params(lr=None, transport="tcp")
    assert str(v) == "sip:a@b;transport=tcp;lr"
    assert str(v.without_params("TRANSPORT")) == "sip:a@b;lr"
    assert str(u) == "sip:a@b;transport=udp"  # immutable
    assert str(sip("sip:a@b?x=y").without_headers()) == "sip:a@b"


def test_escape_and_unescape() -> None:
    assert escape("I have spaces") == "I%20have%20spaces"
    assert unescape(escape("ü@x")) == "ü@x"
    assert unescape("no-escapes") == "no-escapes"


# -- §19.1.4 comparison ------------------------------------------------------------------------

EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:alice@[2001:db8::1]", "sip:alice@[2001:DB8:0::1]"),
    ("sip:alice@atlanta.com;transport=udp", "sip:alice@atlanta.com"),
]  # fmt: skip

UNEQUAL = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp;user=phone"),
    ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;newparam=6"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;maddr=239.1.1.1"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;ttl=1"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;method=INVITE"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:a%3Bb@host", "sip:a;b@host"),  # ";" is reserved: escaped != literal
    ("sip:a:pw@host", "sip:a@host"),
    ("sip:%00@host", "sip:%00%00@host"),  # RFC 4475 escnull: two distinct contacts
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_uri_equal(a: str, b: str) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b))
    assert uri_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(("a", "b"), UNEQUAL)
def test_uri_not_equal(a: str, b: str) -> None:
    assert not uri_equal(parse_uri(a), parse_uri(b))
    assert not uri_equal(parse_uri(b), parse_uri(a))


def test_uri_equal_tel_and_other_schemes() -> None:
    assert uri_equal(parse_uri("tel:+1-201-555-0123"), parse_uri("tel:+1.201.5550123"))
    assert not uri_equal(parse_uri("tel:+12015550123"), parse_uri("tel:+12015550124"))
    assert not uri_equal(parse_uri("tel:+1201;ext=1"), parse_uri("tel:+1201"))
    assert uri_equal(parse_uri("urn:x:y"), parse_uri("URN:x:y"))
    assert not uri_equal(parse_uri("tel:+1201"), parse_uri("sip:+1201@h"))
