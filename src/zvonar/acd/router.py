"""HTTP endpoints of the ACD slice: queue definitions, and queue KPIs computed exactly from
stored facts.

``GET /queues`` (paged, ``q`` filters names), ``POST /queues``, ``GET/PATCH/DELETE
/queues/{name}``: queue definitions by name (reading needs ``routing.read`` or ``calls.read``,
writing ``routing.write``). Error codes beyond the generic ones: ``invalid_queue``,
``unknown_reference`` (422, with ``details.path``); ``queue_name_taken``, ``queue_in_use`` (409).

``GET /queues/{queue_id}/summary?since=&until=&threshold=`` — counts, service level (answered
within ``threshold`` seconds over handled calls), ASA and abandonment rate for ``[since, until)``.
Needs ``acd.read``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from zvonar.accounts.zone import span_on_clock
from zvonar.acd.definitions import queue_to_dict
from zvonar.acd.queues import AcdQueueService, QueueView
from zvonar.acd.schemas import QueueIn, QueueOut, QueuePatch, QueueSummaryOut
from zvonar.acd.service import AcdService
from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.api.pagination import Page, Paging, page_of, search_query
from zvonar.core.errors import InvalidInput
from zvonar.core.schemas import DayOrDateTime

# A report's range: instants, or days on the account's clock (``until``'s day included).
SINCE = (
    "From: an instant with its offset, or a day (2026-12-01) from its midnight on the "
    "account's clock."
)
UNTIL = (
    "Before: an instant with its offset, or a day on the account's clock, which is included "
    "(since=2026-12-01&until=2026-12-07: the week)."
)
router = APIRouter(tags=["acd"])

QueueKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
QueueName = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="Its key.")
]


def _service(c: AppContainer) -> AcdService:
    return c.acd


def _queues(c: AppContainer) -> AcdQueueService:
    return c.acd_queues


Queues = Annotated[AcdQueueService, Depends(_queues)]


def _queue(v: QueueView) -> QueueOut:
    return QueueOut(
        id=v.id,
        created_at=v.created_at,
        updated_at=v.updated_at,
        **queue_to_dict(v.definition, full=True),
    )


@router.get("/queues", response_model=Page[QueueOut])
async def list_queues(
    p: CurrentPrincipal,
    svc: Queues,
    page: Paging,
    q: Annotated[str | None, search_query("Part of the queue's name.")] = None,
) -> Page[QueueOut]:
    found = await svc.list_queues(p, q=q, limit=page.limit, offset=page.offset)
    return page_of(found, page, _queue)


@router.post("/queues", response_model=QueueOut, status_code=201)
async def create_queue(body: QueueIn, p: CurrentPrincipal, svc: Queues) -> QueueOut:
    return _queue(await svc.create_queue(p, body.model_dump()))


@router.get("/queues/{name}", response_model=QueueOut)
async def get_queue(name: QueueName, p: CurrentPrincipal, svc: Queues) -> QueueOut:
    return _queue(await svc.get_queue(p, name))


@router.patch("/queues/{name}", response_model=QueueOut)
async def update_queue(
    name: QueueName, body: QueuePatch, p: CurrentPrincipal, svc: Queues
) -> QueueOut:
    return _queue(await svc.update_queue(p, name, body.model_dump(exclude_unset=True)))


@router.delete("/queues/{name}", status_code=204)
async def delete_queue(name: QueueName, p: CurrentPrincipal, svc: Queues) -> None:
    """A queue a scheme still sends calls to cannot be deleted (``queue_in_use``)."""
    await svc.delete_queue(p, name)


@router.get("/queues/{queue_id}/summary", response_model=QueueSummaryOut)
async def queue_summary(
    p: CurrentPrincipal,
    c: AppContainer,
    queue_id: QueueKey,
    since: Annotated[DayOrDateTime, Query(description=SINCE)],
    until: Annotated[DayOrDateTime, Query(description=UNTIL)],
    threshold: Annotated[float, Query(ge=0, le=3600)] = 20.0,
    short_abandon: Annotated[float, Query(ge=0, le=3600)] = 0.0,
) -> QueueSummaryOut:
    """The queue's figures for calls that entered it within ``[since, until)``."""
    since, until = await span_on_clock(c.db, p.account_id, since, until)
    if until <= since:
        raise InvalidInput("until must be after since")
    summary = await _service(c).queue_summary(
        p, queue_id, since, until, threshold=threshold, short_abandon=short_abandon
    )
    return QueueSummaryOut.model_validate(summary)
