"""Crash recovery: close the journal rows a previous process left open.

A call's row is written at its first INVITE and closed at its end; a process killed in between
leaves it ``open``. At start, before taking calls, the app closes those rows with what is known:
an answered call stays ``answered`` and is taken to have ended at its last known activity; the
rest become ``abandoned`` (something rang) or ``failed``. Such rows are marked ``recovered``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.calls.events import HangupSide, LegEndReason
from zvonar.journal import rules
from zvonar.journal.models import CallLeg, CallRecord, CallStatus
from zvonar.store.db import Database

log = logging.getLogger(__name__)

BATCH = 500


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


async def recover_open_calls(
    db: Database, now: datetime, *, idle_for: timedelta = timedelta(0)
) -> int:
    """Close every open row whose last activity is at or before ``now - idle_for``; returns how
    many. ``idle_for`` lets a periodic sweep spare calls that are merely long."""
    cutoff = now - idle_for
    total = 0
    while True:
        async with db.unit_of_work() as uow:
            s = uow.session
            calls = list(
                await s.scalars(
                    select(CallRecord)
                    .where(
                        CallRecord.status == CallStatus.open,
                        CallRecord.last_activity_at <= cutoff,
                    )
                    .order_by(CallRecord.started_at)
                    .limit(BATCH)
                )
            )
            for call in calls:
                rang = await s.scalar(select(exists().where(CallLeg.call_pk == call.id)))
                ended_at = call.last_activity_at
                call.ended_at = ended_at
                call.hangup = HangupSide.system
                call.disposition = rules.recovered_disposition(
                    answered=call.answered_at is not None,
                    voicemail=call.voicemail_path is not None,
                    rang=bool(rang),
                )
                call.wait_seconds, call.talk_seconds = rules.timings(
                    call.started_at, call.answered_at, ended_at
                )
                call.status = CallStatus.closed
                call.recovered = True
                await close_legs(s, call, ended_at)
            await s.flush()
        total += len(calls)
        if len(calls) < BATCH:
            break
    if total:
        log.warning("journal: closed %d call(s) left open by a previous process", total)
    return total
