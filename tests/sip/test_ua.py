"""The sans-IO UA core: bytes and a virtual clock in, events and datagrams out (no sockets)."""

from __future__ import annotations

import itertools

import pytest

from zvonar.sip.auth import Credentials, DigestChallenger, InMemoryCredentialStore
from zvonar.sip.message import SipResponse, make_response, parse_message
from zvonar.sip.registrar import Registrar
from zvonar.sip.security import RateLimit, SecurityConfig, SecurityPolicy
from zvonar.sip.transaction import TimerConfig
from zvonar.sip.ua import (
    AckReceived,
    Flow,
    IncomingRequest,
    ResponseIn,
    UserAgent,
)

PEER = Flow("UDP", "192.0.2.7", 40000)


def make_ua(**kw: object) -> UserAgent:
    counter = itertools.count()
    ua = UserAgent(token=lambda: f"t{next(counter)}", **kw)  # type: ignore[arg-type]
    ua.set_local_address("UDP", "198.51.100.1", 5060)
    ua.set_local_address("TCP", "198.51.100.1", 5060)
    return ua


def request(method: str = "INVITE", *, ruri: str = "sip:answer@198.51.100.1", to_tag: str = "",
            via: str = "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK1;rport", cseq: int = 1,
            extra: str = "", body: str = "") -> bytes:  # fmt: skip
    to = "<sip:answer@198.51.100.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} {ruri} SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@example.com>;tag=ft\r\n"
        f"To: {to}\r\nCall-ID: c1@example.com\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:a@10.0.0.1:5062>\r\nMax-Forwards: 70\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def sent(ua: UserAgent, now: float = 0.0) -> list[tuple[SipResponse, Flow]]:
    out = []
    for data, flow in ua.datagrams_to_send(now):
        msg = parse_message(data)
        assert isinstance(msg, SipResponse)
        out.append((msg, flow))
    return out


def status_lines(ua: UserAgent) -> list[str]:
    """Start lines of what the core sends (error replies may lack headers a parser needs)."""
    return [data.split(b"\r\n", 1)[0].decode() for data, _ in ua.datagrams_to_send(0.0)]


def test_request_event_and_rfc3581_response_address() -> None:
    ua = make_ua()
    ua.receive(request("OPTIONS"), PEER, 0.0)
    [event] = ua.events()
    assert isinstance(event, IncomingRequest) and event.flow == PEER
    ua.respond(event, make_response(event.request, 200, to_tag="x"), 0.0)
    [(resp, flow)] = sent(ua)
    # §18.2.1 received (sent-by differs from the source), RFC 3581 rport filled in; the
    # response goes to the source address and port, not to the Via's 10.0.0.1:5062.
    assert resp.top_via.received == "192.0.2.7" and resp.top_via.rport == 40000
    assert flow == PEER


@pytest.mark.parametrize(
    ("data", "status", "header"),
    [
        (request("PUBLISH"), 405, "Allow"),
        (request("OPTIONS", ruri="tel:+15551234"), 416, None),
        (request("OPTIONS", extra="Require: 100rel, foo\r\n"), 420, "Unsupported"),
        (request("OPTIONS").replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), 505, None),
        (request("OPTIONS").replace(b"Max-Forwards: 70", b"Max-Forwards: 999"), 400, None),
        # §8.2.3: a session description we cannot read at all; the Accept says what we can.
        (request(extra="Content-Type: text/plain\r\n", body="hello"), 415, "Accept"),
        (
            request("UPDATE", to_tag="x", extra="Content-Type: application/xml\r\n", body="<a/>"),
            415,
            "Accept",
        ),
    ],
)
def test_stateless_rejections(data: bytes, status: int, header: str | None) -> None:
    ua = make_ua()
    ua.receive(data, PEER, 0.0)
    assert ua.events() == []
    [(resp, flow)] = sent(ua)
    assert resp.status == status and flow == PEER
    assert header is None or resp.has_header(header)
    counted = ua.counters.rejected_4xx if status < 500 else ua.counters.rejected_5xx
    assert counted == 1


def test_a_body_we_can_read_is_taken() -> None:
    """SDP, a SIP-I multipart body, or a body outside a session method, whatever its type."""
    sip_i = "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--"
    for data in (
        request(extra="Content-Type: application/sdp\r\n", body="v=0\r\n"),
        request(extra='Content-Type: multipart/mixed; boundary="b"\r\n', body=sip_i),
        request("OPTIONS", extra="Content-Type: text/plain\r\n", body="hello"),
    ):
        ua = make_ua()
        ua.receive(data, PEER, 0.0)
        [event] = ua.events()
        assert isinstance(event, IncomingRequest)


def test_400_carries_the_reason() -> None:
    ua = make_ua()
    ua.receive(request("OPTIONS").replace(b"Call-ID: c1@example.com\r\n", b""), PEER, 0.0)
    [line] = status_lines(ua)
    assert line.startswith("SIP/2.0 400 Bad Request (") and "Call-ID" in line


@pytest.mark.parametrize(
    "data",
    [b"\x00\xff garbage", b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", b"INVITE\r\n\r\n", b""],
)
def test_garbage_is_dropped_and_counted(data: bytes) -> None:
    ua = make_ua()
    ua.receive(data, PEER, 0.0)
    assert ua.events() == [] and ua.datagrams_to_send(0.0) == []
    assert ua.counters.dropped_malformed + ua.counters.keepalives == 1


def test_oversize_datagram_gets_513() -> None:
    ua = make_ua()
    ua.receive(request("OPTIONS"), PEER, 0.0, truncated=True)
    [(resp, _)] = sent(ua)
    assert resp.status == 513


def test_bye_outside_a_dialog_gets_481() -> None:
    ua = make_ua()
    ua.receive(request("BYE", to_tag="nope", cseq=2), PEER, 0.0)
    assert ua.events() == []
    [(resp, _)] = sent(ua)
    assert resp.status == 481


def test_2xx_retransmitted_until_ack_at_rfc_intervals() -> None:
    ua = make_ua(timers=TimerConfig(t1=0.5, t2=4.0))
    ua.receive(request(body="v=0\r\n"), PEER, 0.0)
    [inc] = ua.events()
    assert isinstance(inc, IncomingRequest)
    ua.respond(inc, make_response(inc.request, 200, to_tag="srv"), 0.0)
    assert [r.status for r, _ in sent(ua)] == [200]
    times = []
    now = 0.0
    while len(times) < 4:  # §13.3.1.4: T1, then doubling (0.5, 1.0, 2.0, 4.0)
        deadline = ua.next_deadline()
        assert deadline is not None
        now = deadline
        ua.handle_timer(now)
        if sent(ua, now):
            times.append(now)
    assert times == [0.5, 1.5, 3.5, 7.5]
    ack = request("ACK", to_tag="srv", via="SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK2")
    ua.receive(ack, PEER, now)
    [event] = ua.events()
    assert isinstance(event, AckReceived) and event.dialog is not None
    assert event.dialog.id.local_tag == "srv"
    ua.handle_timer(now + 10)
    assert sent(ua, now + 10) == []  # the ACK stopped the retransmissions


def test_registrar_with_digest() -> None:
    store = InMemoryCredentialStore([Credentials.from_password("alice", "z", "pw", ["MD5"])])
    ua = make_ua(registrar=Registrar(), challenger=DigestChallenger("z", b"k" * 32, store))
    reg = request("REGISTER", ruri="sip:198.51.100.1").replace(b"answer@", b"alice@")
    ua.receive(reg, PEER, 0.0)
    [(resp, _)] = sent(ua)
    assert resp.status == 401 and resp.has_header("WWW-Authenticate")
    assert ua.counters.auth_challenges == 1 and ua.events() == []  # handled in the core


def test_unauthenticated_register_binds_the_source_flow() -> None:
    ua = make_ua(registrar=Registrar())
    reg = request("REGISTER", ruri="sip:198.51.100.1").replace(b"answer@", b"bob@")
    ua.receive(reg, PEER, 0.0)
    [(resp, _)] = sent(ua)
    assert resp.status == 200
    [binding] = ua.lookup("sip:bob@198.51.100.1", 1.0)
    assert ua.binding_flow(binding) == PEER  # RFC 3581: where it came from, not the Contact


def test_flood_is_dropped_by_the_security_policy() -> None:
    policy = SecurityPolicy(SecurityConfig(rate_limits={"*": RateLimit(rate=1.0, burst=2.0)}))
    ua = make_ua(security=policy)
    for i in range(5):
        ua.receive(request("OPTIONS", via=f"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{i}"), PEER, 0.0)
    assert len(ua.events()) == 2
    assert ua.counters.blocked == 3


def test_stray_2xx_retransmission_is_reacked() -> None:
    ua = make_ua()
    invite = parse_message(request(via="SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKout"))
    key = ua.send_request(invite, PEER, 0.0)  # type: ignore[arg-type]
    ua.datagrams_to_send(0.0)
    ok = make_response(invite, 200, to_tag="remote")  # type: ignore[arg-type]
    ok = ok.adding_header("Contact", "<sip:b@192.0.2.7:40000>")
    ua.receive(ok.serialize(), PEER, 0.1)
    [event] = ua.events()
    assert isinstance(event, ResponseIn) and event.key == key and event.dialog is not None
    ua.send_ack(event.dialog, invite, PEER)  # type: ignore[arg-type]
    [(ack, flow)] = ua.datagrams_to_send(0.1)
    assert ack.startswith(b"ACK sip:b@192.0.2.7:40000") and flow == PEER
    # The transaction layer passes the retransmitted 2xx up; the core re-sends the same ACK.
    ua.receive(ok.serialize(), PEER, 0.6)
    assert [d for d, _ in ua.datagrams_to_send(0.6)] == [ack]


def test_mangled_messages_never_raise() -> None:
    """Thousands of mutated INVITE/ACK/BYE/REGISTER/responses through the core and the echo
    PBX: each is answered, dropped or processed — nothing raises (fixed seed)."""
    import random

    from zvonar.sip.io.testserver import EchoPbx

    store = InMemoryCredentialStore([Credentials.from_password("alice", "z", "pw")])
    ua = make_ua(registrar=Registrar(), challenger=DigestChallenger("z", b"k" * 32, store))
    pbx = EchoPbx(ua)
    bases = [
        request(body="v=0\r\nc=IN IP4 10.0.0.1\r\n"),
        request("ACK", to_tag="t1"),
        request("BYE", to_tag="t1", cseq=2),
        request("REGISTER", ruri="sip:198.51.100.1").replace(b"answer@", b"alice@"),
        make_response(parse_message(request()), 200, to_tag="r").serialize(),  # type: ignore[arg-type]
    ]
    junk = [b";", b",", b"<", b">", b"tag=", b" ", b"\r\n", b"::", b"%", b'"', b";rport", b"[::1]"]
    rng = random.Random(2024)
    now = 0.0
    for _ in range(3000):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 2)):
            pos = rng.randrange(len(data))
            roll = rng.random()
            if roll < 0.4:
                data[pos] = rng.randrange(256)
            elif roll < 0.7:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = rng.choice(junk)
        now += 0.01
        ua.receive(bytes(data), PEER, now)
        for event in ua.events():
            pbx.handle_event(event, now)
        ua.datagrams_to_send(now)
        deadline = ua.next_deadline()
        if deadline is not None and deadline <= now:
            ua.handle_timer(now)
    c = ua.counters
    # The mix really exercised every path (counts are fixed by the seed).
    assert c.requests_received > 300 and c.rejected_4xx > 300 and c.dropped_malformed > 300
