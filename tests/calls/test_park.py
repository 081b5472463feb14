"""Call park over loopback (calls/park.py): Anna answers a customer and blind-transfers them
to slot ``*51``; the customer waits with music, her phone gets our BYE; Boris dials ``*51``
and gets the call (answered by him, the customer's RTP bridged to his phone). An empty slot
is 404, a taken one refuses the second REFER, and a call nobody takes rings Anna back. A
customer Anna dialled herself is parked the same way (the customer's leg becomes the call's
caller), and Anna's extension is what is rung back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from zvonar.calls import park
from zvonar.calls.events import (
    CallAnswered,
    CallRinging,
    CallTransferred,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
    Target,
    TargetKind,
    TransferKind,
)
from zvonar.calls.park import Unpark
from zvonar.calls.plan import InboundCall, Plan, Wave
from zvonar.sip.io.testserver import CallLeg

from .test_b2bua import dial, final_status, hang_up
from .test_pickup import relayed, rtp_socket, sdp
from .test_transfer import ANNA, BORIS, Spy, agent, dials_out, refer, ring, until

__all__ = ["agent"]  # the fixture, imported for this module's tests


@pytest.fixture
async def taker() -> AsyncIterator[Phone]:
    """Boris's phone, which dials the slot."""
    phone = await make_phone()
    yield phone
    await phone.runner.close()


def taken_by_boris(slot: int = 1) -> object:
    def order(_call: InboundCall) -> Unpark:
        return Unpark(ACCOUNT, BORIS, Target(TargetKind.employee, "Boris", BORIS), slot=slot)

    return order


async def _parked(
    pbx: Pbx,
    caller: Phone,
    anna: tuple[Phone, Spy],
    offer: bytes = b"",
    slot: str = "*51",
    park_seconds: float | None = None,
) -> tuple[CallLeg, str]:
    """The caller dials 100, Anna answers and parks them in ``slot`` (``park_seconds``: the
    account's wait there): the caller's leg and the call's id, once Anna's phone got our
    BYE."""
    anna_phone, spy = anna
    pbx.resolver.plans["100"] = Plan(
        ACCOUNT,
        (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),),
        park_seconds=park_seconds,
    )
    leg = dial(caller, pbx, "100", offer)
    assert await final_status(leg) == 200
    await until(lambda: anna_phone.app.calls_answered == 1 and list(anna_phone.runner.ua.dialogs))
    refer(anna_phone, f"sip:{slot}@{pbx.address}")
    await until(lambda: anna_phone.app.calls_ended == 1)
    assert spy.statuses("REFER") == [202]
    await until(lambda: len(spy.notifies()) == 2)
    assert spy.notifies()[-1] == b"SIP/2.0 200 OK\r\n"
    call_id = pbx.events()[0].call_id
    call = pbx.b2bua.calls[call_id]
    await until(lambda: call.parked is not None and call.parked.settled)
    return leg, call_id


async def test_a_parked_call_waits_with_music_and_goes_to_whoever_dials_the_slot(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], taker: Phone
) -> None:
    caller, _ = phones
    a_rtp, b_rtp = rtp_socket(), rtp_socket()
    try:
        leg, call_id = await _parked(pbx, caller, agent, sdp(a_rtp.getsockname()[1]))
        (moved,) = pbx.bus.of_type(CallTransferred)
        assert moved.kind is TransferKind.blind
        assert moved.to == Target(TargetKind.park, "*51")
        call = pbx.b2bua.calls[call_id]
        assert call.parked is not None and call.parked.slot == 1 and call.winner is None
        assert call.caller.media_id is not None
        player = pbx.b2bua.engine._legs[call.caller.media_id].player  # type: ignore[attr-defined]
        assert player is not None and player.loop  # not silence: the rig has no hold music
        ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert ends == {f"{call_id}.w0t0": LegEndReason.completed}

        pbx.resolver.plans["*51"] = taken_by_boris()  # type: ignore[assignment]
        taken = dial(taker, pbx, "*51", sdp(b_rtp.getsockname()[1]))
        assert await final_status(taken) == 200
        await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 2)
        assert {e.call_id for e in pbx.events()} == {call_id}  # the taker's INVITE: no call
        first, then = ((a.leg_id, a.by) for a in pbx.bus.of_type(CallAnswered))
        assert first == (f"{call_id}.w0t0", ANNA)
        assert then[0].startswith(f"{call_id}.pk") and then[1] == BORIS
        assert then[0] in {r.leg_id for r in pbx.bus.of_type(CallRinging)}
        assert call.parked is None
        assert pbx.b2bua.engine._legs[call.caller.media_id].player is None  # type: ignore[attr-defined]

        data = await relayed(pbx, call_id, a_rtp, b_rtp)  # the customer reaches Boris
        assert data[12:] == b"\xff" * 160

        hang_up(caller, leg)
        assert taken.ended is not None
        (ended,) = await pbx.wait_ended()
        assert ended.disposition is Disposition.answered
        assert ended.hangup is HangupSide.caller
        await until(lambda: taken.ended.done())  # type: ignore[union-attr]
        ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
        assert ends[then[0]] is LegEndReason.completed
        await pbx.b2bua.wait_idle()
        assert pbx.b2bua.engine.leg_count == 0  # type: ignore[attr-defined]
    finally:
        a_rtp.close()
        b_rtp.close()


async def test_an_empty_slot_is_404_and_makes_no_call(pbx: Pbx, taker: Phone) -> None:
    pbx.resolver.plans["*52"] = taken_by_boris(2)  # type: ignore[assignment]
    taken = dial(taker, pbx, "*52")
    assert await final_status(taken) == 404
    assert not pbx.events()


async def test_a_taken_slot_refuses_the_second_park_and_that_agent_keeps_the_call(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], taker: Phone
) -> None:
    caller, _ = phones
    anna_phone, spy = agent
    first, _ = await _parked(pbx, caller, agent)
    second = dial(taker, pbx, "100")  # another customer; Anna answers and tries *51 too
    assert await final_status(second) == 200
    await until(lambda: anna_phone.app.calls_answered == 2)
    refer(anna_phone, f"sip:*51@{pbx.address}")
    await until(lambda: len(spy.notifies()) == 4)
    assert spy.notifies()[2:] == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 486 Transfer Failed\r\n"]
    assert len(pbx.bus.of_type(CallTransferred)) == 1
    assert anna_phone.app.calls_ended == 1  # no BYE this time: Anna keeps her caller
    assert second.ended is not None and not second.ended.done()
    hang_up(taker, second)
    hang_up(caller, first)
    ended = await pbx.wait_ended(2)
    assert {e.disposition for e in ended} == {Disposition.answered}


async def test_nobody_takes_it_so_the_parker_is_rung_back(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    """The account's park time (the plan's, 0.3 s here; the module's 120 s otherwise)."""
    caller, _ = phones
    anna_phone, _spy = agent
    leg, call_id = await _parked(pbx, caller, agent, park_seconds=0.3)
    await until(lambda: anna_phone.app.calls_answered == 2)  # rung back, and she answers
    await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 2)
    assert [a.by for a in pbx.bus.of_type(CallAnswered)] == [ANNA, ANNA]
    assert pbx.b2bua.calls[call_id].parked is None
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered


async def test_the_apis_transfer_to_a_slot_parks_the_call(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy]
) -> None:
    """The operator's "transfer" button (``B2bua.transfer``, the API's) with ``*52``."""
    caller, _ = phones
    anna_phone, _spy = agent
    pbx.resolver.plans["100"] = Plan(
        ACCOUNT, (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),)
    )
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 1)
    call_id = pbx.events()[0].call_id
    await pbx.b2bua.transfer(ACCOUNT, call_id, "*52")
    await until(lambda: anna_phone.app.calls_ended == 1)
    parked = pbx.b2bua.calls[call_id].parked
    assert parked is not None and parked.slot == 2
    (moved,) = pbx.bus.of_type(CallTransferred)
    assert moved.to == Target(TargetKind.park, "*52")
    hang_up(caller, leg)  # the customer gives up waiting: the slot goes with the call
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered and ended.hangup is HangupSide.caller
    await pbx.b2bua.wait_idle()
    assert pbx.b2bua.engine.leg_count == 0  # type: ignore[attr-defined]


async def test_a_customer_the_employee_dialled_is_parked_and_rung_back_to_her(
    pbx: Pbx,
    phones: tuple[Phone, Phone],
    agent: tuple[Phone, Spy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anna (101) calls a customer and REFERs them to ``*53``: 202, the NOTIFYs, our BYE to
    her phone; the customer's leg is the call's caller now, with music. Nobody takes it:
    what Anna's own extension resolves to is rung, and she answers."""
    monkeypatch.setattr(park, "PARK_SECONDS", 0.3)
    customer_phone, boris_phone = phones
    anna_phone, spy = agent
    await dials_out(pbx, anna_phone, customer_phone, boris_phone)
    await until(lambda: customer_phone.app.calls_answered == 1)
    (placed,) = pbx.resolver.seen
    pbx.resolver.plans[placed.caller] = Plan(
        ACCOUNT, (Wave((ring(anna_phone, "answer", ANNA, "Anna"),), 5),)
    )
    call = pbx.b2bua.calls[placed.call_id]
    anna_leg = call.caller.leg_id
    refer(anna_phone, f"sip:*53@{pbx.address}")
    await until(lambda: call.parked is not None and call.parked.settled)
    assert call.caller.was_fork and call.caller.leg_id != anna_leg  # the customer's leg
    assert spy.statuses("REFER") == [202]
    await until(lambda: anna_phone.app.calls_ended == 1)  # the employee got our BYE
    assert spy.notifies() == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"]
    (moved,) = pbx.bus.of_type(CallTransferred)
    assert (moved.from_leg_id, moved.to) == (anna_leg, Target(TargetKind.park, "*53"))
    await until(lambda: anna_phone.app.calls_answered == 1)  # rung back: she answers
    await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 2)
    assert pbx.bus.of_type(CallAnswered)[-1].by == ANNA
    assert customer_phone.app.calls_ended == 0 and call.parked is None
    (customer_leg,) = list(customer_phone.app._legs.values())
    (customer_leg.dialog,) = list(customer_phone.runner.ua.dialogs)  # its UAS legs keep none
    customer_phone.app.hangup(customer_leg, customer_phone.runner.loop.time())
    customer_phone.runner.pump()
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered


async def test_the_api_parks_an_outbound_call_and_a_colleague_takes_it(
    pbx: Pbx, phones: tuple[Phone, Phone], agent: tuple[Phone, Spy], taker: Phone
) -> None:
    """The operator's transfer of Anna's outbound call to ``*51``: Anna's leg is hung up,
    the customer waits; Boris dials ``*51`` and gets the customer."""
    customer_phone, boris_phone = phones
    anna_phone, _spy = agent
    await dials_out(pbx, anna_phone, customer_phone, boris_phone)
    await until(lambda: customer_phone.app.calls_answered == 1)
    (placed,) = pbx.resolver.seen
    await pbx.b2bua.transfer(ACCOUNT, placed.call_id, "*51")
    await until(lambda: anna_phone.app.calls_ended == 1)
    call = pbx.b2bua.calls[placed.call_id]
    await until(lambda: call.parked is not None and call.parked.settled)
    # A park key shows the customer (the callee Anna dialled), not Anna.
    assert pbx.b2bua.parked_in(ACCOUNT, 1) == (placed.call_id, "answer")
    pbx.resolver.plans["*51"] = taken_by_boris(1)  # type: ignore[assignment]
    taken = dial(taker, pbx, "*51")
    assert await final_status(taken) == 200
    await until(lambda: len(pbx.bus.of_type(CallAnswered)) == 2)
    assert pbx.bus.of_type(CallAnswered)[-1].by == BORIS and call.parked is None
    assert pbx.b2bua.parked_in(ACCOUNT, 1) is None
    assert customer_phone.app.calls_ended == 0
    hang_up(taker, taken)  # Boris hangs up: the customer gets our BYE
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    await until(lambda: customer_phone.app.calls_ended == 1)
    await pbx.b2bua.wait_idle()
    assert pbx.b2bua.engine.leg_count == 0  # type: ignore[attr-defined]
