"""The B2BUA over loopback UDP between two signalling peers (the stack's EchoPbx): forking,
waves, CANCEL, BYE in both directions, re-INVITE, 488 and resolver rejects, with the call
events each case must publish."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
)
from zvonar.calls.in_dialog import info_digit
from zvonar.calls.legs import CallDtmf
from zvonar.calls.plan import Plan, Reject, RingTarget, Wave
from zvonar.media.engine import UnsupportedError
from zvonar.sip.io.testserver import CallLeg
from zvonar.sip.message import SipRequest
from zvonar.sip.ua import Flow, IncomingRequest
from zvonar.sip.uri import parse_uri

T = TypeVar("T")


def target(phone: Phone, user: str) -> RingTarget:
    return RingTarget(phone.uri(user), phone.flow)


def dial(caller: Phone, pbx: Pbx, user: str, sdp: bytes = b"") -> CallLeg:
    leg = caller.app.originate(
        f"sip:{user}@{pbx.address}", pbx.flow, caller.runner.loop.time(), sdp=sdp
    )
    caller.runner.pump()
    return leg


async def final_status(leg: CallLeg, within: float = 5.0) -> int:
    assert leg.answered is not None
    return await asyncio.wait_for(leg.answered, within)


def hang_up(phone: Phone, leg: CallLeg) -> None:
    phone.app.hangup(leg, phone.runner.loop.time())
    phone.runner.pump()


async def test_answered_call_then_caller_hangs_up(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    assert b"m=audio" in leg.local_sdp
    assert callee.app.calls_answered == 1
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    assert ended.hangup is HangupSide.caller
    kinds = pbx.kinds()
    assert kinds[0] == "CallStarted" and kinds[-1] == "CallEnded"
    assert "CallAnswered" in kinds
    started = pbx.bus.of_type(CallStarted)[0]
    assert started.dialed == "100" and started.account_id == ACCOUNT
    # the callee got our BYE: its leg is over
    for _ in range(100):
        if callee.app.calls_ended:
            break
        await asyncio.sleep(0.02)
    assert callee.app.calls_ended == 1
    assert not pbx.b2bua.calls


async def test_the_invite_out_leaves_while_the_callers_invite_is_being_handled(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """The call's first step (resolve, ring) runs inside the INVITE's handling, not after
    whatever the loop had queued (core/eager.py): post-dial delay is the call's own work."""
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    runner = pbx.runner
    handling: list[bytes] = []  # the INVITE being handled, while it is
    out: list[tuple[bool, bytes]] = []  # (sent while an INVITE was handled, start line)
    on_datagram, send = runner._on_datagram, runner.send

    def handle(data: bytes, source: tuple[str, int], truncated: bool) -> None:
        handling.extend([data] if data.startswith(b"INVITE ") else [])
        try:
            on_datagram(data, source, truncated)
        finally:
            handling.clear()

    def spy(data: bytes, flow: Flow) -> bool:
        out.append((bool(handling), data.split(b"\r\n", 1)[0]))
        return send(data, flow)

    runner._on_datagram = handle  # type: ignore[method-assign]
    runner.send = spy  # type: ignore[method-assign]
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    trying, invite = out[0], out[1]
    assert trying == (True, b"SIP/2.0 100 Trying")
    assert invite[0] and invite[1].startswith(b"INVITE sip:answer@")
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_callee_hangs_up_and_caller_gets_bye(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    await asyncio.sleep(0.05)
    (callee_leg,) = list(callee.app._legs.values())
    # EchoPbx keeps no Dialog on its answering legs: give it the one its UA core holds
    callee_leg.dialog = next(
        d for d in callee.runner.ua.dialogs if d.id.local_tag == callee_leg.local_tag
    )
    hang_up(callee, callee_leg)
    assert leg.ended is not None
    assert await asyncio.wait_for(leg.ended, 5) == "bye"
    (ended,) = await pbx.wait_ended()
    assert ended.hangup is HangupSide.callee
    assert ended.disposition is Disposition.answered


async def test_busy_and_answer_in_one_wave(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    wave = Wave((target(callee, "busy"), target(callee, "answer")), 5)
    pbx.resolver.plans["200"] = Plan(ACCOUNT, (wave,))
    leg = dial(caller, pbx, "200")
    assert await final_status(leg) == 200
    call_id = pbx.events()[0].call_id
    answered = pbx.bus.of_type(CallAnswered)
    assert [a.leg_id for a in answered] == [f"{call_id}.w0t1"]
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends[f"{call_id}.w0t0"] is LegEndReason.busy
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends[f"{call_id}.w0t1"] is LegEndReason.completed


async def test_first_wave_times_out_second_answers(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    waves = (Wave((target(callee, "ring"),), 0.3), Wave((target(callee, "answer"),), 5))
    pbx.resolver.plans["300"] = Plan(ACCOUNT, waves)
    leg = dial(caller, pbx, "300")
    assert await final_status(leg) == 200
    call_id = pbx.events()[0].call_id
    ringing = pbx.bus.of_type(CallRinging)
    # The second phone answers with no 18x: its leg still rings, at its answer (the journal
    # keeps a leg per CallRinging).
    assert [r.leg_id for r in ringing] == [f"{call_id}.w0t0", f"{call_id}.w1t0"]
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends == {f"{call_id}.w0t0": LegEndReason.no_answer}
    assert [a.leg_id for a in pbx.bus.of_type(CallAnswered)] == [f"{call_id}.w1t0"]
    # the ringing phone was cancelled (487 ends its leg)
    assert callee.app.calls_ended >= 1
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_all_busy_gives_the_final_status(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    waves = (Wave((target(callee, "busy"),), 5), Wave((target(callee, "busy"),), 5))
    pbx.resolver.plans["400"] = Plan(ACCOUNT, waves, final=Reject(486))
    leg = dial(caller, pbx, "400")
    assert await final_status(leg) == 486
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.busy
    assert len(pbx.bus.of_type(LegEnded)) == 2  # both waves ran before the caller heard busy


async def test_caller_cancels_while_ringing(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["500"] = Plan(ACCOUNT, (Wave((target(callee, "ring"),), 10),))
    leg = dial(caller, pbx, "500")
    for _ in range(200):
        if pbx.bus.of_type(CallRinging):
            break
        await asyncio.sleep(0.01)
    assert pbx.bus.of_type(CallRinging)
    hang_up(caller, leg)
    assert await final_status(leg) == 487
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.abandoned
    assert ended.hangup is HangupSide.caller
    (leg_end,) = pbx.bus.of_type(LegEnded)
    assert leg_end.reason is LegEndReason.cancelled
    for _ in range(100):
        if callee.app.calls_ended:
            break
        await asyncio.sleep(0.02)
    assert callee.app.calls_ended == 1  # our CANCEL reached the ringing phone


async def test_unacceptable_offer_gets_488(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    sdp = (
        b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
    )
    leg = dial(caller, pbx, "100", sdp)
    assert await final_status(leg) == 488
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.failed
    assert callee.app.calls_answered == 0


async def test_resolver_reject_without_account_publishes_nothing(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, _ = phones
    leg = dial(caller, pbx, "999")
    assert await final_status(leg) == 404
    await asyncio.sleep(0.05)
    assert pbx.events() == []
    assert not pbx.b2bua.calls


async def test_resolver_failure_is_a_500(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, _ = phones

    def broken(_call: object) -> Plan:
        raise RuntimeError("routing exploded")

    pbx.resolver.plans["100"] = broken
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 500
    assert not pbx.b2bua.calls


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
async def test_reinvite_is_answered_locally(
    pbx: Pbx, phones: tuple[Phone, Phone], method: str
) -> None:
    """A re-INVITE, or an UPDATE with an offer (RFC 3311: the answer in its 2xx, with our
    Contact), is answered on the leg that sent it."""
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    hold = leg.local_sdp.replace(b"a=sendrecv", b"a=sendonly")
    leg.local_sdp = hold
    if method == "INVITE":
        key = caller.app.reinvite(leg, caller.runner.loop.time())
    else:
        ua = caller.runner.ua
        assert leg.dialog is not None
        update = ua.create_request(
            leg.dialog, "UPDATE", leg.flow, body=hold, content_type="application/sdp"
        )
        key = ua.send_request(update, leg.flow, caller.runner.loop.time())
    caller.runner.pump()
    assert key is not None
    answers: list[bytes] = []
    contacts: list[str | None] = []

    def hook(ev: object) -> None:
        response = getattr(ev, "response", None)
        if getattr(ev, "key", None) == key and response is not None:
            answers.append(response.body)
            contacts.append(response.header("Contact"))

    caller.runner.add_event_hook(hook)
    for _ in range(100):
        if answers:
            break
        await asyncio.sleep(0.02)
    assert answers and b"a=recvonly" in answers[-1]
    assert contacts and contacts[-1]
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    assert not [e for e in pbx.bus.of_type(CallEnded) if e.disposition is Disposition.failed]


@pytest.mark.parametrize(
    ("ctype", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", ("5", 0.16)),
        ("application/dtmf-relay", b"Signal= 10\r\nDuration=250\r\n", ("*", 0.25)),
        ("application/dtmf-relay", b"Signal=#\r\n", ("#", 0.1)),
        ("Application/DTMF-Relay; charset=x", b"signal=d\r\nduration=99999\r\n", ("D", 10.0)),
        ("application/dtmf", b"7", ("7", 0.1)),
        ("application/dtmf-relay", b"Signal=X\r\n", None),
        ("application/dtmf-relay", b"", None),
        ("text/plain", b"Signal=5", None),
    ],
)
def test_a_key_sent_by_sip_info_is_read(
    ctype: str, body: bytes, expected: tuple[str, float] | None
) -> None:
    request = SipRequest(
        "INFO",
        parse_uri("sip:pbx@127.0.0.1"),
        (("Call-ID", "c"), ("CSeq", "2 INFO"), ("Content-Type", ctype)),
        body,
    )
    assert info_digit(request) == expected


@pytest.mark.parametrize("events", [True, False])
async def test_an_info_key_reaches_the_other_side(
    pbx: Pbx, phones: tuple[Phone, Phone], events: bool
) -> None:
    """An employee on an external IVR presses keys by SIP INFO: the other side gets them as
    RFC 4733 events when its media has them (the engine sends them; see
    tests/e2e/test_info_keys.py for the packets), else as the same INFO; the journal hears
    the key (CallDtmf) either way."""
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    got: list[bytes] = []
    sent: list[tuple[str, str, float]] = []
    engine = pbx.b2bua.engine
    real = engine.send_dtmf

    async def send_dtmf(leg_id: str, digit: str, duration: float = 0.1) -> None:
        if not events:
            raise UnsupportedError("no telephone-event negotiated")
        sent.append((leg_id, digit, duration))
        await real(leg_id, digit, duration)

    engine.send_dtmf = send_dtmf  # type: ignore[method-assign]

    def hook(ev: object) -> None:
        request = getattr(ev, "request", None)
        if isinstance(ev, IncomingRequest) and request is not None and request.method == "INFO":
            got.append(request.body)

    callee.runner.add_event_hook(hook)
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    await asyncio.sleep(0.1)  # our ACK reaches the callee
    assert leg.dialog is not None
    ua = caller.runner.ua
    body = b"Signal=9\r\nDuration=100\r\n"
    info = ua.create_request(
        leg.dialog, "INFO", leg.flow, body=body, content_type="application/dtmf-relay"
    )
    ua.send_request(info, leg.flow, caller.runner.loop.time())
    caller.runner.pump()
    (pressed,) = [await _first(pbx.bus.of_type, CallDtmf)]
    assert pressed.digit == "9"
    if events:
        (call,) = pbx.b2bua.calls.values()
        assert call.winner is not None
        assert sent == [(call.winner.media_id, "9", 0.1)]
        await asyncio.sleep(0.2)
        assert got == []  # not both: the far side would hear the key twice
    else:
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [body] and sent == []
    hang_up(caller, leg)
    await pbx.wait_ended()


async def _first(of_type: Callable[[type[T]], list[T]], kind: type[T]) -> T:
    for _ in range(100):
        found = of_type(kind)
        if found:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind.__name__}")


async def test_a_target_that_refuses_at_once_still_has_its_leg(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """A phone on DND answers 486 with no 18x: the journal still hears whom we tried (a
    CallRinging before its LegEnded), so its row shows the busy employee."""
    caller, callee = phones
    waves = (Wave((target(callee, "busy"),), 5), Wave((target(callee, "answer"),), 5))
    pbx.resolver.plans["500"] = Plan(ACCOUNT, waves)
    leg = dial(caller, pbx, "500")
    assert await final_status(leg) == 200
    call_id = pbx.events()[0].call_id
    kinds = [(e.event_type, getattr(e, "leg_id", "")) for e in pbx.events(call_id)]
    busy = f"{call_id}.w0t0"
    assert kinds.index(("CallRinging", busy)) < kinds.index(("LegEnded", busy))
    hang_up(caller, leg)
    await pbx.wait_ended()


def _outbound(*waves: Wave) -> Plan:
    """An employee's call out through carriers, failing over as outbound calls do."""
    return Plan(
        ACCOUNT,
        waves,
        direction=Direction.outbound,
        fail_over=frozenset({408, 500, 502, 503, 504}),
    )


async def test_an_outbound_call_fails_over_to_the_next_carrier(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, carrier = phones
    pbx.resolver.plans["out"] = _outbound(
        Wave((target(carrier, "overloaded"),), 5), Wave((target(carrier, "answer"),), 5)
    )
    leg = dial(caller, pbx, "out")
    assert await final_status(leg) == 200  # the second carrier took it
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    ends = [e.reason for e in pbx.bus.of_type(LegEnded)]
    assert ends[0] is LegEndReason.failed


@pytest.mark.parametrize(
    ("first", "status"),
    [("busy", 486), ("nobody", 404)],  # the callee's answer, the same on any carrier
)
async def test_an_outbound_calls_refusal_reaches_the_caller_as_it_came(
    pbx: Pbx, phones: tuple[Phone, Phone], first: str, status: int
) -> None:
    caller, carrier = phones
    pbx.resolver.plans["out"] = _outbound(
        Wave((target(carrier, first),), 5), Wave((target(carrier, "answer"),), 5)
    )
    leg = dial(caller, pbx, "out")
    assert await final_status(leg) == status  # not "480": the phone shows busy / no number
    await pbx.wait_ended()
    assert len(pbx.bus.of_type(CallRinging)) == 1  # the next carrier never rang


async def test_when_every_carrier_fails_the_caller_hears_the_last_failure(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, carrier = phones
    pbx.resolver.plans["out"] = _outbound(
        Wave((target(carrier, "overloaded"),), 5), Wave((target(carrier, "overloaded"),), 5)
    )
    leg = dial(caller, pbx, "out")
    # A carrier's 503 goes on as 500: the phone must not take the PBX itself for overloaded.
    assert await final_status(leg) == 500
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.failed
    assert len(pbx.bus.of_type(CallRinging)) == 2


async def test_our_invites_and_answers_say_what_we_allow(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """RFC 3261 §13.2.1/§20.5: the INVITE to the target and the 200 to the caller carry Allow
    (a peer refreshes a session by UPDATE, or sends keys by INFO, only if we allow them)."""
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    invites: list[SipRequest] = []
    oks: list[object] = []

    def on_callee(ev: object) -> None:
        if isinstance(ev, IncomingRequest) and ev.request.method == "INVITE":
            invites.append(ev.request)

    def on_caller(ev: object) -> None:
        response = getattr(ev, "response", None)
        if response is not None and response.status == 200 and response.cseq.method == "INVITE":
            oks.append(response)

    callee.runner.add_event_hook(on_callee)
    caller.runner.add_event_hook(on_caller)
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    allowed = set(pbx.b2bua.ua.allow)
    (invite,) = invites
    assert {"UPDATE", "INFO", "REFER"} <= set(invite.header_values("Allow")) == allowed
    (ok,) = oks
    assert set(ok.header_values("Allow")) == allowed  # type: ignore[attr-defined]
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_silent_carrier_is_passed_over_without_waiting_for_timer_b(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """A carrier's server that never answers at all (not even 100 Trying) is left after the
    wave's ``silence`` bound, not after the INVITE transaction's 32 s."""
    caller, carrier = phones
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))  # bound, never read: the INVITE goes nowhere
        dead = RingTarget(
            f"sip:dead@127.0.0.1:{hole.getsockname()[1]}",
            Flow("UDP", "127.0.0.1", hole.getsockname()[1]),
        )
        pbx.resolver.plans["out"] = _outbound(
            Wave((dead,), 30, silence=0.3), Wave((target(carrier, "answer"),), 5)
        )
        loop = asyncio.get_running_loop()
        began = loop.time()
        leg = dial(caller, pbx, "out")
        assert await final_status(leg, within=3) == 200  # the next carrier, within seconds
        assert 0.25 <= loop.time() - began < 2.5
        hang_up(caller, leg)
        (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    ends = [e.reason for e in pbx.bus.of_type(LegEnded)]
    assert ends[0] is LegEndReason.no_answer  # the silent one: a 408 of our own
    # It never said it rang: announced when it was given up, as ringing since its INVITE.
    silent = pbx.bus.of_type(CallRinging)[0]
    assert silent.invited_at is not None
    assert 0.25 <= (silent.at - silent.invited_at).total_seconds() < 2.5


async def test_a_carrier_that_rings_is_not_silent(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    """A provisional response (here 180) keeps the fork: only the wave's timeout ends it."""
    caller, carrier = phones
    pbx.resolver.plans["out"] = _outbound(
        Wave((target(carrier, "ring"),), 1.0, silence=0.2), Wave((target(carrier, "answer"),), 5)
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    leg = dial(caller, pbx, "out")
    status = await final_status(leg, within=5)
    # Rung for the wave's whole second; unanswered is the callee's, so no next carrier.
    assert loop.time() - began >= 0.9 and status == 480
    await pbx.wait_ended()
    assert len(pbx.bus.of_type(CallRinging)) == 1


async def test_a_silent_server_hands_the_invite_to_the_targets_next_server(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """RFC 3263 §4.3 inside a wave: the target's first server says nothing, its next server
    (``RingTarget.fallbacks``) gets the INVITE in the same wave, and answers."""
    caller, carrier = phones
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        first = Flow("UDP", "127.0.0.1", hole.getsockname()[1])
        served = RingTarget(carrier.uri("answer"), first, fallbacks=(carrier.flow,))
        pbx.resolver.plans["in"] = Plan(ACCOUNT, (Wave((served,), 30, silence=0.3),))
        leg = dial(caller, pbx, "in")
        assert await final_status(leg, within=3) == 200  # one wave: only the next server
        hang_up(caller, leg)
        (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    ends = [(e.leg_id.rsplit(".", 1)[-1], e.reason) for e in pbx.bus.of_type(LegEnded)]
    assert ends == [("w0t0", LegEndReason.no_answer), ("w0t0s", LegEndReason.completed)]


async def test_a_503_tries_the_next_server_then_the_next_wave(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, carrier = phones
    other = await make_phone()
    try:
        overloaded = RingTarget(carrier.uri("overloaded"), carrier.flow, fallbacks=(other.flow,))
        pbx.resolver.plans["in"] = Plan(
            ACCOUNT, (Wave((overloaded,), 5), Wave((target(carrier, "answer"),), 5))
        )
        leg = dial(caller, pbx, "in")
        assert await final_status(leg) == 200
        hang_up(caller, leg)
        await pbx.wait_ended()
    finally:
        await other.runner.close()
    ends = [(e.leg_id.rsplit(".", 1)[-1], e.reason) for e in pbx.bus.of_type(LegEnded)]
    assert ends == [
        ("w0t0", LegEndReason.failed),  # the carrier's first server: 503
        ("w0t0s", LegEndReason.failed),  # its next server: 503 too, and no more of them
        ("w1t0", LegEndReason.completed),
    ]


def _offers(phone: Phone) -> list[bytes]:
    """The SDP of every INVITE ``phone`` receives, in order."""
    seen: list[bytes] = []

    def hook(ev: object) -> None:
        if isinstance(ev, IncomingRequest) and ev.request.method == "INVITE":
            seen.append(ev.request.body)

    phone.runner.add_event_hook(hook)
    return seen


async def test_a_phone_that_refuses_srtp_is_rung_again_with_rtp(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """A phone over TLS is offered SRTP; one without it answers 488, and is rung again at
    once with plain RTP, in the same wave (``RingTarget.plain``)."""
    caller, phone = phones
    offers = _offers(phone)
    secure = RingTarget(phone.uri("plain"), phone.flow, secure_media=True, plain_retry=True)
    pbx.resolver.plans["in"] = Plan(ACCOUNT, (Wave((secure,), 5),))
    leg = dial(caller, pbx, "in")
    assert await final_status(leg) == 200
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    assert [b"m=audio" in o and b"RTP/SAVP" in o for o in offers] == [True, False]
    assert b"a=crypto:" in offers[0] and b"a=crypto:" not in offers[1]
    ends = [(e.leg_id.rsplit(".", 1)[-1], e.reason) for e in pbx.bus.of_type(LegEnded)]
    assert ends[:2] == [("w0t0", LegEndReason.failed), ("w0t0p", LegEndReason.completed)]


async def test_a_trunk_that_requires_srtp_gets_no_plain_second_try(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, carrier = phones
    offers = _offers(carrier)
    secure = RingTarget(carrier.uri("plain"), carrier.flow, secure_media=True)
    pbx.resolver.plans["in"] = Plan(ACCOUNT, (Wave((secure,), 5),))
    leg = dial(caller, pbx, "in")
    assert await final_status(leg) >= 400
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is not Disposition.answered
    assert len(offers) == 1 and b"RTP/SAVP" in offers[0]
