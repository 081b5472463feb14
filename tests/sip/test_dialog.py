"""Dialogs (RFC 3261 §12, §13.2.2.4, §14, RFC 3311) through DialogLayer."""

from __future__ import annotations

import itertools
import random

import pytest

from zvonar.sip.dialog import (
    Dialog,
    DialogId,
    DialogInput,
    DialogLayer,
    DialogRole,
    DialogState,
)
from zvonar.sip.errors import DialogError
from zvonar.sip.headers import parse_via
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message

VIA = parse_via("SIP/2.0/UDP 198.51.100.1:5060")


def msg(lines: list[str], body: bytes = b"") -> SipRequest | SipResponse:
    head = "\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""]).encode()
    return parse_message(head + body)


def initial_invite(*, record_route: tuple[str, ...] = (), cseq: int = 10) -> SipRequest:
    m = msg(
        [
            "INVITE sip:bob@example.com SIP/2.0",
            "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKi1",
            "Max-Forwards: 70",
            'From: "Alice" <sip:alice@example.com>;tag=alice1',
            "To: <sip:bob@example.com>",
            "Call-ID: d1@example.com",
            f"CSeq: {cseq} INVITE",
            "Contact: <sip:alice@198.51.100.1:5060>",
            'Authorization: Digest username="alice", realm="x", nonce="n", '
            'uri="sip:bob@example.com", response="r"',
            *(f"Record-Route: {rr}" for rr in record_route),
        ]
    )
    assert isinstance(m, SipRequest)
    return m


def answer(
    req: SipRequest,
    status: int,
    tag: str | None,
    *,
    contact: str | None = "<sip:bob@192.0.2.20:5062>",
    record_route: tuple[str, ...] = (),
) -> SipResponse:
    headers = [("Record-Route", rr) for rr in record_route]
    if contact:
        headers.append(("Contact", contact))
    resp = parse_message(make_response(req, status, to_tag=tag, headers=headers).serialize())
    assert isinstance(resp, SipResponse)
    return resp


def in_dialog(
    method: str,
    cseq: int,
    *,
    local_tag: str = "bob1",
    remote_tag: str = "alice1",
    contact: str | None = None,
    body: bytes = b"",
) -> SipRequest:
    """A request the peer (Alice) sends inside the dialog to us (Bob)."""
    lines = [
        f"{method} sip:bob@192.0.2.20:5062 SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKx" + str(cseq) + method,
        "Max-Forwards: 70",
        f"From: <sip:alice@example.com>;tag={remote_tag}",
        f"To: <sip:bob@example.com>;tag={local_tag}",
        "Call-ID: d1@example.com",
        f"CSeq: {cseq} {method}",
    ]
    if contact:
        lines.append(f"Contact: {contact}")
    if body:
        lines.append("Content-Type: application/sdp")
    m = msg(lines, body)
    assert isinstance(m, SipRequest)
    return m


def tokens() -> DialogLayer:
    counter = itertools.count()
    return DialogLayer(token=lambda: f"t{next(counter)}", rng=random.Random(7))


# -- UAC -------------------------------------------------------------------------------------


def test_uac_early_dialog_from_1xx_with_tag_then_confirmed_by_2xx() -> None:
    layer = tokens()
    inv = initial_invite()
    rr = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")
    assert layer.on_response(inv, answer(inv, 100, None)) is None  # no tag, no dialog
    early = layer.on_response(inv, answer(inv, 180, "bob1", record_route=rr))
    assert early is not None and early.state is DialogState.EARLY
    assert early.id == DialogId("d1@example.com", "alice1", "bob1")
    assert early.role is DialogRole.UAC and early.call_id_owner
    assert [str(r.uri) for r in early.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert str(early.remote_target) == "sip:bob@192.0.2.20:5062"
    assert (early.local_seq, early.remote_seq) == (10, None)
    assert early.local_uri.tag is None and early.remote_uri.tag is None
    # The 2xx confirms and recomputes the route set and target (§13.2.2.4).
    ok = answer(inv, 200, "bob1", contact="<sip:bob@192.0.2.21>", record_route=rr[:1])
    confirmed = layer.on_response(inv, ok)
    assert confirmed is early and early.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in early.route_set] == ["sip:p1.example.com;lr"]
    assert str(early.remote_target) == "sip:bob@192.0.2.21"
    assert early.history == [DialogState.EARLY]
    assert layer.get(early.id) is early


def test_forked_early_dialogs_and_failure_ends_them() -> None:
    layer = tokens()
    inv = initial_invite()
    a = layer.on_response(inv, answer(inv, 180, "fork-a"))
    b = layer.on_response(inv, answer(inv, 183, "fork-b"))
    assert a is not None and b is not None and a.id != b.id and len(layer) == 2
    layer.on_response(inv, answer(inv, 486, "fork-c"))
    assert len(layer) == 0
    assert a.state is DialogState.TERMINATED and b.state is DialogState.TERMINATED


def test_2xx_without_prior_1xx_creates_confirmed_dialog() -> None:
    layer = tokens()
    inv = initial_invite(cseq=3)
    d = layer.on_response(inv, answer(inv, 200, "b9"))
    assert d is not None and d.state is DialogState.CONFIRMED
    # A non-2xx for a *different* INVITE (other CSeq) leaves it alone.
    layer.on_response(initial_invite(cseq=4), answer(initial_invite(cseq=4), 486, "zz"))
    assert layer.get(d.id) is d


def test_ack_for_2xx_new_branch_invite_cseq_and_credentials() -> None:
    layer = tokens()
    inv = initial_invite(record_route=("<sip:p1.example.com;lr>",))
    d = layer.on_response(inv, answer(inv, 200, "bob1", record_route=("<sip:p1.example.com;lr>",)))
    assert d is not None
    ack = layer.create_ack(d, inv, VIA)
    assert ack.method == "ACK" and str(ack.uri) == "sip:bob@192.0.2.20:5062"
    assert ack.top_via.branch == "z9hG4bKt0" and ack.top_via.branch != inv.top_via.branch
    assert (ack.cseq.seq, ack.cseq.method) == (10, "ACK")
    assert ack.to.tag == "bob1" and ack.from_.tag == "alice1" and ack.call_id == inv.call_id
    assert ack.header_values("Route") == ["<sip:p1.example.com;lr>"]
    assert ack.header("Authorization") == inv.header("Authorization")
    assert d.local_seq == 10  # an ACK does not use a new CSeq number
    assert isinstance(parse_message(ack.serialize()), SipRequest)


def test_in_dialog_request_loose_routing() -> None:
    layer = tokens()
    inv = initial_invite()
    rr = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")
    d = layer.on_response(inv, answer(inv, 200, "bob1", record_route=rr))
    assert d is not None
    bye = layer.create_request(d, "BYE", VIA)
    assert str(bye.uri) == "sip:bob@192.0.2.20:5062"  # §12.2.1.1: R-URI = remote target
    assert bye.header_values("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert (bye.cseq.seq, bye.cseq.method) == (11, "BYE")
    assert bye.from_.display_name == "Alice" and bye.from_.tag == "alice1"
    assert bye.to.tag == "bob1" and not bye.has_header("Contact")
    info = layer.create_request(d, "INFO", VIA, body=b"x", content_type="text/plain")
    assert info.cseq.seq == 12 and info.body == b"x" and info.content_type == "text/plain"
    reinvite = layer.create_request(d, "INVITE", VIA)
    assert reinvite.contacts[0].uri == inv.contacts[0].uri  # target refresh carries Contact


def test_in_dialog_request_strict_routing() -> None:
    layer = tokens()
    inv = initial_invite()
    rr = ("<sip:p1.example.com;lr>", "<sip:strict.example.com;method=INVITE>")
    d = layer.on_response(inv, answer(inv, 200, "bob1", record_route=rr))
    assert d is not None
    bye = layer.create_request(d, "BYE", VIA)
    # Route set is [strict, p1]: strict first without lr → it becomes the Request-URI.
    assert str(bye.uri) == "sip:strict.example.com"
    assert bye.header_values("Route") == ["<sip:p1.example.com;lr>", "<sip:bob@192.0.2.20:5062>"]


def test_2xx_to_reinvite_refreshes_target_and_481_ends_dialog() -> None:
    layer = tokens()
    inv = initial_invite()
    d = layer.on_response(inv, answer(inv, 200, "bob1"))
    assert d is not None
    reinv = layer.create_request(d, "INVITE", VIA)
    assert d.pending_invite_out == reinv.cseq.seq
    layer.on_response(reinv, answer(reinv, 200, None, contact="<sip:bob@192.0.2.99>"))
    assert str(d.remote_target) == "sip:bob@192.0.2.99" and d.pending_invite_out is None
    upd = layer.create_request(d, "UPDATE", VIA, body=b"v=0", content_type="application/sdp")
    assert d.pending_update_out == upd.cseq.seq
    layer.on_response(upd, answer(upd, 200, None, contact="<sip:bob@192.0.2.98>"))
    assert str(d.remote_target) == "sip:bob@192.0.2.98" and d.pending_update_out is None
    info = layer.create_request(d, "INFO", VIA)
    layer.on_response(info, answer(info, 481, None, contact=None))
    assert d.state is DialogState.TERMINATED and layer.get(d.id) is None


def test_timeout_of_in_dialog_request_ends_dialog() -> None:
    layer = tokens()
    inv = initial_invite()
    d = layer.on_response(inv, answer(inv, 200, "bob1"))
    assert d is not None
    reinvite = layer.create_request(d, "INVITE", VIA)
    assert layer.on_timeout(reinvite) is d  # §12.2.1.2: no response at all → like 408
    assert d.state is DialogState.TERMINATED and len(layer) == 0
    assert layer.on_timeout(initial_invite()) is None  # outside a dialog: nothing to end


def test_bye_response_terminates_uac_dialog() -> None:
    layer = tokens()
    inv = initial_invite()
    d = layer.on_response(inv, answer(inv, 200, "bob1"))
    assert d is not None
    bye = layer.create_request(d, "BYE", VIA)
    assert layer.get(d.id) is d
    layer.on_response(bye, answer(bye, 200, None, contact=None))
    assert layer.get(d.id) is None


def test_create_request_refuses_ack_and_cancel_and_branchless_build() -> None:
    layer = tokens()
    inv = initial_invite()
    d = layer.on_response(inv, answer(inv, 200, "bob1"))
    assert d is not None
    for method in ("ACK", "CANCEL"):
        with pytest.raises(DialogError):
            layer.create_request(d, method, VIA)
    with pytest.raises(DialogError):
        d.build_request("INFO", VIA, cseq=1)


# -- UAS -------------------------------------------------------------------------------------


def uas_dialog(layer: DialogLayer, status: int = 200) -> tuple[Dialog, SipRequest]:
    inv = initial_invite(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    check = layer.on_request(inv)
    assert check.dialog is None and check.response is None
    d = layer.on_response_sent(inv, answer(inv, 180, "bob1", contact="<sip:bob@192.0.2.20:5062>"))
    assert d is not None and d.state is DialogState.EARLY
    if status != 180:
        assert layer.on_response_sent(inv, answer(inv, status, "bob1")) is d
    return d, inv


def test_uas_dialog_creation() -> None:
    layer = tokens()
    d, _ = uas_dialog(layer)
    assert d.state is DialogState.CONFIRMED and d.role is DialogRole.UAS
    assert d.id == DialogId("d1@example.com", "bob1", "alice1") and not d.call_id_owner
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(d.remote_target) == "sip:alice@198.51.100.1:5060"
    assert (d.local_seq, d.remote_seq) == (None, 10)
    assert str(d.local_contact) == "<sip:bob@192.0.2.20:5062>"
    # §12.2.1.1: an empty local sequence number starts from a random value.
    bye = layer.create_request(d, "BYE", VIA)
    assert bye.cseq.seq == random.Random(7).randint(1, 2**20) + 1
    assert str(bye.uri) == "sip:alice@198.51.100.1:5060"
    assert bye.header_values("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert bye.from_.tag == "bob1" and bye.to.tag == "alice1"


def test_uas_early_dialog_ends_on_non_2xx() -> None:
    layer = tokens()
    d, inv = uas_dialog(layer, status=180)
    layer.on_response_sent(inv, answer(inv, 487, "bob1"))
    assert d.state is DialogState.TERMINATED and len(layer) == 0


def test_requests_for_unknown_dialog_get_481_but_ack_is_silent() -> None:
    layer = tokens()
    check = layer.on_request(in_dialog("BYE", 11))
    assert check.rejected and check.response is not None and check.response.status == 481
    ack = layer.on_request(in_dialog("ACK", 10))
    assert ack.dialog is None and ack.response is None


def test_invite_without_contact_is_400() -> None:
    layer = tokens()
    bad = parse_message(initial_invite().without_header("Contact").serialize())
    assert isinstance(bad, SipRequest)
    check = layer.on_request(bad)
    assert check.response is not None and check.response.status == 400
    assert check.response.to.tag == "t0"  # §8.2.6.2: a tag on every non-100 response


def test_remote_cseq_lower_is_500_higher_accepted() -> None:
    layer = tokens()
    d, _ = uas_dialog(layer)
    ok = layer.on_request(in_dialog("INFO", 12))
    assert ok.dialog is d and not ok.rejected and d.remote_seq == 12
    late = layer.on_request(in_dialog("INFO", 11))
    assert late.response is not None and late.response.status == 500  # §12.2.2
    assert d.remote_seq == 12
    # ACK and CANCEL carry their INVITE's (lower) number and are not checked.
    assert not layer.on_request(in_dialog("ACK", 10)).rejected


def test_incoming_target_refresh_updates_remote_target() -> None:
    layer = tokens()
    d, _ = uas_dialog(layer)
    layer.on_request(in_dialog("INVITE", 11, contact="<sip:alice@198.51.100.2>"))
    assert str(d.remote_target) == "sip:alice@198.51.100.2"
    layer.on_request(in_dialog("INFO", 12, contact="<sip:alice@198.51.100.3>"))
    assert str(d.remote_target) == "sip:alice@198.51.100.2"  # INFO is no target refresh


def test_glare_reinvite_while_ours_pending_is_491() -> None:
    layer = tokens()
    d, _ = uas_dialog(layer)
    ours = layer.create_request(d, "INVITE", VIA)
    theirs = in_dialog("INVITE", 11)
    check = layer.on_request(theirs)
    assert check.response is not None and check.response.status == 491  # §14.2
    assert d.remote_seq == 10  # the rejected request did not advance the remote CSeq
    layer.on_response(ours, answer(ours, 491, None, contact=None))
    assert d.pending_invite_out is None
    assert not layer.on_request(in_dialog("INVITE", 12)).rejected


def test_second_incoming_invite_before_answer_is_500_with_retry_after() -> None:
    layer = tokens()
    d, _ = uas_dialog(layer)
    first = in_dialog("INVITE", 11)
    assert not layer.on_request(first).rejected
    check = layer.on_request(in_dialog("INVITE", 12))
    assert check.response is not None and check.response.status == 500
    retry = check.response.header("Retry-After")
    assert retry is not None and 0 <= int(retry) <= 10
    layer.on_response_sent(first, answer(first, 200, None))
    assert d.pending_invite_in is None
    assert not layer.on_request(in_dialog("INVITE", 13)).rejected


def test_update_glare_only_with_offers() -> None:
    layer = tokens()
    d, _ = uas_dialog(layer)
    layer.create_request(d, "UPDATE", VIA, body=b"v=0", content_type="application/sdp")
    assert not layer.on_request(in_dialog("UPDATE", 11)).rejected  # no offer: no glare
    check = layer.on_request(in_dialog("UPDATE", 12, body=b"v=0"))
    assert check.response is not None and check.response.status == 491  # RFC 3311 §5.2


def test_bye_received_terminates_dialog() -> None:
    layer = tokens()
    d, _ = uas_dialog(layer)
    check = layer.on_request(in_dialog("BYE", 11))
    assert check.dialog is d and not check.rejected
    assert d.state is DialogState.TERMINATED and layer.get(d.id) is None
    assert layer.on_request(in_dialog("BYE", 12)).response is not None  # now 481


# -- §14.1 back-off and the state table -------------------------------------------------------


class EdgeRandom(random.Random):
    """randint returns the lower or the upper bound, to pin the §14.1 ranges."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high
        self.calls: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.calls.append((a, b))
        return b if self.high else a


@pytest.mark.parametrize("high", [False, True])
def test_glare_backoff_ranges(high: bool) -> None:
    rng = EdgeRandom(high)
    layer = DialogLayer(rng=rng)
    inv = initial_invite()
    owner = layer.on_response(inv, answer(inv, 200, "bob1"))
    assert owner is not None
    assert layer.glare_backoff(owner) == (4.0 if high else 2.1)
    d, _ = uas_dialog(DialogLayer())
    assert layer.glare_backoff(d) == (2.0 if high else 0.0)
    assert rng.calls == [(210, 400), (0, 200)]  # units of 10 ms


def test_glare_backoff_is_deterministic_with_a_seed() -> None:
    inv = initial_invite()
    values = []
    for _ in range(2):
        layer = DialogLayer(rng=random.Random(42))
        d = layer.on_response(inv, answer(inv, 200, "bob1"))
        assert d is not None
        values.append([layer.glare_backoff(d) for _ in range(20)])
    assert values[0] == values[1]
    assert all(2.1 <= v <= 4.0 and abs(v * 100 - round(v * 100)) < 1e-9 for v in values[0])


def test_dialog_table_ignores_inputs_it_lacks() -> None:
    layer = tokens()
    inv = initial_invite()
    d = layer.on_response(inv, answer(inv, 200, "bob1"))
    assert d is not None
    assert not d.fire(DialogInput.FAILURE)  # a failure after the 2xx changes nothing
    assert not d.fire(DialogInput.PROVISIONAL)
    assert d.state is DialogState.CONFIRMED
    assert d.fire(DialogInput.BYE) and d.state is DialogState.TERMINATED
    assert not any(d.fire(i) for i in DialogInput)  # terminated absorbs everything
