"""Settled transactions shed their messages' parsed headers (transaction.SHED_AFTER)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zvonar.sip.errors import SipParseError
from zvonar.sip.headers import _PARAM_ITEM, _PARAMS, parse_params
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.transaction import SHED_AFTER, ClientState, ServerState, TransactionLayer

PEER = ("192.0.2.10", 5060)
_CACHES = ("_index", "from_", "to", "cseq", "call_id", "top_via", "vias")


def request(method: str = "INVITE", branch: str = "z9hG4bKshed1") -> SipRequest:
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 198.51.100.1:5060;branch={branch};rport",
        "Max-Forwards: 70",
        'From: "Alice" <sip:alice@example.com>;tag=fa1',
        "To: <sip:bob@example.com>",
        "Call-ID: shed1@example.com",
        f"CSeq: 7 {method}",
        "Contact: <sip:alice@198.51.100.1>",
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


def reply(req: SipRequest, status: int) -> SipResponse:
    msg = parse_message(make_response(req, status, to_tag="tb").serialize())
    assert isinstance(msg, SipResponse)
    return msg


def state_of(txn: object) -> object:
    return txn.state  # type: ignore[attr-defined]


def cached(msg: SipRequest | SipResponse) -> set[str]:
    return {name for name in _CACHES if name in msg.__dict__}


def test_shed_drops_caches_and_reparses_the_same_values() -> None:
    msg = request()
    before = (msg.from_, msg.to, msg.cseq, msg.call_id, msg.top_via, msg.vias, msg.contacts)
    wire = msg.serialize()
    msg.shed()
    assert cached(msg) == set() and "contacts" not in msg.__dict__
    assert msg.__dict__["_wire"] is wire  # the wire form stays: retransmissions send it
    after = (msg.from_, msg.to, msg.cseq, msg.call_id, msg.top_via, msg.vias, msg.contacts)
    assert after == before and msg.serialize() == wire
    assert msg.header("from") == '"Alice" <sip:alice@example.com>;tag=fa1'


def test_client_transaction_sheds_once_settled() -> None:
    layer = TransactionLayer()
    inv = request()
    key = layer.send_request(inv, PEER, 0.0, False)
    layer.receive(reply(inv, 486), PEER, 0.1)  # Completed: Timer D, 32 s of ACK re-sends
    txn = layer.client(key)
    assert txn is not None and txn.state is ClientState.COMPLETED
    last = txn.last_response
    assert last is not None and cached(inv) and cached(last)
    layer.handle_timer(SHED_AFTER - 0.01)
    assert cached(inv)  # not yet: the TU may still be reading it
    layer.handle_timer(SHED_AFTER + 0.01)
    assert cached(inv) == set() and cached(last) == set()
    layer.datagrams_to_send(0.0)
    layer.receive(reply(inv, 486), PEER, SHED_AFTER + 1)  # a retransmitted final: ACK again
    (ack,) = [parse_message(d) for d, _ in layer.datagrams_to_send(0.0)]
    assert isinstance(ack, SipRequest) and ack.method == "ACK" and ack.to.tag == "tb"


def test_running_transactions_are_looked_at_again_later() -> None:
    layer = TransactionLayer()
    inv = request(branch="z9hG4bKshed2")
    layer.receive(inv, PEER, 0.0)
    (server,) = layer.transactions()
    assert server.state is ServerState.PROCEEDING
    layer.handle_timer(SHED_AFTER + 0.01)
    assert cached(server.request)  # still ringing: kept
    assert layer.send_response(make_response(server.request, 200, to_tag="t1"), SHED_AFTER + 1)
    assert state_of(server) is ServerState.ACCEPTED
    layer.handle_timer(2 * SHED_AFTER + 0.02)
    assert cached(server.request) == set()


_TCHAR = st.sampled_from("aZ09-.!%*_+`'~:[]=; \t\"")


@given(st.text(_TCHAR, max_size=30).map(lambda t: ";" + t))
def test_parse_params_fast_path_matches_the_grammar(text: str) -> None:
    try:
        got: object = parse_params(text)
    except Exception as exc:
        got = type(exc)
    if _PARAMS.fullmatch(text):  # what the grammar alone (the slow path) says
        want: object = tuple((n, v or None) for n, v in _PARAM_ITEM.findall(text))
    else:
        want = SipParseError
    assert got == want
