"""Early media through the B2BUA over loopback (calls/early.py): on an outbound call a fork's
183 with SDP gives the caller a 183 with *our* SDP, the 2xx repeats it whoever answers, a
caller who cancels meanwhile leaves no media behind; an inbound call, or an engine that cannot
bridge any two legs, keeps the plain 180. The SIPp e2e tests (tests/e2e/test_early_media.py)
check what the caller hears."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx, running
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from zvonar.calls.events import (
    CallRinging,
    Direction,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
)
from zvonar.calls.plan import Plan, Wave
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.sip.io.testserver import CallLeg

OUT = Direction.outbound  # early media is relayed on outbound calls only


async def progress_of(leg: CallLeg, status: int, within: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        for got, body in leg.progress:
            if got == status:
                return body
        if loop.time() > deadline:
            raise AssertionError(f"no {status} within {within} s: {leg.progress}")
        await asyncio.sleep(0.01)


async def test_a_183_reaches_the_caller_with_our_sdp_and_a_cancel_frees_everything(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    pbx.resolver.plans["600"] = Plan(
        ACCOUNT, (Wave((target(callee, "early"),), 10),), direction=OUT
    )
    leg = dial(caller, pbx, "600")
    early = await progress_of(leg, 183)
    assert b"o=zvonar " in early and b"m=audio " in early  # ours, not the callee's echo
    assert [status for status, _ in leg.progress] == [183]  # no 180 besides
    call = next(iter(pbx.b2bua.calls.values()))
    assert call.early_media is not None and call.early_from == f"{call.call_id}.w0t0"
    engine = pbx.b2bua.engine
    assert isinstance(engine, EmbeddedMediaEngine) and engine.leg_count == 2
    hang_up(caller, leg)  # CANCEL
    assert await final_status(leg) == 487
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.abandoned and ended.hangup is HangupSide.caller
    assert len(pbx.bus.of_type(CallRinging)) == 1
    await asyncio.sleep(0.05)
    assert engine.leg_count == 0 and not pbx.b2bua.calls


async def test_the_2xx_repeats_the_183_when_a_later_wave_answers(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    waves = (Wave((target(callee, "early"),), 0.3), Wave((target(callee, "answer"),), 5))
    pbx.resolver.plans["601"] = Plan(ACCOUNT, waves, direction=OUT)
    leg = dial(caller, pbx, "601")
    early = await progress_of(leg, 183)
    assert await final_status(leg) == 200
    assert leg.remote_sdp == early  # the same exact answer (RFC 3261 §13.2.1)
    call_id = pbx.events()[0].call_id
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends == {f"{call_id}.w0t0": LegEndReason.no_answer}
    call = pbx.b2bua.calls[call_id]
    assert call.winner is not None and call.winner.caller_media_id == ""
    assert call.caller.media_id == call.local_media  # the early leg, ours for the call
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    await asyncio.sleep(0.05)
    assert pbx.b2bua.engine.leg_count == 0  # type: ignore[attr-defined]


class _PairsOnly(EmbeddedMediaEngine):
    bridges_any_legs = False  # as rtpengine


@pytest.fixture
async def pairs_only() -> AsyncIterator[Pbx]:
    async with running(_PairsOnly(media_timeout=0, host6=None)) as rig:
        yield rig


async def test_an_engine_that_bridges_only_pairs_keeps_the_plain_180(
    pairs_only: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    pairs_only.resolver.plans["602"] = Plan(
        ACCOUNT, (Wave((target(callee, "early"),), 10),), direction=OUT
    )
    leg = dial(caller, pairs_only, "602")
    assert await progress_of(leg, 180) == b""
    await asyncio.sleep(0.1)
    assert [status for status, _ in leg.progress] == [180]
    hang_up(caller, leg)
    assert await final_status(leg) == 487
    await pairs_only.wait_ended()


async def test_an_inbound_call_keeps_the_plain_180(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones  # what a forwarded number's network plays stays out
    pbx.resolver.plans["603"] = Plan(ACCOUNT, (Wave((target(callee, "early"),), 10),))
    leg = dial(caller, pbx, "603")
    assert await progress_of(leg, 180) == b""
    await asyncio.sleep(0.1)
    assert [status for status, _ in leg.progress] == [180]
    hang_up(caller, leg)
    assert await final_status(leg) == 487
    await pbx.wait_ended()
