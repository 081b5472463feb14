"""The callback requests table: one row per "call me back", with its attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.callbacks.events import CallbackStatus, FailedSide
from zvonar.store.base import Base, IdMixin, TimestampMixin


class CallbackRequest(IdMixin, TimestampMixin, Base):
    """``number_id`` / ``group_id`` / ``employee_id``: who is called first (exactly one).
    ``next_attempt_at``: when the worker may take it (``not_before``, then retry times)."""

    __tablename__ = "callback_requests"
    __table_args__ = (Index("ix_callback_requests_due", "status", "next_attempt_at"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    phone: Mapped[str] = mapped_column(String(16))
    number_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("phone_numbers.id", ondelete="SET NULL")
    )
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("employee_groups.id", ondelete="SET NULL")
    )
    employee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("employees.id", ondelete="SET NULL")
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    not_before: Mapped[datetime | None]
    status: Mapped[CallbackStatus] = mapped_column(
        Enum(CallbackStatus, native_enum=False, length=24, validate_strings=True)
    )
    next_attempt_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_outcome: Mapped[str | None] = mapped_column(String(24))
    failed_side: Mapped[FailedSide | None] = mapped_column(
        Enum(FailedSide, native_enum=False, length=24, validate_strings=True)
    )
    call_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    finished_at: Mapped[datetime | None]
