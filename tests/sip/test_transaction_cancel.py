"""CANCEL (RFC 3261 §9) on both sides of the transaction layer."""

from __future__ import annotations

import itertools

from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.transaction import (
    CancelReceived,
    ClientState,
    RequestReceived,
    ResponseReceived,
    ServerState,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    build_cancel,
)

PEER = ("192.0.2.10", 5060)


def invite(method: str = "INVITE", *, to_tag: str | None = None) -> SipRequest:
    lines = [
        f"{method} sip:bob@example.com;transport=udp SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKinv1",
        "Max-Forwards: 70",
        "Route: <sip:p1.example.com;lr>",
        "From: <sip:alice@example.com>;tag=fa1",
        "To: <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: k1@example.com",
        f"CSeq: 7 {method}",
        "Contact: <sip:alice@198.51.100.1>",
        "Content-Type: application/sdp",
        "Content-Length: 4",
        "",
        "v=0\n",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


def from_wire(layer: TransactionLayer) -> list[SipRequest | SipResponse]:
    return [parse_message(d) for d, _ in layer.datagrams_to_send(0.0)]


def reply(req: SipRequest, status: int, tag: str = "tb") -> SipResponse:
    msg = parse_message(make_response(req, status, to_tag=tag).serialize())
    assert isinstance(msg, SipResponse)
    return msg


def test_build_cancel_fields() -> None:
    inv = invite()
    cancel = build_cancel(inv)
    assert cancel.method == "CANCEL" and str(cancel.uri) == str(inv.uri)
    assert cancel.call_id == inv.call_id
    assert cancel.from_.tag == "fa1" and cancel.to.tag is None
    assert (cancel.cseq.seq, cancel.cseq.method) == (7, "CANCEL")
    assert len(cancel.vias) == 1 and cancel.top_via.branch == "z9hG4bKinv1"
    assert cancel.header_values("Route") == ["<sip:p1.example.com;lr>"]
    assert cancel.body == b"" and not cancel.has_header("Contact")
    # Re-parse: it is a valid message on the wire.
    assert isinstance(parse_message(cancel.serialize()), SipRequest)


def test_cancel_held_until_provisional_then_sent() -> None:
    layer = TransactionLayer()
    inv = invite()
    key = layer.send_request(inv, PEER, 0.0, False)
    from_wire(layer)
    cancel_key = layer.cancel(key, 0.2)
    assert cancel_key == TransactionKey(False, "CANCEL", "z9hG4bKinv1")
    assert from_wire(layer) == []  # §9.1: no CANCEL before a provisional response
    layer.receive(reply(inv, 180), PEER, 0.3)
    (cancel,) = from_wire(layer)
    assert isinstance(cancel, SipRequest) and cancel.method == "CANCEL"
    assert layer.cancel(key, 0.4) == cancel_key  # idempotent, nothing re-sent
    assert from_wire(layer) == []
    layer.receive(reply(cancel, 200), PEER, 0.5)
    layer.receive(reply(inv, 487), PEER, 0.6)
    (ack,) = from_wire(layer)
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    responses = [
        (e.key, e.response.status) for e in layer.events() if isinstance(e, ResponseReceived)
    ]
    assert responses == [(key, 180), (cancel_key, 200), (key, 487)]


def test_cancel_not_sent_when_final_came_first() -> None:
    layer = TransactionLayer()
    inv = invite()
    key = layer.send_request(inv, PEER, 0.0, False)
    layer.cancel(key, 0.1)
    layer.receive(reply(inv, 486), PEER, 0.2)
    assert [m.method for m in from_wire(layer) if isinstance(m, SipRequest)] == ["INVITE", "ACK"]
    assert layer.cancel(key, 0.3) is None  # too late: a final response arrived


def test_cancel_guard_gives_up_invite_after_64_t1() -> None:
    layer = TransactionLayer()
    inv = invite()
    key = layer.send_request(inv, PEER, 0.0, True)
    layer.receive(reply(inv, 183), PEER, 1.0)
    layer.cancel(key, 2.0)
    cancel_key = TransactionKey(False, "CANCEL", "z9hG4bKinv1")
    layer.receive(reply(build_cancel(inv), 200), PEER, 2.1)
    layer.events()
    assert layer.next_deadline() == 34.0  # §9.1 guard: 64*T1 after the CANCEL
    layer.handle_timer(34.0)
    events = layer.events()
    assert TransactionTimeout(key, inv) in events and TransactionTerminated(key) in events
    assert layer.client(key) is None
    assert layer.client(cancel_key) is None  # reliable: K = 0 ended the CANCEL already


def test_cancel_only_for_invite_client_transactions() -> None:
    layer = TransactionLayer()
    key = layer.send_request(invite("OPTIONS"), PEER, 0.0, False)
    assert layer.cancel(key, 0.1) is None
    assert layer.cancel(TransactionKey(False, "INVITE", "z9hG4bKnone"), 0.1) is None


# -- server side ----------------------------------------------------------------------------


def server_with_invite() -> tuple[TransactionLayer, RequestReceived]:
    layer = TransactionLayer(token=map(str, itertools.count()).__next__)
    layer.receive(invite(), PEER, 0.0)
    (ev,) = layer.events()
    assert isinstance(ev, RequestReceived)
    return layer, ev


def test_cancel_matching_pending_invite_gets_200_and_tu_is_told() -> None:
    layer, ev = server_with_invite()
    layer.send_response(make_response(ev.request, 180, to_tag="tb"), 0.05)
    from_wire(layer)
    cancel = build_cancel(ev.request)
    layer.receive(cancel, PEER, 1.0)
    (ok,) = from_wire(layer)
    assert isinstance(ok, SipResponse) and ok.status == 200 and ok.cseq.method == "CANCEL"
    assert ok.to.tag == "tb"  # §9.2: same To tag as the INVITE's responses
    (event,) = layer.events()
    assert isinstance(event, CancelReceived) and event.key == ev.key
    assert event.request is ev.request and event.cancel.method == "CANCEL"
    # Retransmitted CANCEL: 200 again, no second event.
    layer.receive(build_cancel(ev.request), PEER, 1.5)
    assert [m.status for m in from_wire(layer) if isinstance(m, SipResponse)] == [200]
    assert layer.events() == []
    # The TU answers the INVITE 487; the ACK completes it.
    assert layer.send_response(make_response(ev.request, 487, to_tag="tb"), 1.6)
    layer.receive(reply(ev.request, 487), PEER, 1.7)  # noise: a response is not for us
    layer.events()
    ack_lines = (
        cancel.serialize()
        .replace(b"CANCEL", b"ACK")
        .replace(b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=tb")
    )
    layer.receive(parse_message(ack_lines), PEER, 2.0)
    server = layer.server(ev.key)
    assert server is not None and server.state is ServerState.CONFIRMED


def test_cancel_without_transaction_gets_481() -> None:
    layer = TransactionLayer(token=lambda: "t481")
    layer.receive(build_cancel(invite()), PEER, 0.0)
    (resp,) = from_wire(layer)
    assert isinstance(resp, SipResponse) and resp.status == 481 and resp.to.tag == "t481"
    assert layer.events() == []  # the layer's own CANCEL transaction is not reported


def test_cancel_after_final_is_answered_but_has_no_effect() -> None:
    layer, ev = server_with_invite()
    layer.send_response(make_response(ev.request, 200, to_tag="tb"), 0.05)
    from_wire(layer)
    layer.receive(build_cancel(ev.request), PEER, 0.1)
    (ok,) = from_wire(layer)
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert layer.events() == []
    server = layer.server(ev.key)
    assert server is not None and server.state is ServerState.ACCEPTED


def test_cancel_client_state_after_cancel_sent() -> None:
    layer = TransactionLayer()
    inv = invite()
    key = layer.send_request(inv, PEER, 0.0, False)
    layer.receive(reply(inv, 100), PEER, 0.1)
    layer.cancel(key, 0.2)
    client = layer.client(key)
    assert client is not None and client.state is ClientState.PROCEEDING
    cancel_txn = layer.client(TransactionKey(False, "CANCEL", key.branch))
    assert cancel_txn is not None and cancel_txn.state is ClientState.TRYING


def test_a_cancel_carries_the_headers_it_is_given_held_or_not() -> None:
    """RFC 3326: why we cancel (``Reason``) goes in the CANCEL, sent at once or when the held
    one leaves (§9.1); its retransmissions are the same message."""
    reason = ("Reason", 'SIP;cause=200;text="Call completed elsewhere"')
    for held in (False, True):
        layer = TransactionLayer()
        inv = invite()
        key = layer.send_request(inv, PEER, 0.0, False)
        from_wire(layer)
        if not held:
            layer.receive(reply(inv, 180), PEER, 0.1)
            from_wire(layer)
        layer.cancel(key, 0.2, headers=(reason,))
        if held:
            assert from_wire(layer) == []
            layer.receive(reply(inv, 180), PEER, 0.3)
        (cancel,) = from_wire(layer)
        assert isinstance(cancel, SipRequest) and cancel.method == "CANCEL"
        assert cancel.header_values("Reason") == [reason[1]], held
        layer.handle_timer(10.0)  # Timer E: the CANCEL again, as it was
        again = [m for m in from_wire(layer) if isinstance(m, SipRequest)]
        assert again and all(m.header_values("Reason") == [reason[1]] for m in again)
    # Without headers: a plain CANCEL, as before.
    layer = TransactionLayer()
    inv = invite()
    key = layer.send_request(inv, PEER, 0.0, False)
    layer.receive(reply(inv, 180), PEER, 0.1)
    from_wire(layer)
    layer.cancel(key, 0.2)
    (plain,) = from_wire(layer)
    assert isinstance(plain, SipRequest) and not plain.has_header("Reason")
