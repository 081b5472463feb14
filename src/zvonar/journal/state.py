"""A call's journal row held in memory, and the pure rules that apply call events to it.

The writer (:mod:`zvonar.journal.consumer`) loads or remembers a :class:`CallState` per call,
applies a batch of events to it here, then writes only what changed. Keeping the rules pure
means a batch costs no query per event and the rules are testable without a database.

Robustness rules (a journal must never lose a call, nor invent one):
- the row is created on ``CallStarted``;
- an event for a call the journal does not know is dropped by the caller: it creates nothing;
- a repeated event changes nothing: first answer, first end and first leg state win;
- facts that may arrive after the end (the recording, a voicemail, a late answer) still land
  on a closed row.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRated,
    CallRecorded,
    CallRinging,
    CallStarted,
    CallTransferred,
    Direction,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
    TargetKind,
    VoicemailLeft,
)
from zvonar.journal import paths, rules
from zvonar.journal.models import CallStatus
from zvonar.store.base import utcnow

log = logging.getLogger(__name__)

Key = tuple[uuid.UUID, str]  # (account_id, call_id): a call id is unique per account only


@dataclass(eq=False)
class LegState:
    """One ``call_legs`` row; ``new``/``dirty`` say whether it must be inserted/updated."""

    id: uuid.UUID
    call_pk: uuid.UUID
    leg_id: str
    target_kind: TargetKind
    target_id: uuid.UUID | None
    target_display: str
    rang_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: LegEndReason | None = None
    loss: float | None = None
    jitter_ms: float | None = None
    mos: float | None = None
    srtp: bool | None = None
    peer_loss: float | None = None
    peer_jitter_ms: float | None = None
    rtt_ms: float | None = None
    new: bool = False
    dirty: bool = False

    def row(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in LEG_COLUMNS}

    def updates(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in LEG_MUTABLE}


# What a LegEnded says of the leg's media (and a CallEnded of the caller's).
QUALITY = ("loss", "jitter_ms", "mos", "srtp", "peer_loss", "peer_jitter_ms", "rtt_ms")
LEG_MUTABLE = ("answered_at", "ended_at", "end_reason", *QUALITY)
LEG_COLUMNS = ("id", "call_pk", "leg_id", "target_kind", "target_id", "target_display",
                "rang_at", *LEG_MUTABLE)  # fmt: skip

# The columns an event can change after the row exists (what an UPDATE may set).
MUTABLE = (
    "answered_at",
    "answered_by",
    "answered_leg_id",
    "ended_at",
    "last_activity_at",
    "wait_seconds",
    "talk_seconds",
    "disposition",
    "hangup",
    "scheme_path",
    "transfers",
    "recording_path",
    "recording_seconds",
    "voicemail_path",
    "voicemail_seconds",
    "rating",
    *QUALITY,
    "status",
)
INSERTED = (
    "id",
    "account_id",
    "call_id",
    "direction",
    "caller",
    "caller_contact_id",
    "placed_by",
    "dialed",
    "dialed_label",
    "tracking",
    "started_at",
    "recovered",
    *MUTABLE,
)


@dataclass(eq=False)
class CallState:
    """One ``calls`` row. ``new``: not in the database yet; ``changed``: columns to update."""

    id: uuid.UUID
    account_id: uuid.UUID
    call_id: str
    direction: Direction
    caller: str
    caller_contact_id: uuid.UUID | None
    placed_by: uuid.UUID | None
    dialed: str
    dialed_label: str | None
    tracking: dict[str, Any]
    started_at: datetime
    last_activity_at: datetime
    answered_at: datetime | None = None
    answered_by: uuid.UUID | None = None
    answered_leg_id: str | None = None
    ended_at: datetime | None = None
    wait_seconds: float | None = None
    talk_seconds: float | None = None
    disposition: Disposition | None = None
    hangup: HangupSide | None = None
    scheme_path: list[str] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    recording_path: str | None = None
    recording_seconds: float | None = None
    voicemail_path: str | None = None
    voicemail_seconds: float | None = None
    rating: int | None = None
    loss: float | None = None  # of the caller's audio (their leg's RTP as we received it)
    jitter_ms: float | None = None
    mos: float | None = None
    srtp: bool | None = None  # the caller's media was SRTP
    peer_loss: float | None = None  # of our RTP, as the caller's RTCP reports say
    peer_jitter_ms: float | None = None
    rtt_ms: float | None = None
    status: CallStatus = CallStatus.open
    recovered: bool = False
    legs: dict[str, LegState] = field(default_factory=dict)
    new: bool = False
    changed: set[str] = field(default_factory=set)

    @property
    def key(self) -> Key:
        return (self.account_id, self.call_id)

    def copy(self) -> CallState:
        """A working copy for one batch: the remembered state stays as committed until the
        batch commits (a rolled-back batch must not leave its changes behind)."""
        legs = {k: _copy(v, new=False, dirty=False) for k, v in self.legs.items()}
        return _copy(self, legs=legs, new=False, changed=set())

    def set(self, name: str, value: object) -> None:
        if getattr(self, name) != value:
            setattr(self, name, value)
            self.changed.add(name)

    def touch(self, at: datetime) -> None:
        if at > self.last_activity_at:
            self.set("last_activity_at", at)

    def row(self) -> dict[str, Any]:
        now = utcnow()
        return {**{n: getattr(self, n) for n in INSERTED}, "created_at": now, "updated_at": now}

    def updates(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in sorted(self.changed)}


_T = TypeVar("_T")


def _copy(obj: _T, **changes: object) -> _T:
    """``dataclasses.replace`` for these plain (unchecked) dataclasses, without its field
    walk: a shallow copy with ``changes`` applied."""
    copy = object.__new__(type(obj))
    state = copy.__dict__
    state.update(obj.__dict__)
    state.update(changes)
    return copy


def started(e: CallStarted) -> CallState:
    return CallState(
        id=uuid.uuid4(),
        account_id=e.account_id,
        call_id=e.call_id,
        direction=e.direction,
        caller=e.caller,
        caller_contact_id=e.caller_contact_id,
        placed_by=e.placed_by,
        dialed=e.dialed,
        dialed_label=e.number_label,
        tracking=dict(e.tracking),
        started_at=e.started_at,
        last_activity_at=e.started_at,
        new=True,
    )


def apply(call: CallState, e: CallEvent, data_dir: Path) -> None:
    """Apply one event (not ``CallStarted``) to ``call``; idempotent."""
    if isinstance(e, CallRinging):
        _ringing(call, e)
    elif isinstance(e, CallAnswered):
        _answered(call, e)
    elif isinstance(e, LegEnded):
        _leg_ended(call, e)
    elif isinstance(e, CallTransferred):
        _transferred(call, e)
    elif isinstance(e, CallRecorded):
        stored = _stored(call, e.path, data_dir)
        if stored is not None:
            call.set("recording_path", stored)
            call.set("recording_seconds", e.duration)
    elif isinstance(e, VoicemailLeft):
        _voicemail(call, e, data_dir)
    elif isinstance(e, CallEnded):
        _ended(call, e)
    elif isinstance(e, CallRated):
        call.set("rating", e.score)
        call.touch(e.at)


def _ringing(call: CallState, e: CallRinging) -> None:
    if e.leg_id in call.legs:
        return
    call.legs[e.leg_id] = LegState(
        id=uuid.uuid4(),
        call_pk=call.id,
        leg_id=e.leg_id,
        target_kind=e.target.kind,
        target_id=e.target.target_id,
        target_display=e.target.display,
        # A leg that never said it rang (no 18x) rang from its INVITE.
        rang_at=e.invited_at or e.at,
        new=True,
    )
    call.touch(e.at)


def _answered(call: CallState, e: CallAnswered) -> None:
    leg = call.legs.get(e.leg_id)
    if leg is not None and leg.answered_at is None:
        leg.answered_at, leg.dirty = e.at, True
    if call.answered_at is None:
        call.set("answered_at", e.at)
        call.set("answered_by", e.by)
        call.set("answered_leg_id", e.leg_id)
        if call.status is CallStatus.closed and call.ended_at is not None:
            # The answer arrived after the end (events reordered): the end's sums were
            # computed without it.
            call.set("disposition", Disposition.answered)
            wait, talk = rules.timings(call.started_at, e.at, call.ended_at)
            call.set("wait_seconds", wait)
            call.set("talk_seconds", talk)
    call.touch(e.at)


def _leg_ended(call: CallState, e: LegEnded) -> None:
    leg = call.legs.get(e.leg_id)
    if leg is not None and leg.ended_at is None:
        leg.ended_at, leg.end_reason, leg.dirty = e.at, e.reason, True
        for name in QUALITY:
            setattr(leg, name, getattr(e, name))
    call.touch(e.at)


def _transferred(call: CallState, e: CallTransferred) -> None:
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
    call.set("transfers", [*call.transfers, entry])
    call.touch(e.at)


def _stored(call: CallState, path: str, data_dir: Path) -> str | None:
    stored = paths.to_stored(data_dir, call.account_id, path)
    if stored is None:
        log.warning("journal: call %s file outside its recordings directory", call.call_id)
    return stored


def _voicemail(call: CallState, e: VoicemailLeft, data_dir: Path) -> None:
    stored = _stored(call, e.path, data_dir)
    if stored is None:
        return
    call.set("voicemail_path", stored)
    call.set("voicemail_seconds", e.duration)
    if call.status is CallStatus.closed and call.disposition is not Disposition.answered:
        call.set("disposition", Disposition.voicemail)


def _ended(call: CallState, e: CallEnded) -> None:
    if call.status is CallStatus.closed:
        return
    ended_at = max(e.ended_at, call.started_at)
    call.set("ended_at", ended_at)
    call.set("hangup", e.hangup)
    call.set("scheme_path", list(e.scheme_path))
    call.set(
        "disposition",
        rules.final_disposition(
            e.disposition,
            answered=call.answered_at is not None,
            voicemail=call.voicemail_path is not None,
        ),
    )
    wait, talk = rules.timings(call.started_at, call.answered_at, _talk_end(call, ended_at))
    if (
        call.answered_at is None
        and call.disposition is Disposition.voicemail
        and e.caller_answered_at is not None
    ):
        # Voicemail answered and took a message: the wait ended there, not with the message.
        wait = rules.wait_until(call.started_at, e.caller_answered_at, ended_at)
    call.set("wait_seconds", wait)
    call.set("talk_seconds", talk)
    for name in QUALITY:
        call.set(name, getattr(e, name))
    call.set("status", CallStatus.closed)
    call.touch(ended_at)
    close_legs(call, ended_at)


def _talk_end(call: CallState, ended_at: datetime) -> datetime:
    """When the caller stopped talking: when the last answered leg ended, or the call's end
    while one is still up. A blind transfer, a pull or a parked call taken back hand the caller
    on to a later answered leg, so the ringing and hold between two legs count (the caller
    was on the call); what follows the last one (a post-call rating, a parked caller nobody
    took back, a transfer nobody answered) is not talk."""
    if call.answered_leg_id not in call.legs:
        return ended_at  # the answered leg's CallRinging never came: nothing better known
    last = call.started_at
    for leg in call.legs.values():
        if leg.answered_at is None:
            continue
        if leg.ended_at is None:
            return ended_at
        last = max(last, leg.ended_at)
    return min(last, ended_at)


def close_legs(call: CallState, at: datetime) -> None:
    """Legs still open when the call ends: the answered one completed, the rest were
    cancelled (they stopped ringing because the call went away)."""
    for leg in call.legs.values():
        if leg.ended_at is None:
            leg.ended_at = max(at, leg.rang_at)
            leg.end_reason = (
                LegEndReason.completed if leg.answered_at is not None else LegEndReason.cancelled
            )
            leg.dirty = True
