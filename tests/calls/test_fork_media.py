"""A fork's media pair (waves.start_fork, early.caller_side; originate.py for calls the PBX
places): the target's leg is opened with the fork, the caller's side of the pair only when the
caller needs it. Forks that are refused, cancelled or outlived hold one leg each, not two; a
caller side that cannot be opened when a fork answers fails that fork, and the scheme goes on
(a placed call, whose agent answered, fails)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx, running
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.calls.test_early import progress_of
from tests.calls.test_originate import customer, ended, outcome, ring, spec, until
from zvonar.calls.events import CallAnswered, Disposition, LegEnded, LegEndReason
from zvonar.calls.origination import OriginationOutcome
from zvonar.calls.plan import Plan, Wave
from zvonar.media.engine import AddressFamily, LegEndpoint, MediaEngineError
from zvonar.media.io import EmbeddedMediaEngine


def legs(pbx: Pbx) -> set[str]:
    engine = pbx.b2bua.engine
    assert isinstance(engine, EmbeddedMediaEngine)
    return set(engine._legs)


async def test_ringing_forks_hold_only_their_target_legs(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    wave = Wave(tuple(target(callee, "ring") for _ in range(3)), 10)
    pbx.resolver.plans["700"] = Plan(ACCOUNT, (wave,))
    leg = dial(caller, pbx, "700")
    await progress_of(leg, 180)
    call_id = pbx.events()[0].call_id
    assert legs(pbx) == {f"{call_id}.w0t{i}" for i in range(3)}  # no ".c" caller sides
    hang_up(caller, leg)
    assert await final_status(leg) == 487
    await pbx.wait_ended()
    await asyncio.sleep(0.05)
    assert legs(pbx) == set()


async def test_the_winner_alone_opens_a_caller_side(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    wave = Wave((target(callee, "busy"), target(callee, "ring"), target(callee, "answer")), 10)
    pbx.resolver.plans["701"] = Plan(ACCOUNT, (wave,))
    leg = dial(caller, pbx, "701")
    assert await final_status(leg) == 200
    call_id = pbx.events()[0].call_id
    winner = f"{call_id}.w0t2"
    await asyncio.sleep(0.05)  # the ringing fork's CANCEL and release
    assert legs(pbx) == {winner, f"{winner}.c"}
    call = pbx.b2bua.calls[call_id]
    assert call.caller.media_id == f"{winner}.c"
    assert call.winner is not None and call.winner.caller_endpoint == call.caller.endpoint
    opened = [f.leg_id for f in call.forks.values() if f.caller_endpoint is not None]
    assert opened == [winner]  # the busy and the cancelled fork never had one
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends == {f"{call_id}.w0t0": LegEndReason.busy, f"{call_id}.w0t1": LegEndReason.cancelled}
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    await asyncio.sleep(0.05)
    assert legs(pbx) == set()


class _NoCallerSide(EmbeddedMediaEngine):
    """Refuses the first caller-side leg asked of it (a placed call's: the customer's), as
    an engine out of descriptors; with ``refused`` not empty, every one."""

    refused: list[str]

    async def allocate(
        self, call_id: str, leg_id: str, *, family: AddressFamily = AddressFamily.IP4
    ) -> LegEndpoint:
        if leg_id.endswith((".c", ".b")) and (not self.refused or self.refused[0] == "taken"):
            self.refused.append(leg_id)
            raise MediaEngineError("cannot open media sockets: [Errno 24] Too many open files")
        return await super().allocate(call_id, leg_id, family=family)


@pytest.fixture
async def no_caller_side() -> AsyncIterator[Pbx]:
    engine = _NoCallerSide(media_timeout=0, host6=None)
    engine.refused = []
    async with running(engine) as rig:
        yield rig


async def test_a_winner_without_caller_side_fails_and_the_scheme_goes_on(
    no_caller_side: Pbx, phones: tuple[Phone, Phone]
) -> None:
    pbx, (caller, callee) = no_caller_side, phones
    waves = (Wave((target(callee, "answer"),), 5), Wave((target(callee, "answer"),), 5))
    pbx.resolver.plans["702"] = Plan(ACCOUNT, waves)
    leg = dial(caller, pbx, "702")
    assert await final_status(leg) == 200  # the second wave's phone
    call_id = pbx.events()[0].call_id
    first, second = f"{call_id}.w0t0", f"{call_id}.w1t0"
    assert pbx.b2bua.engine.refused == [f"{first}.c"]  # type: ignore[attr-defined]
    ends = {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}
    assert ends == {first: LegEndReason.failed}
    assert [e.leg_id for e in pbx.bus.of_type(CallAnswered)] == [second]
    await asyncio.sleep(0.05)
    assert callee.app.calls_answered == 2
    assert callee.app.calls_ended == 1  # the first phone, which answered: we sent it a BYE
    assert legs(pbx) == {second, f"{second}.c"}
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    await asyncio.sleep(0.05)
    assert legs(pbx) == set()


async def test_a_placed_call_opens_the_customers_leg_once_an_agent_answers(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    agents, customers = phones
    waves = (
        Wave((ring(agents, "ring"), ring(agents, "ring")), 0.5),
        Wave((ring(agents, "busy"), ring(agents, "answer")), 5),
    )
    call = await pbx.b2bua.originate(spec(waves, customer(customers, "ring")))
    first = {f"{call.call_id}.a0t0", f"{call.call_id}.a0t1"}
    await until(lambda: legs(pbx) == first)  # ringing agents: no leg for the customer yet
    agent = f"{call.call_id}.a1t1"
    await until(lambda: legs(pbx) == {agent, f"{agent}.b"})
    assert call.customer is not None and call.customer.media_id == f"{agent}.b"
    call.cancel()
    await ended(call)
    await asyncio.sleep(0.05)
    assert legs(pbx) == set()


async def test_a_placed_call_without_media_for_the_customer_fails(
    no_caller_side: Pbx, phones: tuple[Phone, Phone]
) -> None:
    pbx, (agents, customers) = no_caller_side, phones
    no_caller_side.b2bua.engine.refused = ["taken"]  # type: ignore[attr-defined]
    call = await pbx.b2bua.originate(
        spec((Wave((ring(agents, "answer"),), 5),), customer(customers, "answer"))
    )
    assert await outcome(call) is OriginationOutcome.failed
    end = await ended(call)
    assert end.disposition is Disposition.failed
    await until(lambda: agents.app.calls_ended == 1)  # the agent who answered got our BYE
    assert customers.app.calls_answered == 0  # never rung
    await asyncio.sleep(0.05)
    assert legs(pbx) == set()
