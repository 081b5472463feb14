"""Persistence and reports of the ACD slice.

:meth:`AcdService.record` is the only writer: the orchestrator hands it the events the pure
dispatcher produced (status intervals and queue facts; others are ignored), all in one unit of
work. It takes an ``account_id`` rather than a Principal because it is fed by the telephony
runtime, not by a user. Reads are principal-scoped and compute KPIs with the pure functions of
:mod:`zvonar.acd.facts`, so a report and a unit test agree to the last digit.

Core times are float epoch seconds; rows hold UTC datetimes.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from zvonar.accounts.access import Perm, Principal
from zvonar.acd.agents import StatusInterval
from zvonar.acd.facts import (
    FactKind,
    OverflowReason,
    QueueFact,
    abandonment_rate,
    asa,
    service_level,
)
from zvonar.acd.models import AgentStatusInterval, QueueFactRecord
from zvonar.core.errors import InvalidInput
from zvonar.store.db import Database

# Closest existing permission until an ``acd.read`` one exists (see the slice report).
READ_PERM = Perm.acd_read


def to_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def to_epoch(d: datetime) -> float:
    return d.timestamp()


def _agent_uuid(agent_id: str | None) -> uuid.UUID | None:
    if agent_id is None:
        return None
    try:
        return uuid.UUID(agent_id)
    except ValueError as exc:
        raise InvalidInput("ACD agent ids are employee UUIDs", agent_id=agent_id) from exc


@dataclass(frozen=True)
class QueueSummary:
    queue_id: str
    entered: int
    answered: int
    abandoned: int
    overflowed: int
    callbacks: int
    service_level: float | None
    threshold: float
    asa: float | None
    abandonment_rate: float | None


class AcdService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, account_id: uuid.UUID, events: Iterable[object]) -> int:
        """Store the intervals and facts among ``events``; returns how many rows were written."""
        rows: list[AgentStatusInterval | QueueFactRecord] = []
        for e in events:
            if isinstance(e, StatusInterval):
                agent = _agent_uuid(e.agent_id)
                assert agent is not None
                rows.append(
                    AgentStatusInterval(
                        account_id=account_id,
                        agent_id=agent,
                        status=e.status.value,
                        reason=e.reason,
                        start=to_datetime(e.start),
                        end=to_datetime(e.end),
                    )
                )
            elif isinstance(e, QueueFact):
                rows.append(
                    QueueFactRecord(
                        account_id=account_id,
                        queue_id=e.queue_id,
                        call_id=e.call_id,
                        kind=e.kind.value,
                        at=to_datetime(e.at),
                        wait=e.wait,
                        reason=e.reason.value if e.reason else None,
                        agent_id=_agent_uuid(e.agent_id),
                        priority=e.priority,
                    )
                )
        if rows:
            async with self.db.unit_of_work() as uow:
                uow.session.add_all(rows)
        return len(rows)

    async def queue_facts(
        self, p: Principal, queue_id: str, since: datetime, until: datetime
    ) -> list[QueueFact]:
        """Facts of one queue with ``since <= at < until``, oldest first."""
        p.require(READ_PERM)
        async with self.db.read() as s:
            rows = await s.scalars(
                select(QueueFactRecord)
                .where(
                    QueueFactRecord.account_id == p.account_id,
                    QueueFactRecord.queue_id == queue_id,
                    QueueFactRecord.at >= since,
                    QueueFactRecord.at < until,
                )
                .order_by(QueueFactRecord.at, QueueFactRecord.id)
            )
            return [
                QueueFact(
                    FactKind(r.kind),
                    r.queue_id,
                    r.call_id,
                    to_epoch(r.at),
                    r.wait,
                    OverflowReason(r.reason) if r.reason else None,
                    str(r.agent_id) if r.agent_id else None,
                    r.priority,
                )
                for r in rows
            ]

    async def queue_summary(
        self,
        p: Principal,
        queue_id: str,
        since: datetime,
        until: datetime,
        *,
        threshold: float = 20.0,
        short_abandon: float = 0.0,
    ) -> QueueSummary:
        facts = await self.queue_facts(p, queue_id, since, until)
        counts = defaultdict(int, {k: 0 for k in FactKind})
        for f in facts:
            counts[f.kind] += 1
        return QueueSummary(
            queue_id=queue_id,
            entered=counts[FactKind.entered],
            answered=counts[FactKind.answered],
            abandoned=counts[FactKind.abandoned],
            overflowed=counts[FactKind.overflowed],
            callbacks=counts[FactKind.callback_requested],
            service_level=service_level(facts, threshold, short_abandon=short_abandon),
            threshold=threshold,
            asa=asa(facts),
            abandonment_rate=abandonment_rate(facts, short_abandon=short_abandon),
        )

    async def time_in_status(
        self, p: Principal, agent_id: uuid.UUID, since: datetime, until: datetime
    ) -> dict[str, float]:
        """Seconds per status within ``[since, until)``, intervals clipped to the window."""
        p.require(READ_PERM)
        async with self.db.read() as s:
            rows = await s.scalars(
                select(AgentStatusInterval).where(
                    AgentStatusInterval.account_id == p.account_id,
                    AgentStatusInterval.agent_id == agent_id,
                    AgentStatusInterval.start < until,
                    AgentStatusInterval.end > since,
                )
            )
            out: dict[str, float] = defaultdict(float)
            for r in rows:
                start, end = max(r.start, since), min(r.end, until)
                out[r.status] += (end - start).total_seconds()
        return dict(out)
