"""Server transactions (RFC 3261 §17.2) and §17.2.3 matching, on a virtual clock."""

from __future__ import annotations

from zvonar.sip.headers import parse_via
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.timers import Timer, TimerConfig
from zvonar.sip.transaction import (
    AckFor2xx,
    AckTimeout,
    RequestReceived,
    ServerState,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    response_address,
)

SRC = ("198.51.100.7", 5060)


def request(
    method: str = "INVITE",
    branch: str | None = "z9hG4bKs1",
    *,
    host: str = "198.51.100.7",
    port: int = 5060,
    transport: str = "UDP",
    cseq: int = 1,
    from_tag: str = "fa1",
    to_tag: str | None = None,
    ruri: str = "sip:bob@example.com",
    via_params: str = "",
) -> SipRequest:
    branch_param = f";branch={branch}" if branch is not None else ""
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {host}:{port}{branch_param}{via_params}",
        "Via: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKfar",
        "Max-Forwards: 70",
        f"From: <sip:alice@example.com>;tag={from_tag}",
        "To: <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: s1@example.com",
        f"CSeq: {cseq} {method}",
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


def received(layer: TransactionLayer, req: SipRequest, now: float = 0.0) -> RequestReceived:
    layer.receive(req, SRC, now)
    (event,) = layer.events()
    assert isinstance(event, RequestReceived)
    return event


def sent(layer: TransactionLayer) -> list[int]:
    """Statuses of the responses queued for the wire (all to SRC)."""
    out = []
    for data, addr in layer.datagrams_to_send(0.0):
        assert addr == SRC
        msg = parse_message(data)
        assert isinstance(msg, SipResponse)
        out.append(msg.status)
    return out


def state(layer: TransactionLayer, key: TransactionKey) -> ServerState | None:
    txn = layer.server(key)
    return None if txn is None else txn.state


# -- INVITE server (Figure 7) ---------------------------------------------------------------


def test_100_trying_after_100ms_when_tu_is_silent() -> None:
    layer = TransactionLayer()
    ev = received(layer, request())
    assert ev.key.branch == "z9hG4bKs1" and ev.key.sent_by == "198.51.100.7:5060"
    assert layer.next_deadline() == 0.1
    layer.handle_timer(0.1)
    ((data, _),) = layer.datagrams_to_send(0.1)
    trying = parse_message(data)
    assert isinstance(trying, SipResponse) and trying.status == 100
    assert trying.to.tag is None
    assert len(trying.vias) == 2  # §8.2.6.2: all Via copied
    assert state(layer, ev.key) is ServerState.PROCEEDING
    assert layer.next_deadline() is None


def test_tu_provisional_within_100ms_suppresses_trying() -> None:
    layer = TransactionLayer()
    ev = received(layer, request())
    assert layer.send_response(make_response(ev.request, 180, to_tag="tb"), 0.05)
    assert sent(layer) == [180]
    assert layer.next_deadline() is None
    # §17.2.1: a retransmitted INVITE gets the latest provisional again.
    layer.receive(request(), SRC, 0.5)
    assert sent(layer) == [180]
    assert layer.events() == []


def test_trying_delay_zero_sends_at_once() -> None:
    layer = TransactionLayer(TimerConfig(trying_delay=0))
    received(layer, request())
    assert sent(layer) == [100]


def test_final_failure_timer_g_doubles_to_t2_and_h_at_64_t1() -> None:
    layer = TransactionLayer()
    ev = received(layer, request())
    assert layer.send_response(make_response(ev.request, 486, to_tag="tb"), 0.0)
    assert sent(layer) == [486]
    retransmitted_at = []
    while (deadline := layer.next_deadline()) is not None:
        layer.handle_timer(deadline)
        if sent(layer):
            retransmitted_at.append(deadline)
    # G: T1, 2T1, 4T1, then capped at T2 = 4 s; H = 64*T1 = 32 s.
    assert retransmitted_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    events = layer.events()
    assert events == [TransactionTimeout(ev.key, ev.request), TransactionTerminated(ev.key)]


def test_ack_confirms_then_timer_i() -> None:
    layer = TransactionLayer()
    ev = received(layer, request())
    layer.send_response(make_response(ev.request, 404, to_tag="tb"), 1.0)
    sent(layer)
    layer.receive(request("ACK", to_tag="tb"), SRC, 2.0)
    assert state(layer, ev.key) is ServerState.CONFIRMED
    txn = layer.server(ev.key)
    assert txn is not None and txn.timers == {Timer.I}
    assert layer.next_deadline() == 7.0  # I = T4
    layer.receive(request("ACK", to_tag="tb"), SRC, 3.0)  # absorbed
    layer.receive(request(), SRC, 3.5)  # INVITE retransmission in Confirmed: absorbed
    assert sent(layer) == []
    assert layer.events() == []
    layer.handle_timer(7.0)
    assert layer.events() == [TransactionTerminated(ev.key)]


def test_reliable_transport_no_g_and_zero_i() -> None:
    layer = TransactionLayer()
    ev = received(layer, request(transport="TCP"))
    assert ev.reliable
    layer.send_response(make_response(ev.request, 500, to_tag="tb"), 1.0)
    assert layer.next_deadline() == 33.0  # only H
    layer.receive(request("ACK", transport="TCP", to_tag="tb"), SRC, 2.0)
    assert layer.events() == [TransactionTerminated(ev.key)]
    assert layer.next_deadline() is None


def test_2xx_accepted_retransmitted_until_ack() -> None:
    layer = TransactionLayer()
    ev = received(layer, request())
    ok = make_response(ev.request, 200, to_tag="tb")
    assert layer.send_response(ok, 0.0)
    assert state(layer, ev.key) is ServerState.ACCEPTED
    assert sent(layer) == [200]
    for t in (0.5, 1.5, 3.5):  # §13.3.1.4: T1, doubling up to T2
        assert layer.next_deadline() == t
        layer.handle_timer(t)
        assert sent(layer) == [200]
    layer.receive(request(), SRC, 4.0)  # INVITE retransmission: absorbed (RFC 6026)
    assert sent(layer) == []
    ack = request("ACK", branch="z9hG4bKnewack", to_tag="tb")
    layer.receive(ack, SRC, 5.0)
    (event,) = layer.events()
    assert isinstance(event, AckFor2xx) and event.request.method == "ACK"
    assert layer.next_deadline() == 32.0  # only Timer L is left
    layer.handle_timer(32.0)
    assert sent(layer) == []
    assert layer.events() == [TransactionTerminated(ev.key)]


def test_2xx_without_ack_gives_ack_timeout() -> None:
    layer = TransactionLayer(TimerConfig(rfc6026=False))
    ev = received(layer, request())
    ok = make_response(ev.request, 200, to_tag="tb")
    layer.send_response(ok, 0.0)
    assert layer.events() == [TransactionTerminated(ev.key)]  # RFC 3261 Figure 7
    # RFC 3261 mode: the INVITE retransmission is answered from the 2xx record, not a new txn.
    layer.receive(request(), SRC, 0.2)
    assert layer.events() == []
    assert sent(layer) == [200, 200]
    times = []
    while (deadline := layer.next_deadline()) is not None:
        layer.handle_timer(deadline)
        times.append(deadline)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    (timeout,) = layer.events()
    assert isinstance(timeout, AckTimeout) and timeout.response is ok


def test_ack_with_wrong_to_tag_does_not_stop_2xx_retransmission() -> None:
    layer = TransactionLayer()
    ev = received(layer, request())
    layer.send_response(make_response(ev.request, 200, to_tag="tb"), 0.0)
    layer.receive(request("ACK", branch="z9hG4bKa2", to_tag="other"), SRC, 0.1)
    assert isinstance(layer.events()[0], AckFor2xx)  # still passed up: the dialog decides
    layer.handle_timer(0.5)
    assert sent(layer) == [200, 200]


# -- non-INVITE server (Figure 8) -----------------------------------------------------------


def test_non_invite_trying_absorbs_then_completed_resends_and_timer_j() -> None:
    layer = TransactionLayer()
    ev = received(layer, request("OPTIONS"))
    assert layer.next_deadline() is None  # no 100 Trying for non-INVITE
    layer.receive(request("OPTIONS"), SRC, 0.5)  # Trying: discarded
    assert sent(layer) == []
    assert layer.send_response(make_response(ev.request, 200, to_tag="t"), 1.0)
    layer.receive(request("OPTIONS"), SRC, 1.5)
    assert sent(layer) == [200, 200]
    # A second final from the TU is discarded.
    assert not layer.send_response(make_response(ev.request, 500, to_tag="t"), 2.0)
    assert sent(layer) == []
    assert layer.next_deadline() == 33.0  # J = 64*T1
    layer.handle_timer(33.0)
    assert layer.events() == [TransactionTerminated(ev.key)]
    # No transaction now: a late response is refused.
    assert not layer.send_response(make_response(ev.request, 200, to_tag="t"), 34.0)


def test_non_invite_proceeding_resends_provisional() -> None:
    layer = TransactionLayer()
    ev = received(layer, request("SUBSCRIBE"))
    layer.send_response(make_response(ev.request, 100), 0.1)
    layer.receive(request("SUBSCRIBE"), SRC, 0.5)
    assert sent(layer) == [100, 100]
    assert state(layer, ev.key) is ServerState.PROCEEDING


def test_non_invite_over_reliable_terminates_on_final() -> None:
    layer = TransactionLayer()
    ev = received(layer, request("BYE", transport="TLS", port=5061))
    layer.send_response(make_response(ev.request, 200, to_tag="t"), 0.0)
    assert layer.events() == [TransactionTerminated(ev.key)]
    assert layer.next_deadline() is None


def test_transport_error_on_response_destination() -> None:
    layer = TransactionLayer()
    ev = received(layer, request("INFO"))
    layer.send_response(make_response(ev.request, 180, to_tag="t"), 0.0)
    layer.transport_error(SRC, 0.1)
    assert layer.events() == [TransportError(ev.key, ev.request), TransactionTerminated(ev.key)]


# -- §17.2.3 matching -----------------------------------------------------------------------


def test_sent_by_and_method_are_part_of_the_key() -> None:
    layer = TransactionLayer()
    first = received(layer, request("OPTIONS"))
    other_host = received(layer, request("OPTIONS", host="198.51.100.8"))
    other_method = received(layer, request("INFO"))
    assert len({first.key, other_host.key, other_method.key}) == 3
    # Default port is 5060 for UDP: "host" and "host:5060" are the same sent-by.
    layer.send_response(make_response(first.request, 100), 0.0)
    layer.datagrams_to_send(0.0)
    layer.receive(parse_message(request("OPTIONS").serialize().replace(b":5060;b", b";b")), SRC, 1)
    assert layer.events() == []
    assert sent(layer) == [100]


def test_ack_with_other_sent_by_is_not_matched() -> None:
    layer = TransactionLayer()
    ev = received(layer, request())
    layer.send_response(make_response(ev.request, 486, to_tag="tb"), 0.0)
    layer.receive(request("ACK", host="198.51.100.99", to_tag="tb"), SRC, 0.2)
    assert isinstance(layer.events()[0], AckFor2xx)
    assert state(layer, ev.key) is ServerState.COMPLETED


def test_rfc2543_fallback_matching() -> None:
    layer = TransactionLayer()
    old = request(branch=None)
    ev = received(layer, old)
    assert ev.key.branch == "" and ev.key.legacy == ("s1@example.com", "fa1", "1")
    layer.send_response(make_response(ev.request, 180, to_tag="tb"), 0.0)
    layer.receive(request(branch=None), SRC, 0.5)  # same R-URI, tags, Call-ID, CSeq, Via
    assert layer.events() == []
    assert sent(layer) == [180, 180]
    # A different From tag is a new request; a different R-URI is not this transaction.
    received(layer, request(branch=None, from_tag="fa2"))
    layer.receive(request(branch=None, ruri="sip:carol@example.com"), SRC, 0.6)
    assert layer.events() == [] and sent(layer) == []
    layer.send_response(make_response(ev.request, 486, to_tag="tb"), 1.0)
    sent(layer)
    # ACK: matched on the To tag of the response we sent.
    layer.receive(request("ACK", branch=None, to_tag="wrong"), SRC, 1.1)
    assert isinstance(layer.events()[0], AckFor2xx)
    layer.receive(request("ACK", branch=None, to_tag="tb"), SRC, 1.2)
    assert state(layer, ev.key) is ServerState.CONFIRMED


def test_old_style_branch_without_cookie_uses_fallback() -> None:
    layer = TransactionLayer()
    ev = received(layer, request("OPTIONS", branch="1234"))
    assert ev.key.branch == "" and ev.key.legacy


# -- §18.2 addressing -----------------------------------------------------------------------


def test_received_and_rport_added_to_top_via() -> None:
    layer = TransactionLayer()
    layer.receive(request(host="pc33.example.com", via_params=";rport"), ("192.0.2.4", 40000), 0)
    (ev,) = layer.events()
    assert isinstance(ev, RequestReceived)
    top = ev.request.top_via
    assert top.received == "192.0.2.4" and top.rport == 40000
    assert len(ev.request.vias) == 2
    layer.send_response(make_response(ev.request, 180, to_tag="x"), 0)
    ((data, addr),) = layer.datagrams_to_send(0)
    assert addr == ("192.0.2.4", 40000)
    resp = parse_message(data)
    assert resp.top_via.received == "192.0.2.4"


def test_response_address_rules() -> None:
    src = ("192.0.2.4", 40000)
    assert response_address(parse_via("SIP/2.0/TCP a.example.com"), src, True) == src
    via = parse_via("SIP/2.0/UDP a.example.com:5070;received=192.0.2.4")
    assert response_address(via, src, False) == ("192.0.2.4", 5070)
    via = parse_via("SIP/2.0/UDP a.example.com;received=192.0.2.4;rport=40000")
    assert response_address(via, src, False) == ("192.0.2.4", 40000)
    via = parse_via("SIP/2.0/UDP 192.0.2.4")
    assert response_address(via, src, False) == ("192.0.2.4", 5060)
    via = parse_via("SIP/2.0/UDP a.example.com;maddr=239.1.1.1")
    assert response_address(via, src, False) == ("239.1.1.1", 5060)
    via = parse_via("SIP/2.0/UDP [2001:db8::1]:5062")
    assert response_address(via, src, False) == ("2001:db8::1", 5062)
