"""Property test: the dialog layer takes any sequence of requests and responses without raising
and keeps its bookkeeping consistent."""

from __future__ import annotations

import random
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zvonar.sip.dialog import DialogLayer, DialogState
from zvonar.sip.headers import parse_via
from zvonar.sip.message import SipRequest, make_response, parse_message

VIA = parse_via("SIP/2.0/UDP 198.51.100.1:5060")
METHODS = ["INVITE", "UPDATE", "BYE", "INFO", "ACK", "CANCEL", "OPTIONS"]
STATUSES = [100, 180, 183, 200, 302, 408, 481, 486, 491, 500]


def request(method: str, cseq: int, to_tag: str | None, from_tag: str, body: bool) -> SipRequest:
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKp",
        "From: <sip:alice@example.com>;tag=" + from_tag,
        "To: <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: dp@example.com",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@198.51.100.1>",
        "Record-Route: <sip:p1.example.com;lr>",
        f"Content-Length: {2 if body else 0}",
        "",
        "v=" if body else "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


OPS = st.one_of(
    # A request from the peer (to us), in or out of a dialog.
    st.tuples(
        st.just("in"),
        st.sampled_from(METHODS),
        st.integers(1, 6),
        st.sampled_from([None, "l1", "l2"]),
        st.booleans(),
    ),
    # Our response to the last request from the peer.
    st.tuples(st.just("answer"), st.sampled_from(STATUSES), st.sampled_from(["l1", "l2"])),
    # A response to a request we sent earlier (initial INVITE or in-dialog).
    st.tuples(
        st.just("reply"),
        st.integers(0, 5),
        st.sampled_from(STATUSES),
        st.sampled_from(["r1", "r2"]),
    ),
    # A new request from us in some dialog.
    st.tuples(st.just("out"), st.integers(0, 5), st.sampled_from(METHODS[:4]), st.booleans()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, max_size=40))
def test_dialog_layer_never_raises(ops: list[tuple[typing.Any, ...]]) -> None:
    layer = DialogLayer(rng=random.Random(0))
    ours: list[SipRequest] = [request("INVITE", 1, None, "ours", True)]
    theirs: list[SipRequest] = []
    for op in ops:
        kind = op[0]
        if kind == "in":
            req = request(op[1], op[2], op[3], "peer", op[4])
            check = layer.on_request(req)
            if check.response is not None:
                assert check.response.status in (400, 481, 491, 500)
            elif req.method != "ACK":
                theirs.append(req)
        elif kind == "answer" and theirs:
            req = theirs[-1]
            tag = None if op[1] == 100 else (req.to.tag or op[2])
            layer.on_response_sent(req, make_response(req, op[1], to_tag=tag))
        elif kind == "reply":
            req = ours[op[1] % len(ours)]
            tag = None if op[2] == 100 else (req.to.tag or op[3])
            layer.on_response(req, make_response(req, op[2], to_tag=tag))
        elif kind == "out":
            dialogs = list(layer)
            if dialogs:
                d = dialogs[op[1] % len(dialogs)]
                body = b"v=0" if op[3] else b""
                ours.append(layer.create_request(d, op[2], VIA, body=body))
        for d in layer:
            assert d.state in (DialogState.EARLY, DialogState.CONFIRMED)
            assert layer.get(d.id) is d
            if d.local_seq is not None:
                assert 0 < d.local_seq < 2**31
            assert (
                d.pending_invite_out is None
                or d.pending_invite_out == d.local_seq
                or (d.local_seq is not None and d.pending_invite_out < d.local_seq)
            )
            assert 0 <= layer.glare_backoff(d) <= 4.0
