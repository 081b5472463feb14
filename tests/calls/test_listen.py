"""Silent listening (listen.py) over loopback UDP with signalling peers (the stack's EchoPbx):
who gets hung up when, what is refused, and that the listener leaves no trace in the call's
events. What the listener hears is tested with real RTP in tests/media/engine/test_monitor.py
and end to end in tests/e2e/test_listen.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.calls.test_originate import customer, outcome, ring, spec, until
from zvonar.calls.events import CallEnded, CallEvent, Disposition, HangupSide
from zvonar.calls.listen import ListenEnd, Listener, ListenRefused, Refusal
from zvonar.calls.origination import OriginationOutcome
from zvonar.calls.plan import Plan, RingTarget, Wave
from zvonar.sip.io.testserver import CallLeg


@pytest.fixture
async def boss() -> AsyncIterator[Phone]:
    phone = await make_phone()
    yield phone
    await phone.runner.close()


async def answered_call(pbx: Pbx, caller: Phone, callee: Phone) -> tuple[str, CallLeg]:
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (Wave((target(callee, "answer"),), 5),))
    leg = dial(caller, pbx, "100")
    assert await final_status(leg) == 200
    (call_id,) = pbx.b2bua.calls
    return call_id, leg


async def ended(listener: Listener, within: float = 5.0) -> ListenEnd:
    return await asyncio.wait_for(asyncio.shield(listener.ended), within)


async def listening(listener: Listener, within: float = 5.0) -> bool:
    return await asyncio.wait_for(asyncio.shield(listener.answered), within)


def hang_up_listener(boss: Phone) -> None:
    """BYE from the supervisor's (only) answered leg."""
    (leg,) = [x for x in boss.app._legs.values() if x.state != "ended"]
    leg.dialog = next(d for d in boss.runner.ua.dialogs if d.id.local_tag == leg.local_tag)
    leg.state = "confirmed"
    boss.app.hangup(leg, boss.runner.loop.time())
    boss.runner.pump()


async def test_the_call_ending_hangs_up_the_listener(
    pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone
) -> None:
    caller, callee = phones
    call_id, leg = await answered_call(pbx, caller, callee)
    listener = await pbx.b2bua.listen(ACCOUNT, call_id, (target(boss, "answer"),))
    assert await listening(listener)
    assert boss.app.calls_answered == 1
    # The mix flows to the supervisor's phone at the engine's pace.
    winner = listener.winner
    assert winner is not None
    before = (await pbx.b2bua.engine.stats(winner.leg_id)).tx_packets
    await asyncio.sleep(0.3)
    sent = (await pbx.b2bua.engine.stats(winner.leg_id)).tx_packets - before
    assert 10 <= sent <= 20
    hang_up(caller, leg)
    assert await ended(listener) is ListenEnd.call_ended
    await until(lambda: boss.app.calls_ended == 1)  # our BYE reached the supervisor
    await asyncio.wait_for(pbx.b2bua.wait_idle(), 5)
    assert not pbx.b2bua.listeners and not pbx.b2bua._by_media
    # Listening is no part of the call: only the call's own events, under its own id.
    assert {e.call_id for e in pbx.bus.events if isinstance(e, CallEvent)} == {call_id}


async def test_the_listener_hanging_up_leaves_the_call_alone(
    pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone
) -> None:
    caller, callee = phones
    call_id, leg = await answered_call(pbx, caller, callee)
    listener = await pbx.b2bua.listen(ACCOUNT, call_id, (target(boss, "answer"),))
    assert await listening(listener)
    hang_up_listener(boss)
    assert await ended(listener) is ListenEnd.listener_hung_up
    await asyncio.sleep(0.2)
    assert call_id in pbx.b2bua.calls and not pbx.b2bua.listeners
    assert callee.app.calls_ended == 0 and caller.app.calls_ended == 0
    assert not pbx.bus.of_type(CallEnded)
    hang_up(caller, leg)
    (end,) = await pbx.wait_ended()
    assert end.disposition is Disposition.answered and end.hangup is HangupSide.caller


async def test_a_ringing_listener_is_cancelled_when_the_call_ends(
    pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone
) -> None:
    caller, callee = phones
    call_id, leg = await answered_call(pbx, caller, callee)
    listener = await pbx.b2bua.listen(ACCOUNT, call_id, (target(boss, "ring"),))
    await until(lambda: any(x.state != "ended" for x in boss.app._legs.values()))
    hang_up(caller, leg)
    assert await ended(listener) is ListenEnd.call_ended
    assert await listening(listener) is False
    await until(lambda: boss.app.calls_ended == 1)  # CANCEL → 487


async def test_nobody_answers(pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone) -> None:
    caller, callee = phones
    call_id, leg = await answered_call(pbx, caller, callee)
    busy = await pbx.b2bua.listen(ACCOUNT, call_id, (target(boss, "busy"),))
    assert await ended(busy) is ListenEnd.no_answer
    rings = await pbx.b2bua.listen(
        ACCOUNT, call_id, (target(boss, "ring"), target(boss, "busy")), ring_seconds=0.3
    )
    assert await ended(rings) is ListenEnd.no_answer
    assert await listening(rings) is False
    assert call_id in pbx.b2bua.calls  # the call never noticed
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_the_first_of_several_phones_listens(
    pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone
) -> None:
    caller, callee = phones
    call_id, leg = await answered_call(pbx, caller, callee)
    listener = await pbx.b2bua.listen(
        ACCOUNT, call_id, (target(boss, "ring"), target(boss, "answer"))
    )
    assert await listening(listener)
    await until(lambda: boss.app.calls_ended == 1)  # the ringing one was CANCELled
    assert pbx.b2bua._by_media.get(f"{listener.call_id}.s0") is None
    hang_up(caller, leg)
    assert await ended(listener) is ListenEnd.call_ended


async def test_refusals(pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone) -> None:
    caller, callee = phones
    with pytest.raises(ListenRefused) as unknown:
        await pbx.b2bua.listen(ACCOUNT, "cnope", (target(boss, "answer"),))
    assert unknown.value.reason is Refusal.unknown_call
    pbx.resolver.plans["200"] = Plan(ACCOUNT, (Wave((target(callee, "ring"),), 5),))
    leg = dial(caller, pbx, "200")
    await until(lambda: bool(pbx.b2bua.calls))
    (call_id,) = pbx.b2bua.calls
    with pytest.raises(ListenRefused) as ringing:
        await pbx.b2bua.listen(ACCOUNT, call_id, (target(boss, "answer"),))
    assert ringing.value.reason is Refusal.not_answered
    # Another account's call is no call at all.
    with pytest.raises(ListenRefused) as foreign:
        await pbx.b2bua.listen(uuid.uuid4(), call_id, (target(boss, "answer"),))
    assert foreign.value.reason is Refusal.unknown_call
    assert not pbx.b2bua.listeners and boss.app.calls_answered == 0
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_listening_to_a_callback_hears_the_customer_leg(
    pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone
) -> None:
    agents, customers = phones
    placed = await pbx.b2bua.originate(
        spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "answer"))
    )
    assert await outcome(placed) is OriginationOutcome.connected
    listener = await pbx.b2bua.listen(ACCOUNT, placed.call_id, (target(boss, "answer"),))
    assert await listening(listener)
    assert listener.watching.media_id == f"{placed.call_id}.a0t0.b"  # the customer's leg
    placed.cancel()  # hangs the connected call up on both sides
    assert await ended(listener) is ListenEnd.call_ended


async def test_a_supervisors_phone_without_srtp_listens_over_rtp(
    pbx: Pbx, phones: tuple[Phone, Phone], boss: Phone
) -> None:
    """The supervisor's phone over TLS is offered SRTP; it answers 488 and is rung again
    with plain RTP (``RingTarget.plain``), and listens."""
    caller, callee = phones
    call_id, leg = await answered_call(pbx, caller, callee)
    secure = RingTarget(boss.uri("plain"), boss.flow, secure_media=True, plain_retry=True)
    listener = await pbx.b2bua.listen(ACCOUNT, call_id, (secure,))
    assert await listening(listener)
    assert listener.winner is not None and listener.winner.leg_id.endswith("p")
    hang_up(caller, leg)
    assert await ended(listener) is ListenEnd.call_ended
