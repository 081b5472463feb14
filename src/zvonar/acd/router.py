"""HTTP endpoints of the ACD slice: queue KPIs computed exactly from stored facts.

``GET /queues/{queue_id}/summary?since=&until=&threshold=`` — counts, service level (answered
within ``threshold`` seconds over handled calls), ASA and abandonment rate for ``[since, until)``.
Needs ``calls.read`` until an ``acd.read`` permission exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from zvonar.acd.schemas import QueueSummaryOut
from zvonar.acd.service import AcdService
from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.core.errors import InvalidInput

router = APIRouter(tags=["acd"])

QueueKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


def _service(c: AppContainer) -> AcdService:
    return c.acd


@router.get("/queues/{queue_id}/summary", response_model=QueueSummaryOut)
async def queue_summary(
    p: CurrentPrincipal,
    c: AppContainer,
    queue_id: QueueKey,
    since: datetime,
    until: datetime,
    threshold: Annotated[float, Query(ge=0, le=3600)] = 20.0,
    short_abandon: Annotated[float, Query(ge=0, le=3600)] = 0.0,
) -> QueueSummaryOut:
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("since and until need a time zone offset")
    if until <= since:
        raise InvalidInput("until must be after since")
    summary = await _service(c).queue_summary(
        p, queue_id, since, until, threshold=threshold, short_abandon=short_abandon
    )
    return QueueSummaryOut.model_validate(summary)
