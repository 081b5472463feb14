"""Calls the B2BUA places itself (originate.py) over loopback UDP: side A (EchoPbx users
"answer", "busy", "ring") first, then side B, with the call events the journal needs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx, start_pbx
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRecorded,
    CallRinging,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
    Target,
    TargetKind,
)
from zvonar.calls.originate import OriginatedCall
from zvonar.calls.origination import Origination, OriginationOutcome
from zvonar.calls.plan import RingTarget, Wave
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.sip.ua import Flow

AGENT = Target(TargetKind.employee, "Alice")


@pytest.fixture
async def rec_pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)

    def where(_account: object, call_id: str, _at: datetime) -> Path:
        return tmp_path / "rec" / f"{call_id}.wav"

    rig = await start_pbx(engine, recording_path=where)
    yield rig
    await rig.close()
    await engine.close()


def _is_wav(path: str) -> bool:
    return Path(path).read_bytes().startswith(b"RIFF")


def ring(phone: Phone, user: str, target: Target = AGENT) -> RingTarget:
    return RingTarget(phone.uri(user), phone.flow, target)


def customer(phone: Phone, user: str) -> RingTarget:
    return RingTarget(
        phone.uri(user),
        phone.flow,
        Target(TargetKind.external, "+79161234567"),
        from_user="+74951112233",
    )


def spec(first: tuple[Wave, ...], then: RingTarget, **kw: object) -> Origination:
    return Origination(
        ACCOUNT,
        first,
        then,
        caller="+79161234567",
        dialed="+74951112233",
        **kw,  # type: ignore[arg-type]
    )


async def outcome(call: OriginatedCall, within: float = 10.0) -> OriginationOutcome:
    return await asyncio.wait_for(asyncio.shield(call.result), within)


async def ended(call: OriginatedCall, within: float = 10.0) -> CallEnded:
    await asyncio.wait_for(asyncio.shield(call.ended), within)
    (end,) = [e for e in call.host.bus.events if isinstance(e, CallEnded)]  # type: ignore[attr-defined]
    return end


async def until(check: object, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def hang_up_answered(phone: Phone) -> None:
    """BYE from the phone's (only) answered leg."""
    (leg,) = [x for x in phone.app._legs.values() if x.state != "ended"]
    leg.dialog = next(d for d in phone.runner.ua.dialogs if d.id.local_tag == leg.local_tag)
    leg.state = "confirmed"
    phone.app.hangup(leg, phone.runner.loop.time())
    phone.runner.pump()


async def test_agent_then_customer_connected_and_customer_hangs_up(
    rec_pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    agents, customers = phones
    call = await rec_pbx.b2bua.originate(
        spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "answer"), record=True)
    )
    assert await outcome(call) is OriginationOutcome.connected
    assert agents.app.calls_answered == 1 and customers.app.calls_answered == 1
    # B saw the account's number as the caller; A saw the customer's.
    (b_dialog,) = customers.runner.ua.dialogs
    assert b_dialog.remote_uri.uri.user == "+74951112233"  # type: ignore[union-attr]
    (a_dialog,) = agents.runner.ua.dialogs
    assert a_dialog.remote_uri.uri.user == "+79161234567"  # type: ignore[union-attr]
    hang_up_answered(customers)
    end = await ended(call)
    assert end.disposition is Disposition.answered and end.hangup is HangupSide.caller
    await until(lambda: agents.app.calls_ended == 1)  # our BYE reached the agent
    events = rec_pbx.events(call.call_id)
    started = events[0]
    assert isinstance(started, CallStarted) and started.direction is Direction.callback
    assert started.caller == "+79161234567" and started.dialed == "+74951112233"
    answered = [e.leg_id for e in events if isinstance(e, CallAnswered)]
    assert answered == [f"{call.call_id}.b", f"{call.call_id}.a0t0"]
    ends = {e.leg_id: e.reason for e in events if isinstance(e, LegEnded)}
    assert ends == {
        f"{call.call_id}.a0t0": LegEndReason.completed,
        f"{call.call_id}.b": LegEndReason.completed,
    }
    (recorded,) = [e for e in events if isinstance(e, CallRecorded)]
    assert _is_wav(recorded.path)
    assert events[-1].event_type == "CallEnded"
    assert not rec_pbx.b2bua.originated and not rec_pbx.b2bua._by_media


async def test_agent_hangs_up_a_connected_call(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    agents, customers = phones
    call = await pbx.b2bua.originate(
        spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "answer"))
    )
    assert await outcome(call) is OriginationOutcome.connected
    hang_up_answered(agents)
    end = await ended(call)
    assert end.hangup is HangupSide.callee and end.disposition is Disposition.answered
    await until(lambda: customers.app.calls_ended == 1)


async def test_second_wave_answers_after_the_first_rings_out(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    agents, customers = phones
    waves = (Wave((ring(agents, "ring"),), 0.3), Wave((ring(agents, "answer"),), 5))
    call = await pbx.b2bua.originate(spec(waves, customer(customers, "answer")))
    assert await outcome(call) is OriginationOutcome.connected
    ringing = [e.leg_id for e in pbx.events(call.call_id) if isinstance(e, CallRinging)]
    # The customer and the second agent answer with no 18x: their legs ring at the connect.
    ringing_ids = [f"{call.call_id}.a0t0", f"{call.call_id}.b", f"{call.call_id}.a1t0"]
    assert ringing == ringing_ids
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends == {f"{call.call_id}.a0t0": LegEndReason.no_answer}
    call.cancel()  # a connected call: both sides are hung up
    end = await ended(call)
    assert end.disposition is Disposition.answered and end.hangup is HangupSide.system
    await until(lambda: customers.app.calls_ended == 1)


async def test_nobody_on_side_a_answers(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    agents, customers = phones
    waves = (Wave((ring(agents, "busy"), ring(agents, "ring")), 0.3),)
    call = await pbx.b2bua.originate(spec(waves, customer(customers, "answer")))
    assert await outcome(call) is OriginationOutcome.first_no_answer
    end = await ended(call)
    assert end.disposition is Disposition.missed
    # The busy agent refused at once (486, no 18x): its leg still has its journal row.
    ringing = [e.leg_id for e in pbx.events(call.call_id) if isinstance(e, CallRinging)]
    assert f"{call.call_id}.a0t0" in ringing
    assert customers.app.calls_answered == 0  # the customer was never called
    await until(lambda: agents.app.calls_ended == 1)  # the ringing one got our CANCEL


async def test_customer_busy(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    agents, customers = phones
    call = await pbx.b2bua.originate(
        spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "busy"))
    )
    assert await outcome(call) is OriginationOutcome.then_busy
    end = await ended(call)
    assert end.disposition is Disposition.busy
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends[f"{call.call_id}.b"] is LegEndReason.busy
    assert ends[f"{call.call_id}.a0t0"] is LegEndReason.completed
    assert not pbx.bus.of_type(CallAnswered)  # the journal must not call it answered
    await until(lambda: agents.app.calls_ended == 1)  # the agent got our BYE


async def test_customer_does_not_answer(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    agents, customers = phones
    call = await pbx.b2bua.originate(
        spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "ring"), then_timeout=0.4)
    )
    assert await outcome(call) is OriginationOutcome.then_no_answer
    end = await ended(call)
    assert end.disposition is Disposition.missed
    await until(lambda: customers.app.calls_ended == 1)  # CANCELled: 487
    await until(lambda: agents.app.calls_ended == 1)


async def test_cancel_while_the_customer_rings(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    agents, customers = phones
    call = await pbx.b2bua.originate(
        spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "ring"))
    )
    await until(lambda: len(pbx.bus.of_type(CallRinging)) == 1 and call.customer is not None)
    call.cancel()
    assert await outcome(call) is OriginationOutcome.cancelled
    end = await ended(call)
    assert end.hangup is HangupSide.system
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends[f"{call.call_id}.b"] is LegEndReason.cancelled
    await until(lambda: customers.app.calls_ended == 1 and agents.app.calls_ended == 1)


async def test_unreachable_agents_fail(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    _, customers = phones
    bad = RingTarget("not a sip uri", customers.flow, AGENT)
    call = await pbx.b2bua.originate(spec((Wave((bad,), 5),), customer(customers, "answer")))
    assert await outcome(call) is OriginationOutcome.failed
    end = await ended(call)
    assert end.disposition is Disposition.failed


async def test_close_ends_originated_calls(pbx: Pbx) -> None:
    agents, customers = await make_phone(), await make_phone()
    try:
        call = await pbx.b2bua.originate(
            spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "answer"))
        )
        assert await outcome(call) is OriginationOutcome.connected
        await pbx.b2bua.close()
        end = await ended(call)
        assert end.disposition is Disposition.answered and end.hangup is HangupSide.system
        await until(lambda: agents.app.calls_ended == 1 and customers.app.calls_ended == 1)
        assert not pbx.b2bua.originated
    finally:
        await agents.runner.close()
        await customers.runner.close()


def test_an_origination_needs_side_a() -> None:
    then = RingTarget("sip:x@127.0.0.1", Flow("UDP", "127.0.0.1", 5060))
    with pytest.raises(ValueError):
        Origination(ACCOUNT, (), then)
    with pytest.raises(ValueError):
        Origination(ACCOUNT, (Wave((then,), 5),), then, then_timeout=0)


async def test_an_agents_phone_without_srtp_is_rung_again_with_rtp(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """Side A's phone over TLS is offered SRTP; it answers 488 and is rung again with plain
    RTP in the same wave (``RingTarget.plain``); the refused attempt keeps its journal leg."""
    agents, customers = phones
    secure = RingTarget(
        agents.uri("plain"), agents.flow, AGENT, secure_media=True, plain_retry=True
    )
    call = await pbx.b2bua.originate(spec((Wave((secure,), 5),), customer(customers, "answer")))
    assert await outcome(call) is OriginationOutcome.connected
    hang_up_answered(customers)
    await ended(call)
    ends = {e.leg_id: e.reason for e in pbx.events(call.call_id) if isinstance(e, LegEnded)}
    assert ends == {
        f"{call.call_id}.a0t0": LegEndReason.failed,
        f"{call.call_id}.a0t0p": LegEndReason.completed,
        f"{call.call_id}.b": LegEndReason.completed,
    }
