"""Turns call events into journal rows: one transaction per event, idempotent, never raising.

Robustness rules (a journal must never lose a call, nor invent one):
- the row is created on ``CallStarted``, so it exists from the first INVITE;
- an event for a call the journal does not know (its ``CallStarted`` was lost, or another
  account's call id) is logged and dropped: it creates nothing;
- a repeated event changes nothing: first answer, first end and first leg state win;
- facts that may arrive after the end (the recording, a voicemail) still land on a closed row.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRecorded,
    CallRinging,
    CallStarted,
    CallTransferred,
    Disposition,
    LegEnded,
    LegEndReason,
    VoicemailLeft,
)
from zvonar.journal import paths, rules
from zvonar.journal.models import CallLeg, CallRecord, CallStatus
from zvonar.store.db import Database

log = logging.getLogger(__name__)


def _touch(call: CallRecord, at: datetime) -> None:
    if at > call.last_activity_at:
        call.last_activity_at = at


async def find_call(s: AsyncSession, event: CallEvent) -> CallRecord | None:
    return await s.scalar(
        select(CallRecord).where(
            CallRecord.account_id == event.account_id, CallRecord.call_id == event.call_id
        )
    )


async def _leg(s: AsyncSession, call: CallRecord, leg_id: str) -> CallLeg | None:
    return await s.scalar(
        select(CallLeg).where(CallLeg.call_pk == call.id, CallLeg.leg_id == leg_id)
    )


class JournalConsumer:
    """Applies call events to the journal tables."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.data_dir = data_dir

    async def handle(self, event: CallEvent) -> None:
        try:
            if isinstance(event, CallStarted):
                await self._started(event)
            else:
                await self._apply(event)
        except IntegrityError:
            # A concurrent duplicate CallStarted, or an account that does not exist.
            log.warning("journal: %s for call %s not stored", event.event_type, event.call_id)

    async def _started(self, e: CallStarted) -> None:
        async with self.db.unit_of_work() as uow:
            if await find_call(uow.session, e) is not None:
                return
            uow.session.add(
                CallRecord(
                    account_id=e.account_id,
                    call_id=e.call_id,
                    direction=e.direction,
                    caller=e.caller,
                    caller_contact_id=e.caller_contact_id,
                    dialed=e.dialed,
                    dialed_label=e.number_label,
                    tracking=dict(e.tracking),
                    started_at=e.started_at,
                    last_activity_at=e.started_at,
                    scheme_path=[],
                    transfers=[],
                    status=CallStatus.open,
                )
            )
            await uow.session.flush()

    async def _apply(self, e: CallEvent) -> None:
        async with self.db.unit_of_work() as uow:
            s = uow.session
            call = await find_call(s, e)
            if call is None:
                log.warning("journal: %s for unknown call %s dropped", e.event_type, e.call_id)
                return
            if isinstance(e, CallRinging):
                await self._ringing(s, call, e)
            elif isinstance(e, CallAnswered):
                await self._answered(s, call, e)
            elif isinstance(e, LegEnded):
                await self._leg_ended(s, call, e)
            elif isinstance(e, CallTransferred):
                self._transferred(call, e)
            elif isinstance(e, CallRecorded):
                self._recorded(call, e)
            elif isinstance(e, VoicemailLeft):
                self._voicemail(call, e)
            elif isinstance(e, CallEnded):
                await self._ended(s, call, e)
            await s.flush()

    async def _ringing(self, s: AsyncSession, call: CallRecord, e: CallRinging) -> None:
        if await _leg(s, call, e.leg_id) is not None:
            return
        s.add(
            CallLeg(
                call_pk=call.id,
                leg_id=e.leg_id,
                target_kind=e.target.kind,
                target_id=e.target.target_id,
                target_display=e.target.display,
                rang_at=e.at,
            )
        )
        _touch(call, e.at)

    async def _answered(self, s: AsyncSession, call: CallRecord, e: CallAnswered) -> None:
        leg = await _leg(s, call, e.leg_id)
        if leg is not None and leg.answered_at is None:
            leg.answered_at = e.at
        if call.answered_at is None:
            call.answered_at = e.at
            call.answered_by = e.by
            call.answered_leg_id = e.leg_id
            if call.status is CallStatus.closed and call.ended_at is not None:
                # The answer arrived after the end (events reordered): the end's sums were
                # computed without it.
                call.disposition = Disposition.answered
                call.wait_seconds, call.talk_seconds = rules.timings(
                    call.started_at, e.at, call.ended_at
                )
        _touch(call, e.at)

    async def _leg_ended(self, s: AsyncSession, call: CallRecord, e: LegEnded) -> None:
        leg = await _leg(s, call, e.leg_id)
        if leg is not None and leg.ended_at is None:
            leg.ended_at = e.at
            leg.end_reason = e.reason
        _touch(call, e.at)

    def _transferred(self, call: CallRecord, e: CallTransferred) -> None:
        key = str(e.event_id)
        if any(t.get("event_id") == key for t in call.transfers):
            return
        entry = {
            "event_id": key,
            "from_leg_id": e.from_leg_id,
            "to_kind": e.to.kind.value,
            "to_id": str(e.to.target_id) if e.to.target_id else None,
            "to_display": e.to.display,
            "kind": e.kind.value,
            "at": e.at.isoformat(),
        }
        # A new list: JSON columns notice replacement, not in-place mutation.
        call.transfers = [*call.transfers, entry]
        _touch(call, e.at)

    def _stored(self, call: CallRecord, path: str) -> str | None:
        stored = paths.to_stored(self.data_dir, call.account_id, path)
        if stored is None:
            log.warning("journal: call %s file outside its recordings directory", call.call_id)
        return stored

    def _recorded(self, call: CallRecord, e: CallRecorded) -> None:
        stored = self._stored(call, e.path)
        if stored is not None:
            call.recording_path = stored
            call.recording_seconds = e.duration

    def _voicemail(self, call: CallRecord, e: VoicemailLeft) -> None:
        stored = self._stored(call, e.path)
        if stored is None:
            return
        call.voicemail_path = stored
        call.voicemail_seconds = e.duration
        if call.status is CallStatus.closed and call.disposition is not Disposition.answered:
            call.disposition = Disposition.voicemail

    async def _ended(self, s: AsyncSession, call: CallRecord, e: CallEnded) -> None:
        if call.status is CallStatus.closed:
            return
        ended_at = max(e.ended_at, call.started_at)
        call.ended_at = ended_at
        call.hangup = e.hangup
        call.scheme_path = list(e.scheme_path)
        call.disposition = rules.final_disposition(
            e.disposition,
            answered=call.answered_at is not None,
            voicemail=call.voicemail_path is not None,
        )
        call.wait_seconds, call.talk_seconds = rules.timings(
            call.started_at, call.answered_at, ended_at
        )
        call.status = CallStatus.closed
        _touch(call, ended_at)
        await close_legs(s, call, ended_at)


async def close_legs(s: AsyncSession, call: CallRecord, at: datetime) -> None:
    """Legs still open when the call ends: the answered one completed, the rest were
    cancelled (they stopped ringing because the call went away)."""
    legs = await s.scalars(
        select(CallLeg).where(CallLeg.call_pk == call.id, CallLeg.ended_at.is_(None))
    )
    for leg in legs:
        leg.ended_at = max(at, leg.rang_at)
        leg.end_reason = (
            LegEndReason.completed if leg.answered_at is not None else LegEndReason.cancelled
        )
