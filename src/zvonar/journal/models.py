"""Tables of the call journal: one row per call, one row per leg.

The ``calls`` row is written when the call starts (``status = open``) and finalized when it ends
(``closed``), so a call answered before a crash is still in the journal; recovery closes what a
dead process left open (``recovered = True``). Each row names the process that writes it
(``owner_id``), and each such process renews its lease in ``call_owners`` (journal/owners.py):
a row is another process's to close only once its owner's lease has run out.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.calls.events import Direction, Disposition, HangupSide, LegEndReason, TargetKind
from zvonar.store.base import Base, IdMixin, TimestampMixin


class CallStatus(enum.StrEnum):
    open = "open"
    closed = "closed"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=24, validate_strings=True)


class CallRecord(IdMixin, TimestampMixin, Base):
    __tablename__ = "calls"
    __table_args__ = (
        # call_id is unique per account: an event can never touch another tenant's row.
        UniqueConstraint("account_id", "call_id"),
        Index("ix_calls_account_started", "account_id", "started_at"),
        Index("ix_calls_status", "status"),
        # A caller's own history: who answered them last (routing's "manager: last"), which
        # of our numbers they called last (the outbound caller-ID rule).
        Index("ix_calls_account_caller", "account_id", "caller", "started_at"),
        # A customer's calls from any of their numbers (the journal's contact filter).
        Index("ix_calls_account_contact", "account_id", "caller_contact_id", "started_at"),
        # Whom the account called (an outbound call's E.164): {manager: last}.
        Index("ix_calls_account_dialed", "account_id", "dialed", "started_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(128))
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    caller: Mapped[str] = mapped_column(String(64))
    # The CRM slice will own contacts; until then this is a bare id without a foreign key.
    caller_contact_id: Mapped[uuid.UUID | None]
    placed_by: Mapped[uuid.UUID | None]  # the employee who dialled an outbound call
    dialed: Mapped[str] = mapped_column(String(64))
    dialed_label: Mapped[str | None] = mapped_column(String(200))
    tracking: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # The latest time any event told us about: where a recovered call is taken to have ended.
    last_activity_at: Mapped[datetime]
    answered_by: Mapped[uuid.UUID | None] = mapped_column(index=True)
    answered_leg_id: Mapped[str | None] = mapped_column(String(128))
    wait_seconds: Mapped[float | None]
    talk_seconds: Mapped[float | None]
    disposition: Mapped[Disposition | None] = mapped_column(_enum(Disposition))
    hangup: Mapped[HangupSide | None] = mapped_column(_enum(HangupSide))
    scheme_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    transfers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Relative to settings.data_dir; cleared by retention while the row stays, the seconds
    # kept: no path but seconds is a file that expired (schemas.CallOut), no seconds none made.
    recording_path: Mapped[str | None] = mapped_column(String(1000))
    recording_seconds: Mapped[float | None]
    voicemail_path: Mapped[str | None] = mapped_column(String(1000))
    voicemail_seconds: Mapped[float | None]
    rating: Mapped[int | None]  # 1-5, the caller's post-call rating
    # The caller's audio as we received it (loss fraction, jitter); the estimated MOS is of
    # the worse of both directions.
    loss: Mapped[float | None]
    jitter_ms: Mapped[float | None]
    mos: Mapped[float | None]
    srtp: Mapped[bool | None]  # the caller's media was SRTP (encrypted); None: no media leg
    # Our RTP as the caller's RTCP reports saw it, and the round trip; None: they sent none.
    peer_loss: Mapped[float | None]
    peer_jitter_ms: Mapped[float | None]
    rtt_ms: Mapped[float | None]
    status: Mapped[CallStatus] = mapped_column(_enum(CallStatus), default=CallStatus.open)
    recovered: Mapped[bool] = mapped_column(default=False)
    # The process that writes this row (its CallOwner lease); None: written before leases.
    owner_id: Mapped[uuid.UUID | None]


class CallOwner(Base):
    """A process that writes journal rows, alive while ``renewed_at`` is recent."""

    __tablename__ = "call_owners"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    renewed_at: Mapped[datetime]


class CallLeg(IdMixin, Base):
    __tablename__ = "call_legs"
    __table_args__ = (UniqueConstraint("call_pk", "leg_id"),)

    call_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), index=True
    )
    leg_id: Mapped[str] = mapped_column(String(128))
    target_kind: Mapped[TargetKind] = mapped_column(_enum(TargetKind))
    target_id: Mapped[uuid.UUID | None]
    target_display: Mapped[str] = mapped_column(String(200))
    rang_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[LegEndReason | None] = mapped_column(_enum(LegEndReason))
    # The target's audio as we received it (for answered legs); MOS: the worse direction.
    loss: Mapped[float | None]
    jitter_ms: Mapped[float | None]
    mos: Mapped[float | None]
    srtp: Mapped[bool | None]  # its media was SRTP (encrypted); None: it had no media
    # Our RTP as the target's RTCP reports saw it, and the round trip; None: it sent none.
    peer_loss: Mapped[float | None]
    peer_jitter_ms: Mapped[float | None]
    rtt_ms: Mapped[float | None]
