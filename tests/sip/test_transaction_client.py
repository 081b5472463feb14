"""Client transactions (RFC 3261 §17.1) through TransactionLayer, on a virtual clock."""

from __future__ import annotations

import pytest

from zvonar.sip.errors import TransactionError
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.timers import Timer, TimerConfig
from zvonar.sip.transaction import (
    ClientState,
    ResponseReceived,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)

DEST = ("192.0.2.10", 5060)


def request(
    method: str = "INVITE",
    branch: str = "z9hG4bKc1",
    *,
    cseq: int = 1,
    routes: tuple[str, ...] = (),
    to_tag: str | None = None,
) -> SipRequest:
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 198.51.100.1:5060;branch={branch}",
        "Max-Forwards: 70",
        "From: Alice <sip:alice@example.com>;tag=fa1",
        "To: <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: c1@198.51.100.1",
        f"CSeq: {cseq} {method}",
        *(f"Route: {r}" for r in routes),
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


def reply(req: SipRequest, status: int, tag: str | None = "tb1") -> SipResponse:
    """A response as it arrives from the wire."""
    msg = parse_message(make_response(req, status, to_tag=tag).serialize())
    assert isinstance(msg, SipResponse)
    return msg


def wire(layer: TransactionLayer, now: float = 0.0) -> list[SipRequest | SipResponse]:
    out = []
    for data, addr in layer.datagrams_to_send(now):
        assert addr == DEST
        out.append(parse_message(data))
    return out


def run_deadlines(layer: TransactionLayer, limit: float = 1000.0) -> list[float]:
    """Fire every deadline in order; return the times at which the layer woke up."""
    fired = []
    while (deadline := layer.next_deadline()) is not None and deadline <= limit:
        fired.append(deadline)
        layer.handle_timer(deadline)
    return fired


def start(
    method: str = "INVITE", *, reliable: bool = False, config: TimerConfig | None = None
) -> tuple[TransactionLayer, TransactionKey, SipRequest]:
    layer = TransactionLayer(config)
    req = request(method)
    key = layer.send_request(req, DEST, 0.0, reliable)
    return layer, key, req


# -- INVITE client (Figure 5) ---------------------------------------------------------------


def test_invite_timer_a_doubles_until_timer_b_at_64_t1() -> None:
    layer, key, req = start()
    assert [m.serialize() for m in wire(layer)] == [req.serialize()]
    sent_at = []
    while (deadline := layer.next_deadline()) is not None:
        layer.handle_timer(deadline)
        if wire(layer):
            sent_at.append(deadline)
        else:
            timeout_at = deadline
    # §17.1.1.2: A = T1, 2*T1, 4*T1 …; B = 64*T1 = 32 s.
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert timeout_at == 32.0
    events = layer.events()
    assert events == [TransactionTimeout(key, req), TransactionTerminated(key)]
    assert layer.client(key) is None


def test_invite_over_reliable_transport_has_no_timer_a() -> None:
    layer, key, _ = start(reliable=True)
    assert layer.next_deadline() == 32.0
    client = layer.client(key)
    assert client is not None and client.timers == {Timer.B}


def test_configurable_t1_scales_a_and_b() -> None:
    # Binary-exact T1 so the sums compare exactly: A = T1·2^n, B = 64*T1 = 8 s.
    layer, _, _ = start(config=TimerConfig(t1=0.125, t2=1.0, t4=2.0))
    assert run_deadlines(layer) == [0.125, 0.375, 0.875, 1.875, 3.875, 7.875, 8.0]


def test_invite_provisional_stops_a_and_b() -> None:
    layer, key, req = start()
    layer.handle_timer(0.5)
    wire(layer)
    layer.receive(reply(req, 180), DEST, 0.7)
    client = layer.client(key)
    assert client is not None and client.state is ClientState.PROCEEDING
    assert layer.next_deadline() is None
    (event,) = layer.events()
    assert isinstance(event, ResponseReceived) and event.response.status == 180
    assert event.key == key and event.request is req
    layer.receive(reply(req, 183), DEST, 1.0)
    assert [e.response.status for e in layer.events() if isinstance(e, ResponseReceived)] == [183]


def test_invite_non_2xx_acked_in_transaction_and_timer_d() -> None:
    layer, key, _ = start()
    req = request(routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    layer = TransactionLayer()
    key = layer.send_request(req, DEST, 0.0, False)
    wire(layer)
    layer.receive(reply(req, 486, "busy1"), DEST, 1.0)
    (ack,) = wire(layer)
    # §17.1.1.3: same R-URI, branch, Call-ID, From, CSeq number; To from the response; Route.
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert str(ack.uri) == str(req.uri)
    assert len(ack.vias) == 1 and ack.top_via.branch == req.top_via.branch
    assert ack.cseq.seq == req.cseq.seq and ack.cseq.method == "ACK"
    assert ack.to.tag == "busy1" and ack.from_.tag == "fa1"
    assert ack.call_id == req.call_id
    assert ack.header_values("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert [type(e) for e in layer.events()] == [ResponseReceived]
    # A retransmitted final is absorbed and re-ACKed.
    layer.receive(reply(req, 486, "busy1"), DEST, 2.0)
    assert [m.serialize() for m in wire(layer)] == [ack.serialize()]
    assert layer.events() == []
    assert layer.next_deadline() == 33.0  # Timer D = 32 s after the final
    layer.handle_timer(33.0)
    assert layer.events() == [TransactionTerminated(key)]


def test_invite_non_2xx_over_reliable_terminates_at_once() -> None:
    layer, key, req = start(reliable=True)
    layer.receive(reply(req, 603), DEST, 1.0)
    assert [type(e) for e in layer.events()] == [ResponseReceived, TransactionTerminated]
    assert len(wire(layer)) == 2  # INVITE, ACK
    assert layer.client(key) is None
    assert layer.next_deadline() is None


def test_invite_2xx_goes_to_tu_and_accepted_state_passes_retransmissions() -> None:
    layer, key, req = start()
    wire(layer)
    layer.receive(reply(req, 200), DEST, 1.0)
    client = layer.client(key)
    assert client is not None and client.state is ClientState.ACCEPTED
    assert wire(layer) == []  # no ACK from the transaction for a 2xx (§17.1.1.2)
    assert layer.next_deadline() == 33.0  # RFC 6026 Timer M = 64*T1
    layer.receive(reply(req, 200), DEST, 2.0)
    statuses = [
        (e.key, e.response.status) for e in layer.events() if isinstance(e, ResponseReceived)
    ]
    assert statuses == [(key, 200), (key, 200)]
    layer.handle_timer(33.0)
    assert layer.events() == [TransactionTerminated(key)]
    # After that a 2xx retransmission matches nothing and goes up as a stray (§18.1.2).
    layer.receive(reply(req, 200), DEST, 40.0)
    (stray,) = layer.events()
    assert isinstance(stray, ResponseReceived) and stray.key is None


def test_invite_2xx_rfc3261_mode_terminates_at_once() -> None:
    layer, key, req = start(config=TimerConfig(rfc6026=False))
    layer.receive(reply(req, 200), DEST, 1.0)
    assert [type(e) for e in layer.events()] == [ResponseReceived, TransactionTerminated]
    assert layer.next_deadline() is None and layer.client(key) is None


def test_late_provisional_after_final_is_absorbed() -> None:
    layer, _, req = start()
    layer.receive(reply(req, 404), DEST, 1.0)
    layer.events()
    wire(layer)
    layer.receive(reply(req, 180), DEST, 1.5)
    layer.receive(reply(req, 200), DEST, 1.6)
    assert layer.events() == []
    assert wire(layer) == []


def test_transport_error_reported_and_terminates() -> None:
    layer, key, req = start()
    layer.transport_error(("203.0.113.9", 5060), 0.1)  # another destination: no effect
    assert layer.events() == []
    layer.transport_error(DEST, 0.2)
    events = layer.events()
    assert events == [TransportError(key, req), TransactionTerminated(key)]
    assert events[0].status_hint == 503  # type: ignore[union-attr]
    assert layer.next_deadline() is None


# -- non-INVITE client (Figure 6) -----------------------------------------------------------


def test_non_invite_timer_e_capped_at_t2_and_timer_f() -> None:
    layer, key, req = start("OPTIONS")
    assert run_deadlines(layer) == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0,
    ]  # fmt: skip
    assert len(wire(layer)) == 11  # the request and 10 retransmissions
    assert layer.events() == [TransactionTimeout(key, req), TransactionTerminated(key)]


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    layer, key, req = start("REGISTER")
    layer.receive(reply(req, 100, None), DEST, 0.1)
    client = layer.client(key)
    assert client is not None and client.state is ClientState.PROCEEDING
    assert layer.next_deadline() == 0.5  # E keeps running in Proceeding
    layer.handle_timer(0.5)
    assert layer.next_deadline() == 4.5  # §17.1.2.2: reset to T2 in Proceeding
    layer.handle_timer(4.5)
    assert layer.next_deadline() == 8.5
    assert len(wire(layer)) == 3


def test_non_invite_final_then_timer_k() -> None:
    layer, key, req = start("BYE")
    layer.receive(reply(req, 200), DEST, 1.0)
    assert layer.next_deadline() == 6.0  # K = T4 = 5 s
    layer.receive(reply(req, 200), DEST, 2.0)  # retransmission: absorbed
    events = layer.events()
    assert len(events) == 1 and isinstance(events[0], ResponseReceived)
    layer.handle_timer(6.0)
    assert layer.events() == [TransactionTerminated(key)]


def test_non_invite_final_over_reliable_terminates_at_once() -> None:
    layer, key, req = start("BYE", reliable=True)
    assert layer.next_deadline() == 32.0  # F only, no E
    layer.receive(reply(req, 481), DEST, 1.0)
    assert [type(e) for e in layer.events()] == [ResponseReceived, TransactionTerminated]
    assert layer.next_deadline() is None and layer.client(key) is None


def test_response_for_cancel_does_not_match_invite() -> None:
    # §17.1.3: same branch, CSeq method tells INVITE and CANCEL transactions apart.
    layer, key, _ = start()
    cancel_resp = parse_message(make_response(request("CANCEL"), 200, to_tag="x").serialize())
    assert isinstance(cancel_resp, SipResponse)
    layer.receive(cancel_resp, DEST, 0.2)
    (event,) = layer.events()
    assert isinstance(event, ResponseReceived) and event.key is None
    client = layer.client(key)
    assert client is not None and client.state is ClientState.CALLING


# -- API misuse -----------------------------------------------------------------------------


def test_send_request_rejects_ack_missing_cookie_and_duplicates() -> None:
    layer = TransactionLayer()
    with pytest.raises(TransactionError):
        layer.send_request(request("ACK"), DEST, 0.0, False)
    with pytest.raises(TransactionError):
        layer.send_request(request(branch="old-style-1"), DEST, 0.0, False)
    layer.send_request(request(), DEST, 0.0, False)
    with pytest.raises(TransactionError):
        layer.send_request(request(), DEST, 0.0, False)
