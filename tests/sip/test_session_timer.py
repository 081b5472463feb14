"""RFC 4028 (session timers) in the sans-IO UA core: bytes and a virtual clock in, datagrams
and events out.

UAS: an INVITE requiring ``timer`` is taken; our 2xx carries the negotiated Session-Expires
and refresher (``Require: timer`` when the peer refreshes); too short an interval gets 422 +
Min-SE, or is raised when the peer does not support timers; a peer that stops refreshing is
given up min(32, SE/3) before the expiry. Refresher: UPDATE (or a re-INVITE with our last
SDP) at half the interval, its responses kept in the UA; 408/481/no answer end the session,
491 waits, 405 to UPDATE turns to re-INVITE. UAC: the 2xx to our INVITE decides who refreshes.
"""

from __future__ import annotations

from zvonar.sip.dialog import DialogId
from zvonar.sip.message import SipMessage, SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.ua import IncomingRequest, ResponseIn, SessionExpired, UaEvent, UserAgent
from zvonar.sip.ua.session_timer import parse_session_expires
from zvonar.sip.uri import parse_uri

from .test_ua import PEER, make_ua, request

SDP = b"v=0\r\no=z 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"


def _out(ua: UserAgent, now: float) -> list[SipMessage]:
    return [parse_message(d) for d, _ in ua.datagrams_to_send(now)]


def _answer(ua: UserAgent, extra: str, now: float = 0.0) -> tuple[IncomingRequest, SipResponse]:
    """The peer's INVITE with ``extra`` headers, answered 200 by the application."""
    ua.receive(request(extra=extra), PEER, now)
    [inc] = ua.events()
    assert isinstance(inc, IncomingRequest)
    ok = make_response(
        inc.request, 200, to_tag="srv", body=SDP, headers=(("Content-Type", "application/sdp"),)
    )
    ok = ok.adding_header("Contact", "<sip:z@198.51.100.1:5060>")
    ua.respond(inc, ok, now)
    [sent] = _out(ua, now)
    assert isinstance(sent, SipResponse) and sent.status == 200
    ack = request("ACK", to_tag="srv", via="SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport")
    ua.receive(ack, PEER, now)  # else our 200 goes out again at T1, 2·T1…
    ua.events()
    return inc, sent


def _run(ua: UserAgent, now: float = 0.0) -> tuple[float, list[SipMessage], list[UaEvent]]:
    """Fire the UA's timers until it sends something or tells the application something:
    when, what it sent and the events."""
    while True:
        deadline = ua.next_deadline()
        assert deadline is not None and deadline < now + 1000, "nothing more would happen"
        now = deadline
        ua.handle_timer(now)
        out, events = _out(ua, now), list(ua.events())
        if out or events:
            return now, out, events


def test_an_invite_requiring_timer_is_taken_and_the_peer_refreshes() -> None:
    ua = make_ua()
    _inc, ok = _answer(ua, "Supported: timer\r\nRequire: timer\r\nSession-Expires: 120\r\n")
    assert ok.header("Session-Expires") == "120;refresher=uac"  # it supports timers: it refreshes
    assert "timer" in ok.header_values("Require")
    # The peer refreshes at 60 s (an UPDATE the application answers): the timer starts over.
    ua.receive(
        request("UPDATE", to_tag="srv", cseq=2, via="SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKu",
                extra="Session-Expires: 120;refresher=uac\r\nSupported: timer\r\n"),
        PEER, 60.0,
    )  # fmt: skip
    [update] = ua.events()
    assert isinstance(update, IncomingRequest)
    ua.respond(update, make_response(update.request, 200), 60.0)
    [refreshed] = _out(ua, 60.0)
    assert isinstance(refreshed, SipResponse)
    assert refreshed.header("Session-Expires") == "120;refresher=uac"
    # Then silence: given up min(32, 120/3) = 32 s before the expiry at 180 s, once.
    when, out, [expired] = _run(ua, 60.0)
    assert out == []
    assert isinstance(expired, SessionExpired) and when == 148.0 and expired.interval == 120
    assert ua.next_deadline() is None and ua.sessions.expired == 1


def test_too_short_an_interval_gets_422_or_is_raised() -> None:
    ua = make_ua(min_session_expires=300)
    ua.receive(request(extra="Supported: timer\r\nSession-Expires: 100\r\n"), PEER, 0.0)
    [too_short] = _out(ua, 0.0)
    assert isinstance(too_short, SipResponse) and too_short.status == 422
    assert too_short.header("Min-SE") == "300" and ua.events() == []
    # A peer that does not support timers cannot retry: the interval is raised, we refresh.
    ua2 = make_ua(min_session_expires=300)
    _inc, ok = _answer(ua2, "Session-Expires: 100\r\n")
    assert ok.header("Session-Expires") == "300;refresher=uas"
    assert "timer" not in ok.header_values("Require")


def test_we_refresh_with_update_when_the_peer_allows_it() -> None:
    ua = make_ua()
    _answer(ua, "Session-Expires: 200;refresher=uas\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n")
    when, [update], _ = _run(ua)
    assert when == 100.0 and isinstance(update, SipRequest) and update.method == "UPDATE"
    assert update.header("Session-Expires") == "200;refresher=uac" and update.body == b""
    assert update.to.tag == "ft" and update.from_.tag == "srv"  # in the dialog, our side
    ua.receive(make_response(update, 200).adding_header("Session-Expires", "200;refresher=uac")
               .serialize(), PEER, 100.1)  # fmt: skip
    assert ua.events() == [] and ua.sessions.refreshed == 1  # kept in the UA
    when, [again], _ = _run(ua, 100.1)
    assert when == 200.1 and isinstance(again, SipRequest) and again.method == "UPDATE"
    assert again.cseq.seq == update.cseq.seq + 1
    ua.receive(make_response(again, 481).serialize(), PEER, 200.2)  # the peer forgot the call
    [expired] = ua.events()
    assert isinstance(expired, SessionExpired) and ua.next_deadline() is not None  # txn timers


def test_we_refresh_by_reinvite_with_our_sdp_and_ack_it() -> None:
    ua = make_ua()
    _answer(ua, "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\n")  # no UPDATE
    when, [reinvite], _ = _run(ua)
    assert when == 45.0 and isinstance(reinvite, SipRequest) and reinvite.method == "INVITE"
    assert reinvite.body == SDP  # the same description, same version: no change
    assert reinvite.header("Content-Type") == "application/sdp"
    ok = make_response(reinvite, 200, body=SDP, headers=(("Content-Type", "application/sdp"),))
    ok = ok.adding_header("Contact", "<sip:a@10.0.0.1:5062>")
    ua.receive(ok.serialize(), PEER, 45.1)
    [ack] = _out(ua, 45.1)
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.cseq.seq == reinvite.cseq.seq and ua.events() == []


def test_a_refresh_nobody_answers_ends_the_session_and_491_waits() -> None:
    ua = make_ua()
    _answer(ua, "Session-Expires: 90;refresher=uas\r\nAllow: UPDATE\r\n")
    _when, [update], _ = _run(ua)
    assert isinstance(update, SipRequest)
    ua.receive(make_response(update, 491).serialize(), PEER, 45.0)
    assert ua.events() == []
    when, [retry], _ = _run(ua, 45.0)
    # Half of what is left before the expiry at 90 s; unanswered, the expiry itself ends it
    # (before the retry's own Timer F at 99.5 s).
    assert isinstance(retry, SipRequest) and retry.method == "UPDATE" and when == 67.5
    events: list[UaEvent] = []
    while not events:  # the retry's retransmissions go out meanwhile
        when, _sent, events = _run(ua, when)
    [expired] = events
    assert isinstance(expired, SessionExpired) and when == 90.0


def test_update_refused_turns_to_reinvite() -> None:
    ua = make_ua()
    _answer(ua, "Session-Expires: 90;refresher=uas\r\nAllow: INVITE, UPDATE\r\n")
    _when, [update], _ = _run(ua)
    assert isinstance(update, SipRequest) and update.method == "UPDATE"
    ua.receive(make_response(update, 501).serialize(), PEER, 45.0)
    _when, [reinvite], _ = _run(ua, 45.0)
    assert isinstance(reinvite, SipRequest) and reinvite.method == "INVITE"


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
            ("Supported", "100rel, timer"),
            ("Content-Type", "application/sdp"),
        ),
        SDP,
    )
    ua.send_request(req, PEER, 0.0)
    ua.datagrams_to_send(0.0)
    return req


def _ok(invite: SipRequest, session_expires: str | None, allow: str = "") -> bytes:
    ok = make_response(
        invite, 200, to_tag="far", body=SDP, headers=(("Content-Type", "application/sdp"),)
    )
    ok = ok.adding_header("Contact", "<sip:far@192.0.2.7:40000>")
    if session_expires is not None:
        ok = ok.adding_header("Session-Expires", session_expires)
    if allow:
        ok = ok.adding_header("Allow", allow)
    return ok.serialize()


def test_a_carrier_that_makes_us_refresh() -> None:
    ua = make_ua()
    invite = _our_invite(ua)
    ua.receive(_ok(invite, "100;refresher=uac", "INVITE, ACK, BYE, UPDATE"), PEER, 1.0)
    [ok] = ua.events()
    assert isinstance(ok, ResponseIn) and ok.response.status == 200  # the application sees it
    when, [update], _ = _run(ua, 1.0)
    assert when == 51.0 and isinstance(update, SipRequest) and update.method == "UPDATE"
    assert update.to.tag == "far" and update.header("Session-Expires") == "100;refresher=uac"


def test_a_carrier_that_refreshes_itself_or_not_at_all() -> None:
    ua = make_ua()
    invite = _our_invite(ua)
    ua.receive(_ok(invite, "100;refresher=uas"), PEER, 1.0)
    ua.events()
    when, out, [expired] = _run(ua, 1.0)  # it never refreshed: given up 32 s before expiry
    assert out == [] and isinstance(expired, SessionExpired) and when == 69.0
    ua2 = make_ua()
    ua2.receive(_ok(_our_invite(ua2), None), PEER, 1.0)  # no Session-Expires: no timer
    ua2.events()
    assert ua2.sessions.sessions == {}


def test_a_forgotten_dialog_has_no_timer() -> None:
    ua = make_ua()
    _answer(ua, "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n")
    [session] = ua.sessions.sessions.values()
    ua.forget_dialog(session.dialog)
    assert ua.sessions.sessions == {} and ua.sessions.next_deadline() is None


def test_the_applications_reinvite_and_update_carry_the_running_timer() -> None:
    """§7.4: a re-INVITE or UPDATE the application sends in a timed dialog is a refresh
    request: it names the interval and who refreshes (relative to it: ``uac`` is us), and
    that we support timers; one with its own Session-Expires is left as it is."""
    ua = make_ua()  # the peer refreshes
    inc, _ok = _answer(ua, "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n")
    [session] = ua.sessions.sessions.values()
    dialog = session.dialog
    hold = ua.create_request(dialog, "INVITE", inc.flow, body=SDP, content_type="application/sdp")
    assert hold.header("Session-Expires") == "120;refresher=uas"
    assert hold.header_values("Supported") == ["timer"]
    update = ua.create_request(
        dialog, "UPDATE", inc.flow, headers=(("Supported", "100rel, timer"),)
    )
    assert update.header("Session-Expires") == "120;refresher=uas"
    assert update.header_values("Supported") == ["100rel", "timer"]
    own = ua.create_request(dialog, "UPDATE", inc.flow, headers=(("x", "300;refresher=uac"),))
    assert own.header_values("Session-Expires") == ["300;refresher=uac"]
    for method in ("BYE", "INFO", "NOTIFY"):
        assert ua.create_request(dialog, method, inc.flow).header("Session-Expires") is None
    # We refresh: the request says so (we are its UAC).
    ua2 = make_ua()
    inc2, _ = _answer(ua2, "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\n")
    [mine] = ua2.sessions.sessions.values()
    reinvite = ua2.create_request(mine.dialog, "INVITE", inc2.flow, body=SDP)
    assert reinvite.header("Session-Expires") == "90;refresher=uac"
    # No timer in the dialog: nothing added.
    ua3 = make_ua()
    inc3, _ = _answer(ua3, "")
    plain = ua3.dialogs.get(DialogId(inc3.request.call_id, "srv", inc3.request.from_.tag or ""))
    assert plain is not None and ua3.sessions.sessions == {}
    again = ua3.create_request(plain, "INVITE", inc3.flow, body=SDP)
    assert again.header("Session-Expires") is None and again.header("Supported") is None


def test_session_expires_values() -> None:
    parsed = parse_session_expires("1800 ; Refresher=UAS;x=1")
    assert parsed is not None and (parsed.seconds, parsed.refresher) == (1800, "uas")
    assert parse_session_expires("abc") is None and parse_session_expires("") is None
    assert parse_session_expires("99999999999") is None
    only = parse_session_expires("600;refresher=bogus")
    assert only is not None and only.refresher is None
