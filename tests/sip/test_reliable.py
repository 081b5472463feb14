"""RFC 3262 (100rel) in the sans-IO UA core: bytes and a virtual clock in, datagrams out.

UAS: an INVITE that requires 100rel gets its 1xx reliably — Require, RSeq — retransmitted at
T1, 2·T1, … until a PRACK that names it (then 200; a PRACK naming nothing gets 481), dropped
after 64·T1; a second reliable 1xx waits for the first one's PRACK. UAC: a reliable 1xx to our
INVITE is PRACKed once (RAck), retransmissions and out-of-order ones reach nobody, the
PRACK's 200 stays in the UA."""

from __future__ import annotations

from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.transaction import TimerConfig
from zvonar.sip.ua import IncomingRequest, ResponseIn, UserAgent
from zvonar.sip.uri import parse_uri

from .test_ua import PEER, make_ua, request, sent

REQUIRE = "Require: 100rel\r\nSupported: 100rel\r\n"


def _invite(ua: UserAgent, extra: str = REQUIRE) -> IncomingRequest:
    ua.receive(request(extra=extra), PEER, 0.0)
    [inc] = ua.events()
    assert isinstance(inc, IncomingRequest)
    return inc


def _prack(rseq: int, *, cseq: int = 2, branch: str = "z9hG4bKp1") -> bytes:
    return request(
        "PRACK",
        to_tag="srv",
        cseq=cseq,
        via=f"SIP/2.0/UDP 10.0.0.1:5062;branch={branch};rport",
        extra=f"RAck: {rseq} 1 INVITE\r\n",
    )


def test_an_invite_requiring_100rel_is_taken_and_its_180_sent_until_pracked() -> None:
    ua = make_ua(timers=TimerConfig(t1=0.5, t2=4.0))
    inc = _invite(ua)  # no 420 any more
    ua.respond(inc, make_response(inc.request, 180, to_tag="srv"), 0.0)
    [(ringing, _)] = sent(ua)
    assert ringing.header_values("Require") == ["100rel"]
    rseq = int(ringing.header("RSeq") or 0)
    assert 1 <= rseq < 2**31
    times, now = [], 0.0
    while len(times) < 3:  # §3: T1, then doubling without a cap
        deadline = ua.next_deadline()
        assert deadline is not None
        now = deadline
        ua.handle_timer(now)
        again = sent(ua, now)
        if again:
            assert [r.header("RSeq") for r, _ in again] == [str(rseq)]  # the same 1xx
            times.append(now)
    assert times == [0.5, 1.5, 3.5]
    ua.receive(_prack(rseq + 5), PEER, now)  # names no 1xx of ours
    assert [(r.status, r.cseq.method) for r, _ in sent(ua, now)] == [(481, "PRACK")]
    ua.receive(_prack(rseq, branch="z9hG4bKp2"), PEER, now)
    assert [(r.status, r.cseq.method) for r, _ in sent(ua, now)] == [(200, "PRACK")]
    assert ua.events() == []  # the application never sees a PRACK
    ua.handle_timer(now + 60)
    assert sent(ua, now + 60) == []  # PRACKed: no more retransmissions


def test_a_second_reliable_1xx_waits_for_the_first_prack() -> None:
    ua = make_ua()
    inc = _invite(ua)
    ua.respond(inc, make_response(inc.request, 180, to_tag="srv"), 0.0)
    ua.respond(inc, make_response(inc.request, 183, to_tag="srv"), 0.0)
    [(first, _)] = sent(ua)
    assert first.status == 180
    rseq = int(first.header("RSeq") or 0)
    ua.receive(_prack(rseq), PEER, 0.1)
    out = sent(ua, 0.1)
    assert [(r.status, r.cseq.method) for r, _ in out] == [(200, "PRACK"), (183, "INVITE")]
    assert out[1][0].header("RSeq") == str(rseq + 1)  # §3: one higher


def test_an_unpracked_1xx_is_given_up_after_64_t1_and_a_final_answer_ends_it() -> None:
    ua = make_ua(timers=TimerConfig(t1=0.5, t2=4.0))
    inc = _invite(ua)
    ua.respond(inc, make_response(inc.request, 180, to_tag="srv"), 0.0)
    sent(ua)
    now = 0.0
    while (deadline := ua.next_deadline()) is not None and deadline < 40:
        now = deadline
        ua.handle_timer(now)
        sent(ua, now)
    assert ua.reliable.gave_up == 1 and ua.reliable.busy(inc.key) is None
    ua2 = make_ua()  # another call: its 200 ends the retransmissions at once
    inc2 = _invite(ua2)
    ua2.respond(inc2, make_response(inc2.request, 180, to_tag="srv"), 0.0)
    ua2.respond(inc2, make_response(inc2.request, 200, to_tag="srv"), 0.1)
    assert ua2.reliable.busy(inc2.key) is None


_SDP = b"v=0\r\no=z 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"


def _early_media(ua: UserAgent, inc: IncomingRequest) -> int:
    """A reliable 183 with our answer (early media) goes out: its RSeq."""
    ua.respond(inc, make_response(inc.request, 183, to_tag="srv", body=_SDP), 0.0)
    [(early, _)] = sent(ua)
    assert early.status == 183 and early.body == _SDP
    return int(early.header("RSeq") or 0)


def test_a_2xx_waits_for_the_prack_of_a_1xx_that_carried_sdp() -> None:
    ua = make_ua()
    inc = _invite(ua)
    rseq = _early_media(ua, inc)
    ua.respond(inc, make_response(inc.request, 200, to_tag="srv", body=_SDP), 0.05)
    assert sent(ua, 0.05) == []  # §3: not before the offer/answer of the 183 is settled
    ua.receive(_prack(rseq), PEER, 0.1)
    out = sent(ua, 0.1)
    assert [(r.status, r.cseq.method) for r, _ in out] == [(200, "PRACK"), (200, "INVITE")]


def test_a_2xx_waiting_for_a_prack_goes_out_when_the_ua_gives_up() -> None:
    ua = make_ua(timers=TimerConfig(t1=0.5, t2=4.0))
    inc = _invite(ua)
    _early_media(ua, inc)
    ua.respond(inc, make_response(inc.request, 200, to_tag="srv", body=_SDP), 1.0)
    finals: list[float] = []
    now = 0.0
    while (deadline := ua.next_deadline()) is not None and deadline <= 32.0:
        now = deadline
        ua.handle_timer(now)
        finals += [now for r, _ in sent(ua, now) if r.status == 200]
    assert finals[:1] == [32.0] and ua.reliable.gave_up == 1  # 64·T1, not before


def test_a_2xx_after_a_1xx_without_sdp_does_not_wait() -> None:
    ua = make_ua()
    inc = _invite(ua)
    ua.respond(inc, make_response(inc.request, 180, to_tag="srv"), 0.0)
    sent(ua)
    ua.respond(inc, make_response(inc.request, 200, to_tag="srv", body=_SDP), 0.05)
    assert [r.status for r, _ in sent(ua, 0.05)] == [200]


def test_without_require_the_1xx_stays_plain() -> None:
    ua = make_ua()
    inc = _invite(ua, extra="Supported: 100rel\r\n")
    ua.respond(inc, make_response(inc.request, 180, to_tag="srv"), 0.0)
    [(ringing, _)] = sent(ua)
    assert ringing.header("RSeq") is None and ua.reliable.busy(inc.key) is None


def _our_invite(ua: UserAgent) -> SipRequest:
    req = SipRequest(
        "INVITE",
        parse_uri("sip:+74950000000@192.0.2.7:40000"),
        (
            ("Via", ua.via_for(PEER)),
            ("From", "<sip:101@alpha.zvonar>;tag=ours"),
            ("To", "<sip:+74950000000@192.0.2.7>"),
            ("Call-ID", "out1"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:101@198.51.100.1:5060>"),
            ("Supported", "100rel"),
        ),
        b"",
    )
    ua.send_request(req, PEER, 0.0)
    ua.datagrams_to_send(0.0)
    return req


def _reliable_183(invite: SipRequest, rseq: int) -> bytes:
    resp = make_response(invite, 183, to_tag="far").adding_header("Require", "100rel")
    return (
        resp.adding_header("RSeq", str(rseq))
        .adding_header("Contact", "<sip:far@192.0.2.7:40000>")
        .serialize()
    )


def _requests_out(ua: UserAgent, now: float) -> list[SipRequest]:
    msgs = [parse_message(d) for d, _ in ua.datagrams_to_send(now)]
    return [m for m in msgs if isinstance(m, SipRequest)]


def test_a_reliable_183_to_our_invite_is_pracked_once() -> None:
    ua = make_ua()
    invite = _our_invite(ua)
    ua.receive(_reliable_183(invite, 7), PEER, 0.1)
    [prack] = _requests_out(ua, 0.1)
    assert prack.method == "PRACK" and prack.header("RAck") == "7 1 INVITE"
    assert prack.cseq.seq == 2 and prack.to.tag == "far"
    assert [type(e) for e in ua.events()] == [ResponseIn]
    ua.receive(_reliable_183(invite, 7), PEER, 0.2)  # a retransmission: nothing
    ua.receive(_reliable_183(invite, 9), PEER, 0.2)  # out of order: nothing
    assert _requests_out(ua, 0.2) == [] and ua.events() == []
    ok = make_response(prack, 200).serialize()
    ua.receive(ok, PEER, 0.3)
    assert ua.events() == []  # the PRACK's 200 is the UA's own business
    ua.receive(_reliable_183(invite, 8), PEER, 0.4)  # the next one: PRACKed too
    [again] = _requests_out(ua, 0.4)
    assert again.header("RAck") == "8 1 INVITE" and again.cseq.seq == 3


def test_a_plain_183_gets_no_prack() -> None:
    ua = make_ua()
    invite = _our_invite(ua)
    plain = make_response(invite, 183, to_tag="far").adding_header(
        "Contact", "<sip:far@192.0.2.7:40000>"
    )
    ua.receive(plain.serialize(), PEER, 0.1)
    assert _requests_out(ua, 0.1) == []
    [event] = ua.events()
    assert isinstance(event, ResponseIn) and isinstance(event.response, SipResponse)
