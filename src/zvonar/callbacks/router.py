"""HTTP endpoints of callback requests.

``POST /callback-requests`` → 202 with the request (the PBX calls when it is due);
``GET /callback-requests?status=`` (paginated), ``GET /callback-requests/{id}``,
``POST /callback-requests/{id}/cancel``. Error codes beyond the generic ones:
``invalid_phone_number`` (422), ``number_not_found`` (404), ``callback_finished`` (409).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from zvonar.api.deps import CurrentPrincipal
from zvonar.api.pagination import Page, Paging, page_of
from zvonar.callbacks.events import CallbackStatus
from zvonar.callbacks.models import CallbackRequest
from zvonar.callbacks.schemas import CallbackRequestIn, CallbackRequestOut
from zvonar.callbacks.service import CallbackService

router = APIRouter(tags=["callbacks"])


def callback_service(request: Request) -> CallbackService:
    svc: CallbackService = request.app.state.container.callbacks
    return svc


Callbacks = Annotated[CallbackService, Depends(callback_service)]


def _out(row: CallbackRequest) -> CallbackRequestOut:
    out = CallbackRequestOut.model_validate(row)
    if row.status is not CallbackStatus.pending:
        out.next_attempt_at = None
    return out


@router.post("/callback-requests", response_model=CallbackRequestOut, status_code=202)
async def create_callback_request(
    body: CallbackRequestIn, p: CurrentPrincipal, svc: Callbacks
) -> CallbackRequestOut:
    return _out(await svc.create(p, body))


@router.get("/callback-requests", response_model=Page[CallbackRequestOut])
async def list_callback_requests(
    p: CurrentPrincipal, svc: Callbacks, page: Paging, status: CallbackStatus | None = None
) -> Page[CallbackRequestOut]:
    found = await svc.list_requests(p, status=status, limit=page.limit, offset=page.offset)
    return page_of(found, page, _out)


@router.get("/callback-requests/{callback_request_id}", response_model=CallbackRequestOut)
async def get_callback_request(
    callback_request_id: uuid.UUID, p: CurrentPrincipal, svc: Callbacks
) -> CallbackRequestOut:
    return _out(await svc.get(p, callback_request_id))


@router.post("/callback-requests/{callback_request_id}/cancel", response_model=CallbackRequestOut)
async def cancel_callback_request(
    callback_request_id: uuid.UUID, p: CurrentPrincipal, svc: Callbacks
) -> CallbackRequestOut:
    return _out(await svc.cancel(p, callback_request_id))
