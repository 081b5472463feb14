"""Two UAs (transaction + dialog layers) talking over an in-memory lossy wire, virtual clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from zvonar.sip.dialog import Dialog, DialogLayer, DialogState
from zvonar.sip.headers import parse_via
from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.timers import TimerConfig
from zvonar.sip.transaction import (
    AckFor2xx,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionLayer,
)

ALICE = ("198.51.100.1", 5060)
BOB = ("192.0.2.20", 5060)


class UA:
    def __init__(self, name: str, addr: tuple[str, int], config: TimerConfig | None = None) -> None:
        counter = itertools.count()
        token: Callable[[], str] = lambda: f"{name}{next(counter)}"  # noqa: E731
        self.addr = addr
        self.tx = TransactionLayer(config, token=token)
        self.dialogs = DialogLayer(token=token, rng=random.Random(1))
        self.via = parse_via(f"SIP/2.0/UDP {addr[0]}:{addr[1]}")
        self.log: list[TransactionEvent] = []
        self.acked: list[SipRequest] = []
        self.received: list[SipRequest] = []
        self.auto_answer: dict[str, int] = {"BYE": 200, "INFO": 200}
        self.stray_acks = 0
        self.acks_sent: list[SipRequest] = []

    def handle(self, now: float) -> None:
        for ev in self.tx.events():
            self.log.append(ev)
            if isinstance(ev, RequestReceived):
                self.received.append(ev.request)
                check = self.dialogs.on_request(ev.request)
                if check.response is not None:
                    self.tx.send_response(check.response, now)
                elif ev.request.method in self.auto_answer:
                    self.respond(ev.request, self.auto_answer[ev.request.method], now)
            elif isinstance(ev, ResponseReceived) and ev.request is not None:
                dialog = self.dialogs.on_response(ev.request, ev.response)
                if ev.request.method == "INVITE" and 200 <= ev.response.status < 300:
                    assert dialog is not None
                    ack = self.dialogs.create_ack(dialog, ev.request, self.via)
                    self.acks_sent.append(ack)
                    self.tx.send_stateless(ack, BOB if self.addr == ALICE else ALICE)
            elif isinstance(ev, ResponseReceived) and 200 <= ev.response.status < 300:
                # A 2xx retransmission after the transaction: ACK it again (§13.2.2.4).
                found = self.dialogs.find_for_response(ev.response)
                if found is not None and found.last_ack is not None:
                    self.stray_acks += 1
                    self.tx.send_stateless(found.last_ack, BOB)
            elif isinstance(ev, AckFor2xx):
                self.acked.append(ev.request)
                self.dialogs.on_request(ev.request)

    def respond(self, request: SipRequest, status: int, now: float) -> SipResponse:
        tag = None if request.to.tag else self.dialogs.new_tag()
        if request.method == "INVITE" and request.to.tag is None:
            tag = self.bob_tag
        headers = [("Contact", f"<sip:bob@{self.addr[0]}:{self.addr[1]}>")]
        resp = make_response(request, status, to_tag=tag, headers=headers)
        assert self.tx.send_response(resp, now)
        self.dialogs.on_response_sent(request, resp)
        return resp

    bob_tag = "bobtag"


class Wire:
    """Delivers each UA's datagrams to the other; `drop` decides losses."""

    def __init__(self, a: UA, b: UA, drop: Callable[[bytes], bool] = lambda _: False) -> None:
        self.uas = {a.addr: a, b.addr: b}
        self.drop = drop
        self.dropped: list[bytes] = []

    def pump(self, now: float) -> None:
        moved = True
        while moved:
            moved = False
            for ua in self.uas.values():
                ua.handle(now)
                for data, addr in ua.tx.datagrams_to_send(now):
                    moved = True
                    if self.drop(data):
                        self.dropped.append(data)
                        continue
                    self.uas[addr].tx.receive(parse_message(data), ua.addr, now)

    def run_until(self, end: float) -> float:
        """Fire timers on both sides in deadline order up to `end`."""
        now = 0.0
        while True:
            deadlines = [d for ua in self.uas.values() if (d := ua.tx.next_deadline()) is not None]
            if not deadlines or min(deadlines) > end:
                return now
            now = min(deadlines)
            for ua in self.uas.values():
                ua.tx.handle_timer(now)
            self.pump(now)


def initial_invite() -> SipRequest:
    lines = [
        "INVITE sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKflow1",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=alicetag",
        "To: <sip:bob@example.com>",
        "Call-ID: flow@example.com",
        "CSeq: 1 INVITE",
        "Contact: <sip:alice@198.51.100.1:5060>",
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


def call(
    drop: Callable[[bytes], bool] = lambda _: False, config: TimerConfig | None = None
) -> tuple[UA, UA, Wire, Dialog, Dialog]:
    alice, bob = UA("a", ALICE, config), UA("b", BOB, config)
    wire = Wire(alice, bob, drop)
    alice.tx.send_request(initial_invite(), BOB, 0.0, False)
    wire.pump(0.0)
    (inv,) = [r for r in bob.received if r.method == "INVITE"]
    bob.respond(inv, 180, 0.05)
    wire.pump(0.05)
    (early,) = list(alice.dialogs)
    assert early.state is DialogState.EARLY
    bob.respond(inv, 200, 1.0)
    wire.pump(1.0)
    (a_dialog,) = list(alice.dialogs)
    (b_dialog,) = list(bob.dialogs)
    return alice, bob, wire, a_dialog, b_dialog


def test_basic_call_invite_180_200_ack_bye() -> None:
    alice, bob, wire, a_dialog, b_dialog = call()
    assert a_dialog.state is DialogState.CONFIRMED and b_dialog.state is DialogState.CONFIRMED
    assert a_dialog.id.local_tag == b_dialog.id.remote_tag == "alicetag"
    assert a_dialog.id.remote_tag == b_dialog.id.local_tag == "bobtag"
    assert len(bob.acked) == 1 and bob.acked[0].cseq.seq == 1
    assert str(a_dialog.remote_target) == "sip:bob@192.0.2.20:5060"
    # Alice hangs up.
    bye = alice.dialogs.create_request(a_dialog, "BYE", alice.via)
    alice.tx.send_request(bye, BOB, 2.0, False)
    wire.pump(2.0)
    assert b_dialog.state is DialogState.TERMINATED and len(bob.dialogs) == 0
    assert a_dialog.state is DialogState.TERMINATED and len(alice.dialogs) == 0
    # Every transaction winds down by its timers; nothing is left behind.
    wire.run_until(1000.0)
    assert alice.tx.transactions() == [] and bob.tx.transactions() == []
    assert alice.tx.next_deadline() is None and bob.tx.next_deadline() is None


def test_lost_2xx_is_retransmitted_by_uas_until_ack() -> None:
    lost: list[int] = []

    def drop_first_200(data: bytes) -> bool:
        if data.startswith(b"SIP/2.0 200") and b"INVITE" in data and not lost:
            lost.append(1)
            return True
        return False

    alice, bob, wire, a_dialog, _ = call(drop_first_200)
    assert len(wire.dropped) == 1 and bob.acked == []
    assert a_dialog.state is DialogState.EARLY  # Alice has only seen the 180
    wire.run_until(1.5)  # §13.3.1.4: the 2xx is re-sent T1 after it was first sent
    assert a_dialog.state is DialogState.CONFIRMED
    assert len(bob.acked) == 1
    wire.run_until(1000.0)
    assert len(bob.acked) == 1  # no further 2xx, so no further ACK
    assert alice.tx.transactions() == [] and bob.tx.transactions() == []


def test_lost_invite_and_lost_bye_response_recover_by_retransmission() -> None:
    seen: dict[bytes, int] = {}

    def drop_first(prefix: bytes) -> Callable[[bytes], bool]:
        def drop(data: bytes) -> bool:
            for p in (b"INVITE sip:", prefix):
                if data.startswith(p) and seen.get(p, 0) == 0:
                    seen[p] = 1
                    return True
            return False

        return drop

    alice, bob = UA("a", ALICE), UA("b", BOB)
    wire = Wire(
        alice,
        bob,
        drop_first(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKa"),
    )
    alice.tx.send_request(initial_invite(), BOB, 0.0, False)
    wire.pump(0.0)
    assert bob.received == []
    wire.run_until(0.5)  # Timer A retransmits the INVITE
    (inv,) = bob.received
    bob.respond(inv, 200, 0.6)
    wire.pump(0.6)
    (a_dialog,) = list(alice.dialogs)
    bye = alice.dialogs.create_request(a_dialog, "BYE", alice.via)
    assert bye.top_via.branch is not None and bye.top_via.branch.startswith("z9hG4bKa")
    alice.tx.send_request(bye, BOB, 1.0, False)
    wire.pump(1.0)
    assert len(bob.dialogs) == 0 and len(alice.dialogs) == 1  # BYE's 200 was lost
    wire.run_until(1.5)  # Timer E re-sends the BYE; Bob's transaction re-sends its 200
    assert len(alice.dialogs) == 0
    byes = [r for r in bob.received if r.method == "BYE"]
    assert len(byes) == 1  # the retransmission was absorbed by Bob's transaction


@pytest.mark.parametrize("rfc6026", [True, False])
def test_lost_ack_same_ack_resent_for_2xx_retransmission(rfc6026: bool) -> None:
    dropped: list[bytes] = []

    def drop_first_ack(data: bytes) -> bool:
        if data.startswith(b"ACK ") and not dropped:
            dropped.append(data)
            return True
        return False

    alice, bob, wire, a_dialog, b_dialog = call(drop_first_ack, TimerConfig(rfc6026=rfc6026))
    assert len(dropped) == 1 and bob.acked == []
    wire.run_until(1.5)  # Bob re-sends the 2xx T1 after the first one
    assert len(bob.acked) == 1
    # §13.2.2.4: the ACK re-sent is the same ACK (same branch), built once.
    assert bob.acked[0].serialize() == dropped[0]
    assert len(alice.acks_sent) == (2 if rfc6026 else 1)
    # Without RFC 6026 Alice's INVITE transaction was gone: the 2xx came up as a stray.
    assert alice.stray_acks == (0 if rfc6026 else 1)
    wire.run_until(1000.0)
    assert len(bob.acked) == 1
    assert a_dialog.state is b_dialog.state is DialogState.CONFIRMED
