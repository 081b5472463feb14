"""Call control in the B2BUA over loopback: answered_by from the target, the outbound caller
ID in From/P-Asserted-Identity, the INVITE gate, and blind transfer by REFER."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.media.engine.phone import tone_pcm
from zvonar.calls.events import (
    CallAnswered,
    CallStarted,
    CallTransferred,
    Direction,
    Disposition,
    HangupSide,
    LegEnded,
    Target,
    TargetKind,
    TransferKind,
)
from zvonar.calls.plan import CallerAuth, Enqueue, Plan, QueueOffer, RingTarget, Wave
from zvonar.calls.refer import SIPFRAG
from zvonar.calls.signalling import invite_request
from zvonar.media.wav import encode_wav
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.io.testserver import EchoPbx
from zvonar.sip.message import SipRequest, make_response, parse_message
from zvonar.sip.ua import DEFAULT_ALLOW, IncomingRequest, ResponseIn, UaEvent, UserAgent
from zvonar.sip.uri import parse_uri

from .test_b2bua import dial, final_status, hang_up

ANNA = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
BORIS = uuid.UUID("00000000-0000-4000-8000-0000000000b2")


@dataclass
class Spy:
    """An EchoPbx that also records what reaches it (REFER's 202, NOTIFYs)."""

    inner: EchoPbx
    seen: list[UaEvent] = field(default_factory=list)

    def handle_event(self, event: UaEvent, now: float) -> None:
        self.seen.append(event)
        self.inner.handle_event(event, now)

    def notifies(self) -> list[bytes]:
        return [
            e.request.body
            for e in self.seen
            if isinstance(e, IncomingRequest) and e.request.method == "NOTIFY"
        ]

    def statuses(self, method: str) -> list[int]:
        return [
            e.response.status
            for e in self.seen
            if isinstance(e, ResponseIn) and e.response.cseq.method == method
        ]


@pytest.fixture
async def agent() -> AsyncIterator[tuple[Phone, Spy]]:
    ua = UserAgent(allow=(*DEFAULT_ALLOW, "NOTIFY"))
    app = EchoPbx(ua)
    spy = Spy(app)
    runner = SipRunner(ua, spy)
    flow = await runner.listen_udp("127.0.0.1", 0)
    yield Phone(runner, app, flow), spy
    await runner.close()


def ring(phone: Phone, user: str, who: uuid.UUID, name: str) -> RingTarget:
    return RingTarget(phone.uri(user), phone.flow, Target(TargetKind.employee, name, who))


async def until(check: object, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def refer(phone: Phone, refer_to: str) -> None:
    """The agent's phone sends REFER in its (answered) dialog with the B2BUA."""
    ua = phone.runner.ua
    (dialog,) = list(ua.dialogs)
    (leg,) = list(phone.app._legs.values())
    req = ua.create_request(dialog, "REFER", leg.flow, headers=(("Refer-To", f"<{refer_to}>"),))
    ua.send_request(req, leg.flow, phone.runner.loop.time())
    phone.runner.pump()


async def test_answered_by_is_the_targets_employee(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((ring(callee, "answer", ANNA, "Anna"),), 5),))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    await until(lambda: pbx.bus.of_type(CallAnswered))
    (answered,) = pbx.bus.of_type(CallAnswered)
    assert answered.by == ANNA
    hang_up(caller, leg)
    await pbx.wait_ended()


def _invite_args(from_: str, target: str, **extra: object) -> dict[str, object]:
    """invite_request's arguments for a caller whose INVITE had ``from_``, to ``target``."""
    caller = SipRequest("INVITE", parse_uri("sip:+73831234567@pbx"), (("From", from_),))
    return dict(
        target=target,
        caller=caller,
        local_tag="t1",
        call_id="k@zvonar",
        via="SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx",
        contact="sip:127.0.0.1:5060",
        user_agent="Zvonar",
        sdp=b"v=0\r\n",
        **extra,
    )


def test_outbound_invite_carries_the_chosen_caller_id() -> None:
    common = _invite_args('"Anna" <sip:101@alpha.zvonar>;tag=x', "sip:+73831234567@127.0.0.1:5090")
    out = invite_request(**common, from_user="+73832000000")  # type: ignore[arg-type]
    assert out.from_.uri == parse_uri("sip:+73832000000@127.0.0.1")
    assert out.from_.tag == "t1"
    assert out.header("P-Asserted-Identity") == "<sip:+73832000000@127.0.0.1>"
    kept = invite_request(**common)  # type: ignore[arg-type]
    assert kept.from_.display_name == "Anna" and kept.header("P-Asserted-Identity") is None
    with pytest.raises(ValueError):
        invite_request(**common, from_user="evil>;x")  # type: ignore[arg-type]
    # The line's label as the display name: the caller's own address kept, no PAI.
    named = invite_request(**common, from_display='Курорты: "VIP"')  # type: ignore[arg-type]
    assert named.from_.display_name == 'Курорты: "VIP"' and named.from_.tag == "t1"
    assert named.from_.uri == parse_uri("sip:101@alpha.zvonar")
    assert named.header("P-Asserted-Identity") is None
    assert parse_message(named.serialize()).from_.display_name == 'Курорты: "VIP"'
    forwarded = invite_request(**common, diversion="+74951234567")  # type: ignore[arg-type]
    assert forwarded.header("Diversion") == (
        "<sip:+74951234567@127.0.0.1>;reason=unconditional;counter=1"
    )
    with pytest.raises(ValueError):
        invite_request(**common, diversion="x>;evil")  # type: ignore[arg-type]


def test_a_carrier_that_requires_its_login_in_from() -> None:
    """Trunk.from_user: From names the carrier's account login; who calls (our caller ID, or
    a forwarded customer) goes in P-Asserted-Identity."""
    common = _invite_args(
        '"Ivan" <sip:+79160000001@carrier.example>;tag=x',
        "sip:+73831234567@sip.carrier.example",
        carrier_user="7001234",
    )
    out = invite_request(**common, from_user="+73832000000")  # type: ignore[arg-type]
    assert out.from_.uri == parse_uri("sip:7001234@sip.carrier.example")
    assert out.from_.tag == "t1" and out.from_.display_name is None
    assert out.header("P-Asserted-Identity") == "<sip:+73832000000@sip.carrier.example>"
    forwarded = invite_request(**common, diversion="+74951234567")  # type: ignore[arg-type]
    assert forwarded.from_.uri == parse_uri("sip:7001234@sip.carrier.example")
    assert forwarded.from_.display_name == "Ivan"
    assert forwarded.header("P-Asserted-Identity") == (
        '"Ivan" <sip:+79160000001@sip.carrier.example>'
    )
    with pytest.raises(ValueError):
        invite_request(**{**common, "carrier_user": "a>;b"})  # type: ignore[arg-type]


def test_a_withheld_number() -> None:
    """*67 / #31#: From anonymous (RFC 3323 §4.1.1.3), Privacy: id, the caller ID still in
    P-Asserted-Identity for the carrier; with a carrier's login in From, the login stays."""
    common = _invite_args(
        "<sip:101@alpha.zvonar>;tag=x",
        "sip:+73831234567@sip.carrier.example",
        from_user="+73832000000",
        withhold=True,
    )
    out = invite_request(**common)  # type: ignore[arg-type]
    assert str(out.from_.uri) == "sip:anonymous@anonymous.invalid" and out.from_.tag == "t1"
    assert out.header("Privacy") == "id"
    assert out.header("P-Asserted-Identity") == "<sip:+73832000000@sip.carrier.example>"
    login = invite_request(**common, carrier_user="7001234")  # type: ignore[arg-type]
    assert str(login.from_.uri) == "sip:7001234@sip.carrier.example"
    assert login.header("Privacy") == "id"


def test_an_intercom_call_asks_the_phone_to_answer_itself() -> None:
    """*9<ext>: Call-Info with answer-after=0 (Polycom, Yealink, Snom, Grandstream) and
    RFC 5373's Answer-Mode: Auto; any other call carries neither."""
    common = _invite_args("<sip:102@alpha.zvonar>;tag=x", "sip:101@127.0.0.1:5070")
    out = invite_request(**common, auto_answer=True)  # type: ignore[arg-type]
    assert out.header("Call-Info") == "<sip:127.0.0.1>;answer-after=0"
    assert out.header("Answer-Mode") == "Auto"
    plain = invite_request(**common)  # type: ignore[arg-type]
    assert plain.header("Call-Info") is None and plain.header("Answer-Mode") is None


async def test_gate_challenges_and_passes_auth_to_the_resolver(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    decisions: list[str] = []

    def gate(inc: IncomingRequest, now: float) -> CallerAuth | None:
        if inc.request.from_.uri.user == "intruder":  # type: ignore[union-attr]
            decisions.append("407")
            resp = make_response(inc.request, 407, to_tag="g1")
            pbx.b2bua.ua.respond(inc, resp, now)
            return None
        decisions.append("ok")
        return CallerAuth(account_id=ACCOUNT, user="101", realm="alpha.zvonar")

    pbx.b2bua.gate = gate
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((ring(callee, "answer", ANNA, "A"),), 5),))
    bad = caller.app.originate(
        f"sip:100@{pbx.address}",
        pbx.flow,
        caller.runner.loop.time(),
        from_header="<sip:intruder@alpha.zvonar>",
    )
    caller.runner.pump()
    assert await final_status(bad) == 407
    assert not pbx.resolver.seen  # a challenged INVITE never reaches routing
    good = dial(caller, pbx, "100")
    assert await final_status(good) == 200
    expected = CallerAuth(account_id=ACCOUNT, user="101", realm="alpha.zvonar")
    assert pbx.resolver.seen[0].auth == expected
    assert decisions == ["407", "ok"]
    hang_up(caller, good)
    await pbx.wait_ended()


async def _anna_answers_then_refers(
    pbx: Pbx, caller: Phone, anna_phone: Phone, refer_to: str
) -> Any:
    """The caller dials 100, Anna answers, then Anna blind-transfers to ``refer_to``."""
    pbx.resolver.plans["100"] = Plan(
        ACCOUNT, (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),)
    )
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    await until(lambda: anna_phone.app.calls_answered == 1 and list(anna_phone.runner.ua.dialogs))
    refer(anna_phone, f"sip:{refer_to}@{pbx.address}")
    return leg


async def test_blind_transfer_rings_the_target_for_the_caller(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    caller, boris_phone = phones
    anna_phone, spy = agent
    pbx.resolver.plans["102"] = Plan(
        ACCOUNT, (Wave((ring(boris_phone, "answer", BORIS, "Boris"),), 5),)
    )
    leg = await _anna_answers_then_refers(pbx, caller, anna_phone, "102")
    await until(lambda: boris_phone.app.calls_answered == 1)
    await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 2)
    assert spy.statuses("REFER") == [202]
    await until(lambda: len(spy.notifies()) == 2)
    assert spy.notifies() == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"]
    notify = next(
        e.request
        for e in spy.seen
        if isinstance(e, IncomingRequest) and e.request.method == "NOTIFY"
    )
    assert notify.header("Event") == "refer" and notify.content_type == SIPFRAG
    await until(lambda: anna_phone.app.calls_ended == 1)  # the agent's leg got our BYE
    (moved,) = pbx.bus.of_type(CallTransferred)
    assert moved.kind is TransferKind.blind and moved.to.target_id == BORIS
    assert [a.by for a in pbx.bus.of_type(CallAnswered)] == [ANNA, BORIS]
    assert leg.ended is not None and not leg.ended.done()  # the caller stayed on the call
    assert pbx.resolver.seen[-1].auth == CallerAuth(account_id=ACCOUNT)
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered and ended.hangup is HangupSide.caller
    await until(lambda: boris_phone.app.calls_ended == 1)


async def test_the_transferred_caller_hears_ringback_while_the_target_rings(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    caller, boris_phone = phones
    anna_phone, _ = agent
    pbx.resolver.plans["102"] = Plan(
        ACCOUNT, (Wave((ring(boris_phone, "ring", BORIS, "Boris"),), 5),)
    )
    leg = await _anna_answers_then_refers(pbx, caller, anna_phone, "102")
    await until(lambda: anna_phone.app.calls_ended == 1 and bool(boris_phone.app._legs))
    (call,) = pbx.b2bua.calls.values()
    assert call.caller.media_id is not None
    player = pbx.b2bua.engine._legs[call.caller.media_id].player  # type: ignore[attr-defined]
    assert player is not None and player.loop  # our ringback, not silence
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_transfer_to_nowhere_keeps_the_agent(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    caller, _ = phones
    anna_phone, spy = agent
    leg = await _anna_answers_then_refers(pbx, caller, anna_phone, "999")  # resolver: 404
    await until(lambda: len(spy.notifies()) == 2)
    assert spy.notifies()[-1] == b"SIP/2.0 404 Transfer Failed\r\n"
    assert not pbx.bus.of_type(CallTransferred)
    assert anna_phone.app.calls_ended == 0 and not leg.ended.done()  # type: ignore[union-attr]
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered


async def test_unanswered_transfer_rings_the_agent_back(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    caller, boris_phone = phones
    anna_phone, _ = agent
    pbx.resolver.plans["102"] = Plan(
        ACCOUNT, (Wave((ring(boris_phone, "busy", BORIS, "Boris"),), 5),)
    )
    leg = await _anna_answers_then_refers(pbx, caller, anna_phone, "102")
    await until(lambda: anna_phone.app.calls_answered == 2)  # Boris busy → Anna again
    await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 2)
    assert [a.by for a in pbx.bus.of_type(CallAnswered)] == [ANNA, ANNA]
    assert not leg.ended.done()  # type: ignore[union-attr]
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered


@pytest.mark.parametrize("taken_on", ["x101", "m101"], ids=["phone", "mobile"])
async def test_unanswered_transfer_rings_all_of_the_agents_phones_back(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], taken_on: str
) -> None:
    """The audit's case: Anna on two phones transfers from one, nobody takes the call, and
    only the phone she transferred from rang back. She is rung as her extension is: on all —
    also when she took the call on her mobile (pbx/reach.py labels it m<extension>)."""
    caller, boris_phone = phones
    anna_phone, _ = agent
    anna_desk = await make_phone()
    try:
        anna = Target(TargetKind.employee, "Anna", ANNA)
        # pbx/reach.py labels each of an employee's phones x<extension>.
        pbx.resolver.plans["100"] = Plan(
            ACCOUNT,
            (Wave((RingTarget(anna_phone.uri("answer"), anna_phone.flow, anna, taken_on),), 5),),
        )
        # Her extension now: the handset only rings, the desk answers.
        pbx.resolver.plans["101"] = Plan(
            ACCOUNT,
            (
                Wave(
                    (
                        RingTarget(anna_phone.uri("ring"), anna_phone.flow, anna, "x101"),
                        RingTarget(anna_desk.uri("answer"), anna_desk.flow, anna, "x101"),
                    ),
                    5,
                ),
            ),
        )
        pbx.resolver.plans["102"] = Plan(
            ACCOUNT, (Wave((ring(boris_phone, "busy", BORIS, "Boris"),), 5),)
        )
        leg = dial(caller, pbx, "100")
        assert await final_status(leg) == 200
        await until(
            lambda: anna_phone.app.calls_answered == 1 and list(anna_phone.runner.ua.dialogs)
        )
        refer(anna_phone, f"sip:102@{pbx.address}")
        await until(lambda: anna_desk.app.calls_answered == 1)  # Boris busy: Anna, on her desk
        assert [c.dialed for c in pbx.resolver.seen] == ["100", "102", "101"]
        assert [a.by for a in pbx.bus.of_type(CallAnswered)] == [ANNA, ANNA]
        assert not leg.ended.done()  # type: ignore[union-attr]
        hang_up(caller, leg)
        (ended,) = await pbx.wait_ended()
        assert ended.disposition is Disposition.answered
    finally:
        await anna_desk.runner.close()


async def test_a_queue_agent_who_transfers_is_free_at_once(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], tmp_path: Path
) -> None:
    """The queue's session ends when the agent hands the caller on, not when the caller
    hangs up: the agent goes into wrap-up and may take the next caller (steps.agent_left)."""
    from tests.calls.test_steps import FakeSession, ScriptedRoute

    caller, boris_phone = phones
    anna_phone, _ = agent
    music = tmp_path / "music.wav"
    music.write_bytes(encode_wav(tone_pcm(600.0, 0.3)))
    session = FakeSession()
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (), route=ScriptedRoute([Enqueue(session, music)]))
    pbx.resolver.plans["102"] = Plan(
        ACCOUNT, (Wave((ring(boris_phone, "answer", BORIS, "Boris"),), 5),)
    )
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200  # answered by us: the queue's music
    await session.wait_for("enter")
    assert session.notify is not None
    session.notify(QueueOffer(1, (ring(anna_phone, "answer", ANNA, "Anna"),), 5))
    await session.wait_for("answered")
    await until(lambda: anna_phone.app.calls_answered == 1 and list(anna_phone.runner.ua.dialogs))
    refer(anna_phone, f"sip:102@{pbx.address}")
    await until(lambda: boris_phone.app.calls_answered == 1)
    assert session.kinds()[-1] == "call_ended"  # while the caller still talks to Boris
    assert leg.ended is not None and not leg.ended.done()
    hang_up(caller, leg)
    await pbx.wait_ended()
    assert session.kinds().count("call_ended") == 1 and "left" not in session.kinds()


CUSTOMER = "+79160000001"


async def dials_out(pbx: Pbx, anna_phone: Phone, customer_phone: Phone, boris_phone: Phone) -> Any:
    """Anna's phone (101, past the INVITE gate) calls the customer, who answers; 102 would
    ring Boris. The caller's leg of that outbound call."""
    _gate_as_101(pbx)
    customer = RingTarget(
        customer_phone.uri("answer"), customer_phone.flow, Target(TargetKind.external, CUSTOMER)
    )
    pbx.resolver.plans[CUSTOMER] = Plan(
        ACCOUNT, (Wave((customer,), 5),), direction=Direction.outbound
    )
    pbx.resolver.plans["102"] = Plan(
        ACCOUNT, (Wave((ring(boris_phone, "answer", BORIS, "Boris"),), 5),)
    )
    leg = dial(anna_phone, pbx, CUSTOMER)
    assert await final_status(leg) == 200
    return leg


def _gate_as_101(pbx: Pbx) -> None:
    """The INVITE gate passes every caller as the account's phone 101 (it passed digest)."""

    def gate(inc: IncomingRequest, now: float) -> CallerAuth | None:
        return CallerAuth(account_id=ACCOUNT, user="101", realm="alpha.zvonar")

    pbx.b2bua.gate = gate


async def test_an_employee_who_dialed_out_hands_the_customer_on(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    """101 calls a customer, then REFERs them to 102: the customer's leg becomes the call's
    caller, 101 is hung up, Boris rings and talks to the customer; the customer's BYE ends it."""
    customer_phone, boris_phone = phones
    anna_phone, spy = agent
    await dials_out(pbx, anna_phone, customer_phone, boris_phone)
    await until(lambda: customer_phone.app.calls_answered == 1)
    refer(anna_phone, f"sip:102@{pbx.address}")
    await until(lambda: boris_phone.app.calls_answered == 1)
    assert spy.statuses("REFER") == [202]
    await until(lambda: len(spy.notifies()) == 2)
    assert spy.notifies() == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"]
    await until(lambda: anna_phone.app.calls_ended == 1)  # the employee got our BYE
    (moved,) = pbx.bus.of_type(CallTransferred)
    answered = pbx.bus.of_type(CallAnswered)
    assert moved.kind is TransferKind.blind and moved.to.target_id == BORIS
    assert moved.from_leg_id not in {a.leg_id for a in answered}  # the caller's leg left
    # Boris sees who he talks to: the customer, not the employee who left.
    (boris_dialog,) = list(boris_phone.runner.ua.dialogs)
    assert boris_dialog.remote_uri.uri.user == "answer"  # type: ignore[union-attr]
    assert customer_phone.app.calls_ended == 0
    (customer_leg,) = list(customer_phone.app._legs.values())
    (customer_leg.dialog,) = list(customer_phone.runner.ua.dialogs)  # its UAS legs keep none
    customer_phone.app.hangup(customer_leg, customer_phone.runner.loop.time())
    customer_phone.runner.pump()
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered and ended.hangup is HangupSide.caller
    await until(lambda: boris_phone.app.calls_ended == 1)
    first = answered[0].leg_id
    assert any(e.leg_id == first for e in pbx.bus.of_type(LegEnded))  # the customer's leg


async def test_a_callers_refer_from_outside_is_refused(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    """A caller who is no phone of the account (a customer, a carrier) may not transfer:
    honouring it would place calls at the account's expense."""
    _, anna_phone = phones
    outsider, spy = agent
    pbx.resolver.plans["100"] = Plan(
        ACCOUNT, (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),)
    )
    leg = dial(outsider, pbx, "100")
    assert await final_status(leg) == 200
    await until(lambda: anna_phone.app.calls_answered == 1)
    refer(outsider, "sip:+4420700000@example.com")
    await until(lambda: spy.statuses("REFER") == [403])
    assert not pbx.bus.of_type(CallTransferred) and anna_phone.app.calls_ended == 0
    hang_up(outsider, leg)
    await pbx.wait_ended()


async def test_the_api_transfers_an_outbound_call_from_the_employee_who_placed_it(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    """The operator's "transfer" button on an outbound call: the employee who dialed out (the
    caller side) leaves, not the customer who answered."""
    customer_phone, boris_phone = phones
    anna_phone, _ = agent
    await dials_out(pbx, anna_phone, customer_phone, boris_phone)
    (started,) = pbx.bus.of_type(CallStarted)
    await pbx.b2bua.transfer(ACCOUNT, started.call_id, "102")
    await until(lambda: boris_phone.app.calls_answered == 1 and anna_phone.app.calls_ended == 1)
    assert customer_phone.app.calls_ended == 0
    (moved,) = pbx.bus.of_type(CallTransferred)
    assert moved.to.target_id == BORIS
    # The customer is the call's caller now, but no phone of ours: its REFER is refused.
    refer(customer_phone, "sip:+4420700000@example.com")
    await asyncio.sleep(0.3)
    assert len(pbx.bus.of_type(CallTransferred)) == 1 and boris_phone.app.calls_ended == 0
    assert len(pbx.resolver.seen) == 3  # the call, 102, the ring-back: nothing for +44
