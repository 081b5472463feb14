"""The mail spool: a mail waits here, in the database, until its server took it (spool.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.store.base import Base, IdMixin


class QueuedMail(IdMixin, Base):
    __tablename__ = "mail_queue"

    what: Mapped[str] = mapped_column(Text)  # "missed call c-1", for the log
    # The mail itself as JSON (recipients, subject, body, attachments in base64): sent again
    # after a restart exactly as it was prepared.
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Who is delivering it, and until when that claim holds: a process that stops or dies
    # leaves its mails to whoever finds the claim run out (the spool's resume pass).
    owner: Mapped[str | None] = mapped_column(Text)
    locked_until: Mapped[datetime | None] = mapped_column(index=True)
    # Every attempt failed: kept for the admin's follow-up a while, never tried again.
    failed_at: Mapped[datetime | None]
