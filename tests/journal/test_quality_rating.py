"""The journal keeps what a call sounded like (per leg and for the caller, with what the
peer's RTCP reports said of our RTP), whether its media was encrypted (SRTP), and its rating;
a post-call rating does not count as talk time."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from zvonar.calls.events import (
    CallEnded,
    CallRated,
    Disposition,
    HangupSide,
    InvalidCallEvent,
    LegEnded,
    LegEndReason,
)
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.journal.schemas import CallDetailOut, CallOut, LegOut
from zvonar.journal.service import JournalService


async def test_rated_call_keeps_quality_and_talk_time(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    anna = uuid.uuid4()
    call = CallScript(tenant_a.account_id)
    at = call.start
    await publish(
        bus,
        call.started(),
        call.ringing("a", 1, anna),
        call.answered("a", 5, by=anna),
        # The agent hangs up at 65 s; the caller then rates the call until 75 s.
        LegEnded(
            account_id=tenant_a.account_id,
            call_id=call.call_id,
            leg_id="a",
            reason=LegEndReason.completed,
            at=at + timedelta(seconds=65),
            loss=0.012,
            jitter_ms=3.5,
            mos=4.21,
            srtp=True,  # a phone over TLS
            peer_loss=0.0312,
            peer_jitter_ms=6.25,
            rtt_ms=48.5,
        ),
        CallRated(
            account_id=tenant_a.account_id,
            call_id=call.call_id,
            score=4,
            at=at + timedelta(seconds=72),
        ),
        CallEnded(
            account_id=tenant_a.account_id,
            call_id=call.call_id,
            disposition=Disposition.answered,
            ended_at=at + timedelta(seconds=75),
            hangup=HangupSide.callee,
            loss=0.0,
            jitter_ms=1.25,
            mos=4.4,
            srtp=False,  # the carrier
            peer_loss=0.0,
            peer_jitter_ms=1.5,
            rtt_ms=120.75,
        ),
    )
    await container.journal.flush()
    async with container.db.read() as s:
        row = await s.scalar(select(CallRecord).where(CallRecord.call_id == call.call_id))
        assert row is not None
        leg = await s.scalar(select(CallLeg).where(CallLeg.call_pk == row.id))
    assert row.rating == 4
    assert (row.loss, row.jitter_ms, row.mos) == (0.0, 1.25, 4.4)
    assert (row.wait_seconds, row.talk_seconds) == (5.0, 60.0)  # not the 10 s of rating
    assert leg is not None and (leg.loss, leg.jitter_ms, leg.mos) == (0.012, 3.5, 4.21)
    assert row.srtp is False and leg.srtp is True
    assert (row.peer_loss, row.peer_jitter_ms, row.rtt_ms) == (0.0, 1.5, 120.75)
    assert (leg.peer_loss, leg.peer_jitter_ms, leg.rtt_ms) == (0.0312, 6.25, 48.5)
    assert CallOut.of(row).srtp is False and LegOut.of(leg).srtp is True  # what the API says
    detail = CallDetailOut.detail(row, (leg,)).model_dump(mode="json")
    assert (detail["peer_loss"], detail["peer_jitter_ms"], detail["rtt_ms"]) == (0.0, 1.5, 120.75)
    (out,) = detail["legs"]
    assert (out["peer_loss"], out["peer_jitter_ms"], out["rtt_ms"]) == (0.0312, 6.25, 48.5)


async def test_leg_quality_lands_when_the_leg_was_written_in_an_earlier_batch(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    anna = uuid.uuid4()
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started(), call.ringing("a", 1, anna), call.answered("a", 5, by=anna))
    await container.journal.flush()  # the leg is in the table now: the end is an UPDATE
    await publish(
        bus,
        call.leg_ended(
            "a",
            30,
            LegEndReason.completed,
            loss=0.05,
            jitter_ms=12.5,
            mos=3.9,
            srtp=True,
            peer_loss=0.125,
            peer_jitter_ms=20.0,
            rtt_ms=310.25,
        ),
        call.ended(  # the call's row is in the table too: its quality is an UPDATE as well
            31,
            Disposition.answered,
            HangupSide.caller,
            loss=0.01,
            jitter_ms=2.0,
            mos=4.1,
            srtp=False,
            peer_loss=0.0625,
            peer_jitter_ms=9.5,
            rtt_ms=300.0,
        ),
    )
    await container.journal.flush()
    async with container.db.read() as s:
        row = await s.scalar(select(CallRecord).where(CallRecord.call_id == call.call_id))
        assert row is not None
        leg = await s.scalar(select(CallLeg).where(CallLeg.call_pk == row.id))
    assert leg is not None and leg.ended_at is not None
    assert (leg.loss, leg.jitter_ms, leg.mos, leg.srtp) == (0.05, 12.5, 3.9, True)
    assert (leg.peer_loss, leg.peer_jitter_ms, leg.rtt_ms) == (0.125, 20.0, 310.25)
    assert (row.loss, row.jitter_ms, row.mos, row.srtp) == (0.01, 2.0, 4.1, False)
    assert (row.peer_loss, row.peer_jitter_ms, row.rtt_ms) == (0.0625, 9.5, 300.0)


async def test_a_peer_that_sent_no_rtcp_leaves_its_figures_null(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    anna = uuid.uuid4()
    call = CallScript(tenant_a.account_id)
    await publish(
        bus,
        call.started(),
        call.ringing("a", 1, anna),
        call.answered("a", 5, by=anna),
        call.leg_ended(
            "a",
            30,
            LegEndReason.completed,
            loss=0.0,
            jitter_ms=1.0,
            mos=4.4,
            srtp=False,
        ),
        call.ended(31, Disposition.answered),
    )
    await container.journal.flush()
    async with container.db.read() as s:
        row = await s.scalar(select(CallRecord).where(CallRecord.call_id == call.call_id))
        assert row is not None
        leg = await s.scalar(select(CallLeg).where(CallLeg.call_pk == row.id))
    assert leg is not None and leg.mos == 4.4
    assert (leg.peer_loss, leg.peer_jitter_ms, leg.rtt_ms) == (None, None, None)
    assert (row.peer_loss, row.peer_jitter_ms, row.rtt_ms) == (None, None, None)
    detail = CallDetailOut.detail(row, (leg,)).model_dump(mode="json")
    assert detail["rtt_ms"] is None and detail["legs"][0]["peer_loss"] is None


@pytest.mark.parametrize("score", [0, 6, True, 4.5])
def test_a_rating_is_one_to_five(score: object) -> None:
    with pytest.raises(InvalidCallEvent):
        CallRated(account_id=uuid.uuid4(), call_id="c1", score=score, at=CallScript.start)  # type: ignore[arg-type]


_INVALID = [
    ("loss", 1.5),
    ("mos", 0.5),
    ("jitter_ms", -1.0),
    ("srtp", 1),
    ("srtp", "yes"),
    ("peer_loss", 1.5),
    ("peer_loss", -0.1),
    ("peer_loss", math.nan),
    ("peer_jitter_ms", -1.0),
    ("peer_jitter_ms", math.inf),
    ("peer_jitter_ms", "3"),
    ("rtt_ms", -0.5),
    ("rtt_ms", math.inf),
    ("rtt_ms", True),
]


@pytest.mark.parametrize(("field", "value"), _INVALID)
def test_quality_figures_are_checked(field: str, value: object) -> None:
    """Out-of-range or non-finite figures, and an ``srtp`` flag that is not a boolean."""
    kwargs = {field: value}
    with pytest.raises(InvalidCallEvent) as refused:
        LegEnded(
            account_id=uuid.uuid4(),
            call_id="c1",
            leg_id="a",
            reason=LegEndReason.completed,
            at=CallScript.start,
            **kwargs,  # type: ignore[arg-type]
        )
    assert refused.value.details["field"] == field
    with pytest.raises(InvalidCallEvent) as refused:
        CallEnded(
            account_id=uuid.uuid4(),
            call_id="c1",
            disposition=Disposition.answered,
            ended_at=CallScript.start,
            hangup=HangupSide.caller,
            **kwargs,  # type: ignore[arg-type]
        )
    assert refused.value.details["field"] == field


def test_the_peers_figures_at_their_bounds_are_accepted() -> None:
    ended = CallEnded(
        account_id=uuid.uuid4(),
        call_id="c1",
        disposition=Disposition.answered,
        ended_at=CallScript.start,
        hangup=HangupSide.caller,
        peer_loss=1.0,
        peer_jitter_ms=0.0,
        rtt_ms=0,
    )
    assert (ended.peer_loss, ended.peer_jitter_ms, ended.rtt_ms) == (1.0, 0.0, 0)
