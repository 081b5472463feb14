"""API shapes of callback requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import Field, model_validator

from zvonar.callbacks.events import CallbackStatus, FailedSide
from zvonar.core.schemas import PRINTABLE, Instant, Output, PhoneText, StrictInput

MAX_PARAMS = 30
ParamKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ParamValue = Annotated[str, Field(max_length=500, pattern=PRINTABLE)]


class CallbackRequestIn(StrictInput):
    """Call ``phone`` back. Who is called first: ``number`` (one of the account's numbers:
    the scheme assigned to it decides, HTTP route included), ``group_id`` or ``employee_id``
    — exactly one of them. ``params`` (tracking or session parameters) reach the scheme's
    HTTP route step as the call's tracking and the journal row. ``not_before``: not earlier
    than this instant (with a time zone offset); default now."""

    phone: PhoneText
    number: PhoneText | None = None
    group_id: uuid.UUID | None = None
    employee_id: uuid.UUID | None = None
    params: dict[ParamKey, ParamValue] = Field(default_factory=dict, max_length=MAX_PARAMS)
    not_before: Instant | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        given = [x for x in (self.number, self.group_id, self.employee_id) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of number, group_id, employee_id")
        return self


class CallbackRequestOut(Output):
    id: uuid.UUID
    phone: str
    number_id: uuid.UUID | None
    group_id: uuid.UUID | None
    employee_id: uuid.UUID | None
    params: dict[str, str]
    not_before: datetime | None
    status: CallbackStatus
    attempts: int
    next_attempt_at: datetime | None
    last_outcome: str | None
    failed_side: FailedSide | None
    call_ids: list[str]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
