"""Property tests: generated valid messages round-trip; arbitrary bytes never crash the parser."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zvonar.sip.errors import SipParseError
from zvonar.sip.headers import NameAddr, Via, quote_string
from zvonar.sip.message import (
    Drop,
    ParsedOk,
    Reject,
    SipRequest,
    SipResponse,
    classify_datagram,
    parse_message,
)
from zvonar.sip.uri import SipUri, parse_uri, uri_equal

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda g: "[" + ":".join(f"{x:x}" for x in g) + "]"
)
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.none() | st.integers(1, 65535)
escaped = st.sampled_from(["%20", "%41", "%00", "%3B", "%40", "%C3%A9"])
users = st.lists(
    st.one_of(st.text(ALNUM + "-_.!~*'()&=+$,;?/", min_size=1, max_size=6), escaped),
    min_size=1,
    max_size=4,
).map("".join)
pchars = st.text(ALNUM + "-_.!~*'()[]/:&+$", min_size=1, max_size=8)
uri_params = st.lists(st.tuples(pchars, st.none() | pchars), max_size=3).map(tuple)
gen_values = st.one_of(
    tokens,
    st.text(ALNUM + ' ,;:<>@\\"éж', max_size=10).map(quote_string),
)
header_params = st.lists(st.tuples(tokens, st.none() | gen_values), max_size=3).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    return SipUri(
        draw(st.sampled_from(["sip", "sips"])),
        draw(st.none() | users),
        None,
        draw(hosts),
        draw(ports),
        draw(uri_params),
        draw(st.lists(st.tuples(pchars.filter(lambda s: "&" not in s), st.text(ALNUM, max_size=5)),
                      max_size=2).map(tuple)),
    )  # fmt: skip


# Free text: printable ASCII, LWS, quotes/backslashes and some non-ASCII (UTF-8 on the wire).
TEXT = "".join(map(chr, range(32, 127))) + "\téжü大€"
display_names = st.none() | st.text(TEXT, max_size=15)


@st.composite
def name_addrs(draw: st.DrawFn, tag: bool = False) -> NameAddr:
    params = draw(header_params)
    params = tuple(p for p in params if p[0].lower() != "tag")
    if tag:
        params = (*params, ("tag", draw(tokens)))
    return NameAddr(draw(display_names), draw(sip_uris()), params)


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params: list[tuple[str, str | None]] = [("branch", "z9hG4bK" + draw(tokens))]
    if draw(st.booleans()):
        params.append(("rport", draw(st.none() | st.integers(1, 65535).map(str))))
    if draw(st.booleans()):
        params.append(("received", draw(ipv4)))
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]))
    return Via(transport, draw(hosts), draw(ports), tuple(params))


@dataclass
class Generated:
    wire: bytes
    request: bool
    method: str
    uri: SipUri
    status: int
    reason: str
    vias: list[Via]
    from_: NameAddr
    to: NameAddr
    call_id: str
    cseq: int
    contacts: list[NameAddr]
    unknown: list[tuple[str, str]]
    body: bytes


def _name(draw: st.DrawFn, full: str, compact: str | None) -> str:
    choices = [full, full.upper(), full.lower()] + ([compact] if compact else [])
    name = draw(st.sampled_from(choices))
    return name + draw(st.sampled_from(["", " ", "\t"]))  # LWS before HCOLON


def _fold(draw: st.DrawFn, value: str) -> str:
    """Maybe fold the value at a lone space (§7.3.1 LWS); unfolding gives back one SP. Not
    next to other white space: ``[*WSP CRLF] 1*WSP`` is one LWS whatever its length, so a fold
    beside another blank would rightly unfold to a single SP for all of them."""
    lone = [
        i
        for i, ch in enumerate(value)
        if ch == " "
        and value[i - 1 : i] not in (" ", "\t")
        and value[i + 1 : i + 2] not in (" ", "\t")
    ]
    if lone and draw(st.booleans()):
        i = lone[0]
        return value[:i] + "\r\n" + draw(st.sampled_from([" ", "\t", "   "])) + value[i + 1 :]
    return value


@st.composite
def messages(draw: st.DrawFn) -> Generated:
    request = draw(st.booleans())
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE", "MESSAGE"]) | tokens)
    uri = draw(sip_uris()).without_headers()
    status = draw(st.integers(100, 699))
    reason = draw(st.text(TEXT, max_size=20)).strip()
    via_list = draw(st.lists(vias(), min_size=1, max_size=3))
    from_ = draw(name_addrs(tag=True))
    to = draw(name_addrs(tag=not request))
    call_id = draw(tokens) + draw(st.sampled_from(["", "@" + draw(hostnames)]))
    cseq = draw(st.integers(0, 2**31 - 1))
    contacts = draw(st.lists(name_addrs(), max_size=3))
    unknown = draw(
        st.lists(
            st.tuples(
                st.text(ALNUM, min_size=1, max_size=8).map("X-".__add__),
                st.text(TEXT, max_size=30).map(str.strip),
            ),
            max_size=3,
        )
    )
    body = draw(st.binary(max_size=200))
    lines = [f"{method} {uri} SIP/2.0" if request else f"SIP/2.0 {status} {reason}"]
    hdrs: list[tuple[str, str]] = []
    hdrs.append((_name(draw, "From", "f"), str(from_)))
    hdrs.append((_name(draw, "To", "t"), str(to)))
    hdrs.append((_name(draw, "Call-ID", "i"), call_id))
    hdrs.append((_name(draw, "CSeq", None), f"{cseq} {method}"))
    if contacts:
        hdrs.append((_name(draw, "Contact", "m"), ", ".join(str(c) for c in contacts)))
    hdrs += unknown
    hdrs = draw(st.permutations(hdrs))
    # Vias keep their relative order, as one comma list or one row each.
    if draw(st.booleans()):
        vias_rows = [(_name(draw, "Via", "v"), ", ".join(str(v) for v in via_list))]
    else:
        vias_rows = [(_name(draw, "Via", "v"), str(v)) for v in via_list]
    at = draw(st.integers(0, len(hdrs)))
    hdrs = [*hdrs[:at], *vias_rows, *hdrs[at:]]
    hdrs.append((_name(draw, "Content-Length", "l"), str(len(body))))
    for name, value in hdrs:
        sep = draw(st.sampled_from([": ", ":", ":  ", ":\t"]))
        lines.append(f"{name}{sep}{_fold(draw, value)}")
    wire = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return Generated(wire, request, method, uri, status, reason, via_list, from_, to, call_id,
                     cseq, contacts, unknown, body)  # fmt: skip


@FAST
@given(messages())
def test_generated_messages_parse_and_round_trip(g: Generated) -> None:
    m = parse_message(g.wire)
    if g.request:
        assert isinstance(m, SipRequest)
        assert m.method == g.method and m.uri == g.uri
    else:
        assert isinstance(m, SipResponse)
        assert (m.status, m.reason) == (g.status, g.reason)
    assert m.vias == g.vias and m.top_via == g.vias[0]
    assert m.from_ == g.from_ and m.to == g.to and m.contacts == g.contacts
    assert m.call_id == g.call_id and (m.cseq.seq, m.cseq.method) == (g.cseq, g.method)
    assert m.body == g.body
    for name, value in g.unknown:
        assert value in m.header_values(name)
    assert isinstance(classify_datagram(g.wire), ParsedOk)
    _assert_round_trip(g.wire)


def _assert_round_trip(data: bytes) -> None:
    """serialize(parse(m)) parses to the same message; serializing again is a fixed point."""
    first = parse_message(data)
    wire = first.serialize()
    second = parse_message(wire)
    assert second.headers == first.headers and second.body == first.body
    assert (second.from_, second.to, second.vias, second.contacts, second.cseq) == (
        first.from_,
        first.to,
        first.vias,
        first.contacts,
        first.cseq,
    )
    assert second.serialize() == wire


@FAST
@given(sip_uris())
def test_uri_round_trip(uri: SipUri) -> None:
    parsed = parse_uri(str(uri))
    assert parsed == uri and uri_equal(parsed, uri)


NASTY = [b"\r\n", b" ", b";", b",", b'"', b"<", b">", b":", b"%", b"\x00", b"\xff", b"\xe2\x85\xa8",
         b"[", b"=", b"\r\n ", b"\\"]  # fmt: skip


def _never_crash(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        pass
    else:
        msg.serialize()
    result = classify_datagram(data)
    assert isinstance(result, ParsedOk | Reject | Drop)
    if isinstance(result, Reject):
        result.response().serialize()
    elif isinstance(result, ParsedOk):
        # Everything a layer above may touch after classification is safe.
        m = result.message
        _ = (m.vias, m.contacts, m.routes, m.record_routes, m.max_forwards, m.expires)
        _ = (m.content_length, [v.rport for v in m.vias], m.serialize())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
@example(b"INVITE sip:a@b SIP/2.0\r\n\r\n")
@example(b"SIP/2.0 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n")
@example(b"A B C\r\nVia: \xff\r\n\r\n")
def test_random_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    _never_crash(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_mutated_messages_only_raise_sip_parse_error(g: Generated, data: st.DataObject) -> None:
    wire = bytearray(g.wire)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        chunk = data.draw(st.sampled_from(NASTY))
        if action == "insert":
            wire[pos:pos] = chunk
        elif action == "delete":
            del wire[pos : pos + len(chunk)]
        elif pos < len(wire):
            wire[pos] = chunk[0]
    _never_crash(bytes(wire))
