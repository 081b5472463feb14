"""The journal written from call events: rows from the first INVITE, legs, timings,
dispositions, idempotence, robustness, crash recovery and recording retention."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant
from tests.journal.conftest import CallScript, publish
from zvonar.calls.events import (
    CallRecorded,
    CallRinging,
    CallTransferred,
    Disposition,
    HangupSide,
    LegEndReason,
    Target,
    TargetKind,
    TransferKind,
    VoicemailLeft,
)
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.journal import rules
from zvonar.journal.models import CallLeg, CallRecord, CallStatus
from zvonar.journal.service import JournalService


async def row(c: Container, call_id: str) -> CallRecord | None:
    await c.journal.flush()  # the journal writes behind: wait for what was published
    async with c.db.read() as s:
        return await s.scalar(select(CallRecord).where(CallRecord.call_id == call_id))


async def legs(c: Container, call: CallRecord) -> dict[str, CallLeg]:
    await c.journal.flush()
    async with c.db.read() as s:
        found = await s.scalars(select(CallLeg).where(CallLeg.call_pk == call.id))
        return {leg.leg_id: leg for leg in found}


async def count(c: Container, model: type) -> int:
    await c.journal.flush()
    async with c.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_answered_call_end_to_end(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    anna, boris = uuid.uuid4(), uuid.uuid4()
    call = CallScript(tenant_a.account_id)
    await publish(bus, call.started())
    opened = await row(container, call.call_id)
    assert opened is not None and opened.status is CallStatus.open
    assert opened.disposition is None and opened.tracking == {"utm_source": "yandex"}

    rec = journal.recording_path_for(tenant_a.account_id, call.call_id, call.start)
    await publish(
        bus,
        call.ringing("a", 1, anna),
        call.ringing("b", 1, boris),
        call.answered("a", 8.5, by=anna),
        call.leg_ended("b", 8.5, LegEndReason.cancelled),
        call.ended(68.5, Disposition.answered, HangupSide.callee),
        CallRecorded(
            account_id=tenant_a.account_id, call_id=call.call_id, path=str(rec), duration=60
        ),
    )
    done = await row(container, call.call_id)
    assert done is not None
    assert done.status is CallStatus.closed and not done.recovered
    assert done.disposition is Disposition.answered
    assert (done.wait_seconds, done.talk_seconds) == (8.5, 60.0)
    assert done.answered_by == anna and done.answered_leg_id == "a"
    assert done.scheme_path == ["working hours", "ring sales"]
    assert done.hangup is HangupSide.callee
    assert done.recording_path == (f"recordings/{tenant_a.account_id}/2024/05/{call.call_id}.wav")
    by_leg = await legs(container, done)
    assert by_leg["a"].answered_at == call.at(8.5)
    # The answered leg was still up at the end: closed as completed at the call's end.
    assert (by_leg["a"].end_reason, by_leg["a"].ended_at) == (LegEndReason.completed, call.at(68.5))
    assert (by_leg["b"].end_reason, by_leg["b"].ended_at) == (LegEndReason.cancelled, call.at(8.5))


async def test_missed_call_counts_the_wait_and_cancels_ringing_legs(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    await publish(
        bus,
        call.started(),
        call.ringing("a", 0.5),
        call.leg_ended("a", 20.5, LegEndReason.no_answer),
        call.ringing("b", 20.5),
        call.ended(30, Disposition.missed, HangupSide.system),
    )
    done = await row(container, call.call_id)
    assert done is not None and done.disposition is Disposition.missed
    assert (done.wait_seconds, done.talk_seconds) == (30.0, 0.0)
    by_leg = await legs(container, done)
    assert by_leg["a"].end_reason is LegEndReason.no_answer
    assert by_leg["b"].end_reason is LegEndReason.cancelled


async def test_evidence_overrides_the_reported_disposition(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    # A voicemail left before the end, and one that arrives after it.
    before, after = CallScript(tenant_a.account_id), CallScript(tenant_a.account_id)
    vm = journal.recording_path_for(tenant_a.account_id, "vm", before.start)
    for script, early in ((before, True), (after, False)):
        left = VoicemailLeft(
            account_id=tenant_a.account_id, call_id=script.call_id, path=str(vm), duration=7
        )
        end = script.ended(40, Disposition.missed)
        await publish(bus, script.started(), *((left, end) if early else (end, left)))
        done = await row(container, script.call_id)
        assert done is not None and done.disposition is Disposition.voicemail
        assert done.voicemail_seconds == 7
    # An answer whose CallEnded said "abandoned" is still an answered call.
    odd = CallScript(tenant_a.account_id)
    await publish(bus, odd.started(), odd.answered("x", 3), odd.ended(10, Disposition.abandoned))
    done = await row(container, odd.call_id)
    assert done is not None and done.disposition is Disposition.answered
    assert (done.wait_seconds, done.talk_seconds) == (3.0, 7.0)


async def test_duplicated_events_are_idempotent(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    call = CallScript(tenant_a.account_id)
    transfer = CallTransferred(
        account_id=tenant_a.account_id,
        call_id=call.call_id,
        from_leg_id="a",
        to=Target(TargetKind.group, "Support"),
        kind=TransferKind.blind,
        at=call.at(30),
    )
    events = [
        call.started(),
        call.ringing("a", 1),
        call.answered("a", 5),
        transfer,
        call.leg_ended("a", 30, LegEndReason.completed),
        call.ended(60, Disposition.answered),
    ]
    for ev in events:
        await publish(bus, ev, ev)
    # A late, different re-delivery of the end changes nothing either.
    await publish(bus, call.ended(99, Disposition.failed))
    assert await count(container, CallRecord) == 1
    assert await count(container, CallLeg) == 1
    done = await row(container, call.call_id)
    assert done is not None
    assert done.ended_at == call.at(60) and done.disposition is Disposition.answered
    assert len(done.transfers) == 1 and done.transfers[0]["to_display"] == "Support"


async def test_unknown_calls_and_accounts_create_nothing(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    ghost = CallScript(tenant_a.account_id)
    await publish(
        bus, ghost.ringing("a", 1), ghost.answered("a", 2), ghost.ended(5, Disposition.answered)
    )
    nowhere = CallScript(uuid.uuid4())  # an account that does not exist
    await publish(bus, nowhere.started(), nowhere.ended(5, Disposition.missed))
    assert await count(container, CallRecord) == 0
    assert await count(container, CallLeg) == 0


async def test_another_account_cannot_touch_a_call_with_the_same_id(
    container: Container,
    bus: RecordingBus,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    mine = CallScript(tenant_a.account_id, call_id="shared-id")
    theirs = CallScript(tenant_b.account_id, call_id="shared-id")
    await publish(
        bus, mine.started(), theirs.answered("x", 1), theirs.ended(2, Disposition.answered)
    )
    a_row = await row(container, "shared-id")
    assert a_row is not None and a_row.status is CallStatus.open and a_row.answered_at is None
    # The same call id is a separate call in the other account.
    await publish(bus, theirs.started())
    assert await count(container, CallRecord) == 2


async def test_files_outside_the_accounts_recordings_are_not_recorded(
    container: Container,
    bus: RecordingBus,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    call = CallScript(tenant_a.account_id)
    other = journal.recording_path_for(tenant_b.account_id, call.call_id, call.start)
    await publish(bus, call.started())
    for path in ("/etc/passwd", "../secret.wav", str(other)):
        await publish(
            bus,
            CallRecorded(
                account_id=tenant_a.account_id, call_id=call.call_id, path=path, duration=1
            ),
        )
    done = await row(container, call.call_id)
    assert done is not None and done.recording_path is None


async def test_recovery_closes_what_a_dead_process_left_open(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    talking, ringing, nothing, finished = (CallScript(tenant_a.account_id) for _ in range(4))
    await publish(
        bus,
        talking.started(),
        talking.ringing("a", 1),
        talking.answered("a", 4),
        talking.leg_ended("z", 50, LegEndReason.failed),  # unknown leg: still activity
        ringing.started(),
        ringing.ringing("a", 2),
        nothing.started(),
        finished.started(),
        finished.ended(10, Disposition.missed),
    )
    await journal.flush()  # what the writer had written within its interval before the kill
    # "The process was killed": a fresh service (as after a restart) recovers at start.
    fresh = JournalService(container.db, container.settings.data_dir)
    now = talking.at(3600)
    assert await fresh.recover_open_calls(now) == 3
    t = await row(container, talking.call_id)
    assert t is not None and t.recovered and t.status is CallStatus.closed
    assert t.disposition is Disposition.answered
    assert t.ended_at == talking.at(50)  # the last known activity, not "now"
    assert (t.wait_seconds, t.talk_seconds) == (4.0, 46.0)
    assert t.hangup is HangupSide.system
    assert (await legs(container, t))["a"].end_reason is LegEndReason.completed
    r = await row(container, ringing.call_id)
    assert r is not None and r.disposition is Disposition.abandoned and r.recovered
    n = await row(container, nothing.call_id)
    assert n is not None and n.disposition is Disposition.failed
    f = await row(container, finished.call_id)
    assert f is not None and not f.recovered and f.disposition is Disposition.missed
    assert await fresh.recover_open_calls(now) == 0


async def test_recovery_sweep_spares_calls_still_active(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    old, live = CallScript(tenant_a.account_id), CallScript(tenant_a.account_id)
    await publish(bus, old.started(), live.started(), live.answered("a", 600))
    swept = await journal.recover_open_calls(live.at(700), idle_for=timedelta(minutes=5))
    assert swept == 1
    still = await row(container, live.call_id)
    assert still is not None and still.status is CallStatus.open


@pytest.mark.parametrize("kind", ["recording", "voicemail"])
async def test_retention_deletes_old_files_and_keeps_the_rows(
    container: Container,
    bus: RecordingBus,
    journal: JournalService,
    tenant_a: Tenant,
    tenant_b: Tenant,
    kind: str,
) -> None:
    """Recordings and voicemail messages alike: older than the account keeps them, the file
    goes and the row stays, its path cleared and its length kept (so it reads as expired,
    not as never made)."""
    old = CallScript(tenant_a.account_id)
    new = CallScript(tenant_a.account_id, start=old.at(86400 * 29))
    foreign = CallScript(tenant_b.account_id)
    files = {}
    for s in (old, new, foreign):
        path = journal.recording_path_for(s.account_id, s.call_id, s.start)
        if kind == "voicemail":
            path = path.with_suffix(".vm.wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF....WAVE")
        files[s.call_id] = path
        made = CallRecorded if kind == "recording" else VoicemailLeft
        audio = made(account_id=s.account_id, call_id=s.call_id, path=str(path), duration=9)
        how = Disposition.answered if kind == "recording" else Disposition.missed
        await publish(bus, s.started(), s.ended(60, how), audio)
    now = old.at(86400 * 31)
    assert await journal.purge_recordings(tenant_a.account_id, 30, now) == 1
    assert not files[old.call_id].exists()
    assert files[new.call_id].exists() and files[foreign.call_id].exists()
    kept = await row(container, old.call_id)
    assert kept is not None
    if kind == "recording":
        assert (kept.recording_path, kept.recording_seconds) == (None, 9)
        assert kept.disposition is Disposition.answered
    else:
        assert (kept.voicemail_path, kept.voicemail_seconds) == (None, 9)
        assert kept.disposition is Disposition.voicemail
    assert await journal.purge_recordings(tenant_a.account_id, 30, now) == 0


def test_timings_and_dispositions_rules() -> None:
    s = CallScript(uuid.uuid4())
    assert rules.timings(s.at(0), s.at(2.25), s.at(10)) == (2.25, 7.75)
    assert rules.timings(s.at(0), None, s.at(10)) == (10.0, 0.0)
    assert rules.timings(s.at(5), None, s.at(0)) == (0.0, 0.0)  # clock skew never goes negative
    for reported in Disposition:
        assert (
            rules.final_disposition(reported, answered=True, voicemail=True) is Disposition.answered
        )
        assert (
            rules.final_disposition(reported, answered=False, voicemail=True)
            is Disposition.voicemail
        )
        assert rules.final_disposition(reported, answered=False, voicemail=False) is reported
    assert (
        rules.recovered_disposition(answered=False, voicemail=False, rang=False)
        is Disposition.failed
    )


async def test_a_leg_that_never_said_it_rang_rang_from_its_invite(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    """A phone silent until it was stopped is announced then, with its INVITE's time: it rang
    for the 4 s the caller waited, not 0 s (the other phone answered at 4 s)."""
    call = CallScript(tenant_a.account_id)
    silent = CallRinging(
        account_id=tenant_a.account_id,
        call_id=call.call_id,
        leg_id="b",
        target=Target(TargetKind.employee, "Silent"),
        at=call.at(4),
        invited_at=call.at(0),
    )
    await publish(
        bus,
        call.started(),
        call.ringing("a", 0.5),
        call.answered("a", 4),
        silent,
        call.leg_ended("b", 4, LegEndReason.cancelled),
        call.ended(30, Disposition.answered),
    )
    done = await row(container, call.call_id)
    assert done is not None
    by_leg = await legs(container, done)
    assert by_leg["b"].rang_at == call.at(0) and by_leg["a"].rang_at == call.at(0.5)


async def test_a_messages_wait_ends_when_voicemail_answered(
    container: Container, bus: RecordingBus, journal: JournalService, tenant_a: Tenant
) -> None:
    """Nobody answered for 10 s, voicemail did and took a 12 s message: the caller waited
    10 s, not the 25 s of the whole call; a call nobody answered at all waited to its end."""
    call = CallScript(tenant_a.account_id)
    path = journal.recording_path_for(tenant_a.account_id, call.call_id, call.start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    ended = call.ended(25, Disposition.voicemail)
    await publish(
        bus,
        call.started(),
        call.ringing("a", 0.5),
        call.leg_ended("a", 10, LegEndReason.no_answer),
        VoicemailLeft(
            account_id=tenant_a.account_id, call_id=call.call_id, path=str(path), duration=12
        ),
        replace(ended, caller_answered_at=call.at(10)),
    )
    done = await row(container, call.call_id)
    assert done is not None and done.disposition is Disposition.voicemail
    assert (done.wait_seconds, done.talk_seconds, done.answered_at) == (10.0, 0.0, None)
    missed = CallScript(tenant_a.account_id)
    await publish(
        bus,
        missed.started(),
        replace(missed.ended(25, Disposition.missed), caller_answered_at=missed.at(10)),
    )
    done = await row(container, missed.call_id)
    assert done is not None and done.wait_seconds == 25.0
