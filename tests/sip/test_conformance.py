"""RFC 4475 / RFC 5118 torture messages: every corpus file is classified as its INDEX.md says.

The corpus lives in shared/conformance/sip (sibling of the repository root, or
$ZVONAR_SHARED_DIR). Each file gets exactly one expectation below; a new file without one
fails `test_every_file_has_an_expectation`.

Where INDEX.md allows a choice (reject or tolerate), the expectation records ours and the
comment says so. Where the answer is an *element* decision on a well-formed message (501 for
an unknown method, 416 for an unknown scheme, 420, 415, 406, 483, 401, the registrar's 400),
the parser must accept the message and expose the facts that layer decides on; the comment
names the layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zvonar.sip.headers import parse_auth_params
from zvonar.sip.message import (
    Drop,
    ParsedOk,
    Reject,
    SipMessage,
    SipRequest,
    SipResponse,
    classify_datagram,
    parse_message,
)
from zvonar.sip.uri import AbsoluteUri, SipUri, unescape, uri_equal


def _shared_dir() -> Path:
    override = os.environ.get("ZVONAR_SHARED_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[3] / "shared"


CORPUS = _shared_dir() / "conformance" / "sip"
RFC4475 = CORPUS / "rfc4475"
RFC5118 = CORPUS / "rfc5118" / "wire"


def _files() -> list[Path]:
    return sorted(
        [*RFC4475.glob("*.dat"), *(RFC4475 / "variants").glob("*.dat"), *RFC5118.glob("*.dat")]
    )


def _key(path: Path) -> str:
    return str(path.relative_to(CORPUS))


Check = Callable[[SipMessage], None]


@dataclass(frozen=True)
class Expect:
    kind: str  # "ok" | "reject" | "drop"
    status: int = 0
    check: Check | None = None
    note: str = field(default="")


def ok(check: Check | None = None, note: str = "") -> Expect:
    return Expect("ok", check=check, note=note)


def reject(status: int, note: str = "") -> Expect:
    return Expect("reject", status=status, note=note)


def drop(note: str = "") -> Expect:
    return Expect("drop", note=note)


def req(msg: SipMessage) -> SipRequest:
    assert isinstance(msg, SipRequest)
    return msg


def resp(msg: SipMessage) -> SipResponse:
    assert isinstance(msg, SipResponse)
    return msg


def sip(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


# -- facts for the messages that must parse ----------------------------------------------------


def wsinv(m: SipMessage) -> None:
    assert req(m).method == "INVITE"
    assert m.to.tag == "1918181833n"
    assert m.from_.display_name == 'J Rosenberg \\"'  # quoted-pairs resolved
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68  # leading zeros
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.header("Subject") == ""
    assert m.header("newfangledheader") == "newfangled value continued newfangled value"
    assert m.contacts[0].display_name == 'Quoted string ""'
    assert m.contacts[0].param("newparam") == "newvalue"
    assert m.contacts[0].param("q") == "0.33"
    assert sip(m.routes[0].uri).has_param("lr")
    assert len(m.body) == 150
    # A proxy forwards the odd unknown header unchanged.
    assert b"\r\nUnknownHeaderWithUnusualValue: ;;,,;;,;\r\n" in m.serialize()


def intmeth(m: SipMessage) -> None:
    # Parser layer only: the UAS answers 501 Not Implemented (unknown method).
    assert req(m).method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = sip(req(m).uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.cseq.method == req(m).method
    assert m.header("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def esc01(m: SipMessage) -> None:
    ruri = sip(req(m).uri)
    assert unescape(ruri.user or "") == "sips:user@example.com"
    assert ruri.host == "example.net"
    assert uri_equal(m.to.uri, sip(SipUri("sip", "user", None, "example.com")))
    assert unescape(sip(m.from_.uri).user or "") == "I have spaces"
    contact = sip(m.contacts[0].uri)
    assert unescape(contact.user or "") == "caller"
    assert contact.has_param("lr")
    assert contact.param("name") == "value%41"


def escnull(m: SipMessage) -> None:
    assert unescape(sip(m.to.uri).user or "") == "null-\x00-null"
    assert len(m.contacts) == 2
    assert not uri_equal(m.contacts[0].uri, m.contacts[1].uri)


def esc02(m: SipMessage) -> None:
    # The endpoint answers 501: RE%47IST%45R is not REGISTER (escapes are not decoded here).
    assert req(m).method == "RE%47IST%45R"
    assert len(m.contacts) == 2  # "C%6Fntact" is another (unknown) header
    assert m.header("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert m.to.display_name == m.from_.display_name == "%Z%45"


def lwsdisp(m: SipMessage) -> None:
    assert m.from_.display_name == "caller"
    assert sip(m.from_.uri).user == "caller"


def longreq(m: SipMessage) -> None:
    assert len(m.vias) == 34
    assert m.to.display_name is not None and len(m.to.display_name) > 100
    assert len(m.call_id) > 100
    assert sip(m.to.uri).port == 6000
    assert m.content_length == len(m.body) == 150


def dblreq(m: SipMessage) -> None:
    # Only the REGISTER; the bytes after Content-Length: 0 are ignored, never forwarded.
    assert req(m).method == "REGISTER"
    assert m.body == b""
    assert b"INVITE" not in m.serialize()


def semiuri(m: SipMessage) -> None:
    uri = sip(req(m).uri)
    assert unescape(uri.user or "") == "user;par=u@example.net"
    assert uri.host == "example.com" and uri.params == ()
    assert len(m.header_values("Accept")) == 6


def transports(m: SipMessage) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def mpart01(m: SipMessage) -> None:
    assert m.content_length == len(m.body) == 553
    assert m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert b"\xff" in m.body  # the binary part survives


def unreason(m: SipMessage) -> None:
    assert resp(m).status == 200
    assert resp(m).reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def noreason(m: SipMessage) -> None:
    assert (resp(m).status, resp(m).reason) == (100, "")


def badbranch(m: SipMessage) -> None:
    # Parses; the transaction layer sees a bare magic cookie and falls back to RFC 2543
    # matching (§17.2.3) — the INDEX allows that instead of a stateless 400.
    assert m.top_via.branch == "z9hG4bK"


def unkscm(m: SipMessage) -> None:
    # The element answers 416 Unsupported URI Scheme.
    assert req(m).uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")


def novelsc(m: SipMessage) -> None:
    # The element answers 416 (it supports no soap.beep).
    uri = req(m).uri
    assert isinstance(uri, AbsoluteUri) and uri.scheme == "soap.beep"


def unksm2(m: SipMessage) -> None:
    # The registrar answers 400: the To AOR is not SIP/SIPS.
    assert isinstance(m.to.uri, AbsoluteUri) and m.to.uri.scheme == "isbn"
    assert isinstance(m.from_.uri, AbsoluteUri) and m.from_.uri.scheme == "http"
    assert m.from_.tag == "3234233"
    assert m.contacts[0].uri == AbsoluteUri("name", "John_Smith")


def bext01(m: SipMessage) -> None:
    # UAS answers 420 listing Require; a proxy lists Proxy-Require.
    assert m.header_values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.header_values("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def invut(m: SipMessage) -> None:
    assert m.content_type == "application/unknownformat"  # UAS: 415 with Accept


def regaut01(m: SipMessage) -> None:
    # The registrar ignores the unknown scheme and challenges (401).
    assert parse_auth_params(m.header("Authorization") or "") == (
        "NoOneKnowsThisScheme",
        {"opaque-data": "here"},
    )


def sdp01(m: SipMessage) -> None:
    assert m.header_values("Accept") == ["text/nobodyKnowsThis"]  # UAS: 406


def zeromf(m: SipMessage) -> None:
    assert m.max_forwards == 0  # a proxy answers 483; the UAS answers normally


def bcast(m: SipMessage) -> None:
    # The UAC core discards a response with more than one Via (§8.1.3.3).
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


def cparam01(m: SipMessage) -> None:
    (c,) = m.contacts
    assert c.has_param("unknownparam") and sip(c.uri).params == ()


def cparam02(m: SipMessage) -> None:
    (c,) = m.contacts
    assert sip(c.uri).has_param("unknownparam") and c.params == ()


def regescrt(m: SipMessage) -> None:
    (c,) = m.contacts
    assert sip(c.uri).headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert str(c.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    assert not m.has_header("Route")


def inv2543(m: SipMessage) -> None:
    assert m.top_via.branch is None and m.from_.tag is None
    assert m.max_forwards is None and m.content_length is None
    assert m.body.startswith(b"v=0")


def badaspec(m: SipMessage) -> None:
    # We take the INDEX's lenient option: spaces inside <> around the URI are ignored.
    assert sip(m.to.uri).host == "example.org" and m.to.display_name == "Watson, Thomas"


def baddate(m: SipMessage) -> None:
    assert m.header("Date") == "Fri, 01 Jan 2010 16:00:00 EST"  # Date is not used by us


def ipv6_good(m: SipMessage) -> None:
    assert sip(req(m).uri).host == "[2001:db8::10]"
    assert m.top_via.host == "[2001:db8::9:1]"
    assert sip(m.contacts[0].uri).host == "[2001:db8::1]"


def port_ambiguous(m: SipMessage) -> None:
    uri = sip(req(m).uri)
    assert (uri.host, uri.port) == ("[2001:db8::10:5070]", None)


def port_unambiguous(m: SipMessage) -> None:
    uri = sip(req(m).uri)
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


def received_with_delim(m: SipMessage) -> None:
    assert m.top_via.received == "[2001:db8::9:255]"


def received_no_delim(m: SipMessage) -> None:
    assert m.top_via.received == "2001:db8::9:255"


def mult_ip_in_header(m: SipMessage) -> None:
    assert [(v.host, v.port, v.received) for v in m.vias] == [
        ("[2001:db8::9:1]", 6050, None),
        ("192.0.2.1", None, None),
        ("[2001:db8::9:255]", None, "192.0.2.200"),
    ]


def sdp_ip6(m: SipMessage) -> None:
    assert b"IN IP6 2001:db8::" in m.body  # SDP addresses stay unbracketed
    assert m.content_length == len(m.body)


def ipv4_mapped(m: SipMessage) -> None:
    assert [v.host for v in m.vias] == ["[::ffff:192.0.2.10]", "[::ffff:192.0.2.2]"]
    assert m.vias[0].port == 19823
    assert sip(m.contacts[0].uri).host == "[::ffff:192.0.2.2]"


def three_colons(m: SipMessage) -> None:
    assert sip(req(m).uri).host == "[2001:db8:::192.0.2.1]"  # tolerated (RFC 5118 §4.10)


def two_colons(m: SipMessage) -> None:
    assert sip(req(m).uri).host == "[2001:db8::192.0.2.1]"


EXPECT: dict[str, Expect] = {
    "rfc4475/wsinv.dat": ok(wsinv),
    "rfc4475/intmeth.dat": ok(intmeth),
    "rfc4475/esc01.dat": ok(esc01),
    "rfc4475/escnull.dat": ok(escnull),
    "rfc4475/esc02.dat": ok(esc02),
    "rfc4475/lwsdisp.dat": ok(lwsdisp),
    "rfc4475/longreq.dat": ok(longreq),
    "rfc4475/dblreq.dat": ok(dblreq),
    "rfc4475/semiuri.dat": ok(semiuri),
    "rfc4475/transports.dat": ok(transports),
    "rfc4475/mpart01.dat": ok(mpart01),
    "rfc4475/unreason.dat": ok(unreason),
    "rfc4475/noreason.dat": ok(noreason),
    "rfc4475/badinv01.dat": reject(400),
    "rfc4475/clerr.dat": reject(400, "UDP; on TCP the framer waits (test_framing)"),
    "rfc4475/ncl.dat": drop("negative Content-Length: discard on UDP"),
    "rfc4475/scalar02.dat": reject(400),
    "rfc4475/scalarlg.dat": drop("a broken response is discarded"),
    "rfc4475/quotbal.dat": reject(400),
    "rfc4475/ltgtruri.dat": reject(400),
    "rfc4475/lwsruri.dat": reject(400),
    "rfc4475/lwsstart.dat": reject(400, "INDEX: reject or tolerate; we reject"),
    "rfc4475/trws.dat": reject(400, "INDEX: reject or tolerate; we reject"),
    "rfc4475/escruri.dat": reject(400, "INDEX: 400 or ignore; we answer 400"),
    "rfc4475/baddate.dat": ok(baddate),
    "rfc4475/regbadct.dat": reject(400),
    "rfc4475/badaspec.dat": ok(badaspec, "INDEX: 400 or ignore the spaces; we ignore"),
    "rfc4475/baddn.dat": reject(400, "also missing its blank line (archive defect)"),
    "rfc4475/variants/baddn.terminated.dat": reject(400),
    "rfc4475/badvers.dat": reject(505),
    "rfc4475/mismatch01.dat": reject(400),
    "rfc4475/mismatch02.dat": reject(400, "INDEX: 501 or 400; the CSeq check comes first"),
    "rfc4475/bigcode.dat": drop(),
    "rfc4475/badbranch.dat": ok(badbranch),
    "rfc4475/insuf.dat": reject(400),
    "rfc4475/unkscm.dat": ok(unkscm),
    "rfc4475/novelsc.dat": ok(novelsc),
    "rfc4475/unksm2.dat": ok(unksm2),
    "rfc4475/bext01.dat": ok(bext01),
    "rfc4475/invut.dat": ok(invut),
    "rfc4475/regaut01.dat": ok(regaut01),
    "rfc4475/multi01.dat": reject(400),
    "rfc4475/mcl01.dat": reject(400, "INDEX: 400 or discard on UDP; we answer 400"),
    "rfc4475/bcast.dat": ok(bcast),
    "rfc4475/zeromf.dat": ok(zeromf),
    "rfc4475/cparam01.dat": ok(cparam01),
    "rfc4475/cparam02.dat": ok(cparam02),
    "rfc4475/regescrt.dat": ok(regescrt),
    "rfc4475/sdp01.dat": ok(sdp01),
    "rfc4475/inv2543.dat": ok(inv2543),
    "rfc4475/test.dat": drop("no SIP version, a header without colon, no Via to answer to"),
    "rfc5118/wire/ipv6-good.dat": ok(ipv6_good),
    "rfc5118/wire/ipv6-bad.dat": reject(400),
    "rfc5118/wire/port-ambiguous.dat": ok(port_ambiguous),
    "rfc5118/wire/port-unambiguous.dat": ok(port_unambiguous),
    "rfc5118/wire/via-received-param-with-delim.dat": ok(received_with_delim),
    "rfc5118/wire/via-received-param-no-delim.dat": ok(received_no_delim),
    "rfc5118/wire/ipv6-in-sdp.dat": ok(sdp_ip6),
    "rfc5118/wire/mult-ip-in-header.dat": ok(mult_ip_in_header),
    "rfc5118/wire/mult-ip-in-sdp.dat": ok(sdp_ip6),
    "rfc5118/wire/ipv4-mapped-ipv6.dat": ok(ipv4_mapped),
    "rfc5118/wire/ipv6-bug-abnf-3-colons.dat": ok(three_colons),
    "rfc5118/wire/ipv6-correct-abnf-2-colons.dat": ok(two_colons),
}

_NO_CORPUS = f"conformance corpus not found at {CORPUS} (set ZVONAR_SHARED_DIR)"


def _params(only_ok: bool = False) -> list[object]:
    files = _files()
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=_NO_CORPUS))]
    if only_ok:
        files = [p for p in files if EXPECT.get(_key(p), drop()).kind == "ok"]
    return [pytest.param(p, id=_key(p)) for p in files]


def test_every_file_has_an_expectation() -> None:
    files = _files()
    if not files:
        pytest.skip(_NO_CORPUS)
    keys = {_key(p) for p in files}
    assert keys - EXPECT.keys() == set(), "corpus files without an expectation"
    assert EXPECT.keys() - keys == set(), "expectations for files that are gone"


@pytest.mark.parametrize("path", _params())
def test_classify(path: Path) -> None:
    data = path.read_bytes()
    exp = EXPECT[_key(path)]
    result = classify_datagram(data)
    if exp.kind == "ok":
        assert isinstance(result, ParsedOk), result
        if exp.check is not None:
            exp.check(result.message)
    elif exp.kind == "reject":
        assert isinstance(result, Reject), result
        assert result.status == exp.status, result.reason
        response = result.response()
        wire = response.serialize()
        assert wire.startswith(f"SIP/2.0 {exp.status} ".encode())
        # The error response goes back along the request's own Via.
        assert response.header("Via") == result.request.header("Via") is not None
        assert response.header("CSeq") == result.request.header("CSeq")
    else:
        assert isinstance(result, Drop), result


def _expected_headers(msg: SipMessage) -> tuple[tuple[str, str], ...]:
    """What serialize() promises: headers as stored, Content-Length made correct."""
    out, seen = [], False
    for name, value in msg.headers:
        if name.lower() in ("content-length", "l"):
            if seen:
                continue
            value, seen = str(len(msg.body)), True
        out.append((name, value))
    if not seen:
        out.append(("Content-Length", str(len(msg.body))))
    return tuple(out)


@pytest.mark.parametrize("path", _params(only_ok=True))
def test_roundtrip(path: Path) -> None:
    """serialize(parse(m)) parses to the same message, and serializing is a fixed point."""
    first = parse_message(path.read_bytes())
    wire = first.serialize()
    second = parse_message(wire)
    assert type(second) is type(first)
    assert second.headers == _expected_headers(first)
    assert second.body == first.body
    if isinstance(first, SipRequest):
        assert isinstance(second, SipRequest)
        assert second.method == first.method and second.uri == first.uri
        assert str(second.uri) == str(first.uri)
    else:
        assert isinstance(second, SipResponse)
        assert (second.status, second.reason) == (first.status, first.reason)
    assert (second.from_, second.to, second.cseq, second.call_id) == (
        first.from_,
        first.to,
        first.cseq,
        first.call_id,
    )
    assert second.vias == first.vias and second.contacts == first.contacts
    assert second.routes == first.routes and second.record_routes == first.record_routes
    assert parse_message(wire).serialize() == wire
