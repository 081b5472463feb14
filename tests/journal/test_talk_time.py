"""The caller's talk time spans every person they were handed to: a blind transfer, a pull
to another device and a parked call taken back all keep the caller talking until the last
answered leg ends; what comes after the last person left (a post-call rating, a parked
caller nobody took back) is not talk."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from zvonar.calls.events import (
    CallTransferred,
    Disposition,
    HangupSide,
    LegEndReason,
    Target,
    TargetKind,
    TransferKind,
)
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal.models import CallRecord
from zvonar.journal.service import JournalService


async def _row(c: Container, call_id: str) -> CallRecord:
    await c.journal.flush()
    async with c.db.read() as s:
        found = await s.scalar(select(CallRecord).where(CallRecord.call_id == call_id))
    assert found is not None
    return found


def _moved(call: CallScript, leg: str, t: float, to: Target) -> CallTransferred:
    return CallTransferred(
        account_id=call.account_id,
        call_id=call.call_id,
        from_leg_id=leg,
        to=to,
        kind=TransferKind.blind,
        at=call.at(t),
    )


async def test_a_blind_transfer_keeps_the_caller_talking_until_the_call_ends(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    # The audit's call: 101 answers, REFERs to 102 after 1.5 s, 102 talks, the carrier hangs up.
    e101, e102 = uuid.uuid4(), uuid.uuid4()
    call = CallScript(tenant_a.account_id)
    await publish(
        bus,
        call.started(),
        call.ringing("a", 1, e101),
        call.answered("a", 2, by=e101),
        _moved(call, "a", 3.5, Target(TargetKind.employee, "102", e102)),
        call.leg_ended("a", 3.5, LegEndReason.completed),
        call.ringing("b", 3.5, e102),
        call.answered("b", 5, by=e102),
        call.ended(10, Disposition.answered, HangupSide.caller),
    )
    done = await _row(container, call.call_id)
    assert done.answered_by == e101 and done.answered_leg_id == "a"
    # The ringing of 102 in between counts too: the caller was on the call, not waiting for it.
    assert (done.wait_seconds, done.talk_seconds) == (2.0, 8.0)


async def test_a_transfer_nobody_takes_ends_the_talk_with_the_agents_leg(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    await publish(
        bus,
        call.started(),
        call.ringing("a", 1),
        call.answered("a", 2),
        call.leg_ended("a", 12, LegEndReason.completed),
        call.ringing("b", 12),
        call.leg_ended("b", 42, LegEndReason.no_answer),
        call.ended(42, Disposition.answered, HangupSide.system),
    )
    done = await _row(container, call.call_id)
    assert (done.wait_seconds, done.talk_seconds) == (2.0, 10.0)


async def test_a_pull_and_a_parked_call_taken_back_count_whole(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    anna, boris = uuid.uuid4(), uuid.uuid4()
    pulled, parked = CallScript(tenant_a.account_id), CallScript(tenant_a.account_id)
    await publish(
        bus,
        # Anna answers on her desk phone, then takes the call to her mobile app (*11).
        pulled.started(),
        pulled.ringing("desk", 1, anna),
        pulled.answered("desk", 3, by=anna),
        pulled.ringing("pull1", 20, anna),
        pulled.leg_ended("desk", 20, LegEndReason.completed),
        pulled.answered("pull1", 20, by=anna),
        pulled.ended(50, Disposition.answered, HangupSide.callee),
        # Anna parks the caller at 10 s; Boris takes the slot at 25 s and hangs up at 40 s.
        parked.started(),
        parked.ringing("a", 1, anna),
        parked.answered("a", 2, by=anna),
        _moved(parked, "a", 10, Target(TargetKind.park, "*51")),
        parked.leg_ended("a", 10, LegEndReason.completed),
        parked.ringing("unpark1", 25, boris),
        parked.answered("unpark1", 25, by=boris),
        parked.leg_ended("unpark1", 40, LegEndReason.completed),
        parked.ended(40, Disposition.answered, HangupSide.callee),
    )
    assert (await _row(container, pulled.call_id)).talk_seconds == 47.0
    assert (await _row(container, parked.call_id)).talk_seconds == 38.0


async def test_a_parked_caller_nobody_takes_back_talked_until_the_park(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    await publish(
        bus,
        call.started(),
        call.ringing("a", 1),
        call.answered("a", 2),
        _moved(call, "a", 10, Target(TargetKind.park, "*52")),
        call.leg_ended("a", 10, LegEndReason.completed),
        call.ended(70, Disposition.answered, HangupSide.caller),  # left while on hold
    )
    done = await _row(container, call.call_id)
    assert (done.wait_seconds, done.talk_seconds) == (2.0, 8.0)
