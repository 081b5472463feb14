"""API shapes of the call journal (read-only: calls are written by call events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from zvonar.api.pagination import Page
from zvonar.calls.events import Direction, Disposition, HangupSide, LegEndReason, TargetKind
from zvonar.core.schemas import Output
from zvonar.journal.models import CallLeg, CallRecord, CallStatus
from zvonar.journal.rules import expired


class LegOut(Output):
    leg_id: str
    target_kind: TargetKind
    target_id: uuid.UUID | None
    target_display: str
    rang_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    ring_seconds: float | None = Field(description="From ringing to answer or end.")
    end_reason: LegEndReason | None
    loss: float | None = Field(description="Fraction of the target's RTP packets lost.")
    jitter_ms: float | None
    mos: float | None = Field(
        description="Estimated MOS (1-5) of the target's audio, the worse of both directions."
    )
    srtp: bool | None = Field(
        default=None, description="The leg's media was SRTP (encrypted); null: it had none."
    )
    peer_loss: float | None = Field(
        default=None,
        description="Fraction of our RTP lost, as the target's RTCP reports say; null: none.",
    )
    peer_jitter_ms: float | None = Field(
        default=None, description="Jitter of our RTP, as the target's RTCP reports say."
    )
    rtt_ms: float | None = Field(
        default=None, description="Round-trip time measured from the target's RTCP reports."
    )

    @classmethod
    def of(cls, leg: CallLeg) -> LegOut:
        stop = leg.answered_at or leg.ended_at
        ring = round((stop - leg.rang_at).total_seconds(), 3) if stop else None
        return cls(
            leg_id=leg.leg_id,
            target_kind=leg.target_kind,
            target_id=leg.target_id,
            target_display=leg.target_display,
            rang_at=leg.rang_at,
            answered_at=leg.answered_at,
            ended_at=leg.ended_at,
            ring_seconds=ring,
            end_reason=leg.end_reason,
            loss=leg.loss,
            jitter_ms=leg.jitter_ms,
            mos=leg.mos,
            srtp=leg.srtp,
            peer_loss=leg.peer_loss,
            peer_jitter_ms=leg.peer_jitter_ms,
            rtt_ms=leg.rtt_ms,
        )


class TransferOut(BaseModel):
    from_leg_id: str
    to_kind: TargetKind
    to_id: uuid.UUID | None
    to_display: str
    kind: str
    at: datetime


class CallOut(Output):
    id: uuid.UUID
    call_id: str
    direction: Direction
    caller: str
    caller_contact_id: uuid.UUID | None
    dialed: str
    dialed_label: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    wait_seconds: float | None = Field(description="Start to answer (unanswered: to the end).")
    talk_seconds: float | None
    disposition: Disposition | None = Field(description="None while the call is in progress.")
    hangup: HangupSide | None
    answered_by: uuid.UUID | None = Field(description="The employee who took the call.")
    placed_by: uuid.UUID | None = Field(description="The employee who dialled (outbound).")
    scheme_path: list[str]
    has_recording: bool
    recording_seconds: float | None = Field(description="Its length, also once it expired.")
    recording_expired: bool = Field(
        description="Recorded, and deleted since by the account's recording retention."
    )
    has_voicemail: bool
    voicemail_seconds: float | None = Field(description="Its length, also once it expired.")
    voicemail_expired: bool = Field(
        description="A message was left, and deleted since by the account's recording retention."
    )
    tracking: dict[str, str]
    rating: int | None = Field(description="The caller's post-call rating, 1-5.")
    mos: float | None = Field(
        description="Estimated MOS (1-5) of the caller's audio, the worse of both directions."
    )
    loss: float | None
    jitter_ms: float | None
    srtp: bool | None = Field(
        default=None, description="The caller's media was SRTP (encrypted); null: it had none."
    )
    peer_loss: float | None = Field(
        default=None,
        description="Fraction of our RTP lost, as the caller's RTCP reports say; null: none.",
    )
    peer_jitter_ms: float | None = Field(
        default=None, description="Jitter of our RTP, as the caller's RTCP reports say."
    )
    rtt_ms: float | None = Field(
        default=None, description="Round-trip time measured from the caller's RTCP reports."
    )
    status: CallStatus
    recovered: bool = Field(description="Closed by crash recovery, not by its own end.")

    @classmethod
    def of(cls, c: CallRecord) -> CallOut:
        return cls.model_validate(cls._fields(c))

    @staticmethod
    def _fields(c: CallRecord) -> dict[str, Any]:
        return {
            "id": c.id,
            "call_id": c.call_id,
            "direction": c.direction,
            "caller": c.caller,
            "caller_contact_id": c.caller_contact_id,
            "dialed": c.dialed,
            "dialed_label": c.dialed_label,
            "started_at": c.started_at,
            "answered_at": c.answered_at,
            "ended_at": c.ended_at,
            "wait_seconds": c.wait_seconds,
            "talk_seconds": c.talk_seconds,
            "disposition": c.disposition,
            "hangup": c.hangup,
            "answered_by": c.answered_by,
            "placed_by": c.placed_by,
            "scheme_path": list(c.scheme_path or []),
            "has_recording": c.recording_path is not None,
            "recording_seconds": c.recording_seconds,
            "recording_expired": expired(c.recording_path, c.recording_seconds),
            "has_voicemail": c.voicemail_path is not None,
            "voicemail_seconds": c.voicemail_seconds,
            "voicemail_expired": expired(c.voicemail_path, c.voicemail_seconds),
            "tracking": dict(c.tracking or {}),
            "rating": c.rating,
            "mos": c.mos,
            "loss": c.loss,
            "jitter_ms": c.jitter_ms,
            "srtp": c.srtp,
            "peer_loss": c.peer_loss,
            "peer_jitter_ms": c.peer_jitter_ms,
            "rtt_ms": c.rtt_ms,
            "status": c.status,
            "recovered": c.recovered,
        }


class CallDetailOut(CallOut):
    legs: list[LegOut]
    transfers: list[TransferOut]

    @classmethod
    def detail(cls, c: CallRecord, legs: tuple[CallLeg, ...]) -> CallDetailOut:
        data = CallOut._fields(c)
        data["legs"] = [LegOut.of(leg) for leg in legs]
        data["transfers"] = [TransferOut.model_validate(t) for t in c.transfers or []]
        return cls.model_validate(data)


class CallPage(Page[CallOut]):
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the rows after this page (calls that arrive "
        "meanwhile neither repeat nor shift rows); null: this page is the last."
    )
