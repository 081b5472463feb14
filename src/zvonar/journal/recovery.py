"""Crash recovery: close the journal rows a previous process left open.

A call's row is written at its first INVITE and closed at its end; a process killed in between
leaves it ``open``. Those rows are closed with what is known, once their process is known to be
gone (journal/owners.py): at start, before taking calls, and by every PBX's periodic sweep. An
answered call stays ``answered`` and is taken to have ended when its process was last seen
alive; a message left makes it ``voicemail``; the rest become ``abandoned`` (something rang) or
``failed``. Such rows are marked ``recovered``.
"""

from __future__ import annotations

import logging
import wave
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.calls.events import HangupSide, LegEndReason
from zvonar.journal import owners, paths, rules
from zvonar.journal.events import CallRecovered
from zvonar.journal.models import CallLeg, CallOwner, CallRecord, CallStatus
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
    db: Database,
    now: datetime,
    data_dir: Path,
    *,
    idle_for: timedelta = timedelta(0),
    orphans: bool = True,
) -> list[CallRecovered]:
    """Close the open rows of processes that are gone; returns what was closed.

    * A row whose owner holds a lease (journal/owners.py) is closed once the lease is
      ``STALE``, never before: the owner may be another live process. Its end is the owner's
      last renewal (the call went on at least that long), or its last activity if later.
    * With ``orphans``, a row with no lease behind it (written before leases existed, or by
      a process that took none) is closed once its last activity is ``idle_for`` old, and
      ends then. ``idle_for`` lets a periodic sweep spare calls that are merely long.

    A process's own rows are safe from it: its lease is fresh while it runs.

    What the dead process left on disk is kept: the call's recording, and a voicemail
    message (the call is then ``voicemail``), each as far as it was written.
    """
    cutoff = now - idle_for
    stale_before = now - owners.STALE
    leases = {o.id: o.renewed_at for o in await _leases(db)}
    dead = [i for i, renewed in leases.items() if renewed < stale_before]
    clauses: list[ColumnElement[bool]] = []
    if dead:
        clauses.append(CallRecord.owner_id.in_(dead))
    if orphans:
        orphan = or_(CallRecord.owner_id.is_(None), CallRecord.owner_id.not_in(list(leases)))
        clauses.append(and_(orphan, CallRecord.last_activity_at <= cutoff))
    if not clauses:
        return []
    closed: list[CallRecovered] = []
    while True:
        async with db.unit_of_work() as uow:
            s = uow.session
            calls = list(
                await s.scalars(
                    select(CallRecord)
                    .where(CallRecord.status == CallStatus.open, or_(*clauses))
                    .order_by(CallRecord.started_at)
                    .limit(BATCH)
                )
            )
            for call in calls:
                renewed = leases.get(call.owner_id) if call.owner_id is not None else None
                ended_at = call.last_activity_at
                if renewed is not None:
                    ended_at = min(max(ended_at, renewed), now)
                _keep_files(call, data_dir)
                rang = await s.scalar(select(exists().where(CallLeg.call_pk == call.id)))
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
            batch = [_recovered(call) for call in calls]
        closed += batch  # committed
        if len(calls) < BATCH:
            break
    if closed:
        log.warning("journal: closed %d call(s) left open by a process that is gone", len(closed))
    return closed


def _recovered(call: CallRecord) -> CallRecovered:
    assert call.disposition is not None  # set just above
    return CallRecovered(
        account_id=call.account_id,
        call_id=call.call_id,
        direction=call.direction,
        caller=call.caller,
        dialed=call.dialed,
        dialed_label=call.dialed_label,
        started_at=call.started_at,
        disposition=call.disposition,
        caller_contact_id=call.caller_contact_id,
    )


async def _leases(db: Database) -> list[CallOwner]:
    async with db.read() as s:
        return list(await s.scalars(select(CallOwner)))


def _keep_files(call: CallRecord, data_dir: Path) -> None:
    """Link the recording and the voicemail message the dead process was writing: the
    recorder keeps its WAV header true after every write (media/io/recorder.py), so what
    is on disk is a playable file of all but the last second."""
    try:
        where = paths.recording_path_for(data_dir, call.account_id, call.call_id, call.started_at)
    except ValueError:  # not a safe token: nothing was ever written for it
        return
    if call.recording_path is None:
        seconds = _wav_seconds(where)
        if seconds is not None:
            call.recording_path = paths.to_stored(data_dir, call.account_id, str(where))
            call.recording_seconds = seconds
    if call.voicemail_path is None:
        message = where.with_name(f"{call.call_id}.vm.wav")  # calls/voicemail.py's name
        seconds = _wav_seconds(message)
        if seconds is not None:
            call.voicemail_path = paths.to_stored(data_dir, call.account_id, str(message))
            call.voicemail_seconds = seconds


def _wav_seconds(path: Path) -> float | None:
    """The duration of a WAV with at least one frame, else None (absent, empty, unreadable)."""
    try:
        with wave.open(str(path), "rb") as w:
            frames, rate = w.getnframes(), w.getframerate()
    except (OSError, EOFError, wave.Error):
        return None
    if frames <= 0 or rate <= 0:
        return None
    return round(frames / rate, 3)
