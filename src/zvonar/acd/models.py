"""Stored ACD data: queue definitions, and the history of agent status intervals and queue
facts (append-only, per account).

Reports compute time-in-status, work time, service level, ASA and abandonment from these rows
exactly — nothing is sampled or reconstructed from call journals. ``agent_id`` is the employee
id; ``queue_id`` is the queue's name, the key a scheme's queue step names.

A queue definition row holds the canonical plain dict (``definitions.queue_to_dict``) after
validation, so a row always parses.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.store.base import Base, IdMixin, TimestampMixin


class AcdQueueRow(IdMixin, TimestampMixin, Base):
    __tablename__ = "acd_queues"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)


class AgentStatusInterval(IdMixin, Base):
    __tablename__ = "acd_status_intervals"
    __table_args__ = (
        Index("ix_acd_status_intervals_agent_start", "account_id", "agent_id", "start"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(100))
    start: Mapped[datetime]
    end: Mapped[datetime]


class QueueFactRecord(IdMixin, Base):
    __tablename__ = "acd_queue_facts"
    __table_args__ = (Index("ix_acd_queue_facts_queue_at", "account_id", "queue_id", "at"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    queue_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime]
    wait: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(24))
    agent_id: Mapped[uuid.UUID | None]
    priority: Mapped[int] = mapped_column(Integer, default=0)
