"""API shapes of the live ACD: the supervisor's view, agent statuses, call actions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from zvonar.acd.definitions import QUEUE_KEY
from zvonar.core.schemas import PRINTABLE, StrictInput

ChosenStatus = Literal["online", "offline", "dnd", "break", "away"]


class AgentStatusIn(StrictInput):
    status: ChosenStatus
    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=PRINTABLE,
        description='Why (required for "break": lunch, training…).',
    )


class AgentStatusOut(BaseModel):
    employee_id: uuid.UUID
    status: str = Field(description="Now: a chosen status, ringing, on_call, wrap_up, unreachable.")
    presence: str = Field(description="The status chosen; applies after the call when deferred.")
    reason: str | None
    since: datetime
    call_id: str | None
    deferred: bool = Field(description="Ringing or on a call: the change waits for it to end.")


class WaitingOut(BaseModel):
    call_id: str
    caller: str
    position: int | None = Field(description="1-based; null while their offer rings.")
    waited: float = Field(description="Seconds since they first joined (moves included).")
    priority: int
    offered: bool
    callback: bool = Field(description="Hung up and waits to be called back in their place.")


class LiveAgentOut(BaseModel):
    employee_id: uuid.UUID
    extension: str | None
    status: str
    reason: str | None
    since: datetime
    call_id: str | None
    level: int


class LiveQueueOut(BaseModel):
    name: str
    waiting: list[WaitingOut]
    agents: list[LiveAgentOut]


class LiveOut(BaseModel):
    queues: list[LiveQueueOut]


class IntervalOut(BaseModel):
    status: str
    reason: str | None
    start: datetime
    end: datetime


class StatusIntervalsOut(BaseModel):
    employee_id: uuid.UUID
    since: datetime
    until: datetime
    totals: dict[str, float] = Field(description="Seconds per status within the window.")
    intervals: list[IntervalOut] = Field(description="Clipped to the window, oldest first.")
    truncated: bool = Field(description="More intervals than listed (totals count them all).")


class MoveIn(StrictInput):
    queue: str | None = Field(default=None, pattern=QUEUE_KEY.pattern, description="Its name.")
    employee_id: uuid.UUID | None = Field(
        default=None, description="Instead of a queue: offer the caller to this employee now."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.queue is None) == (self.employee_id is None):
            raise ValueError("give either queue or employee_id")
        return self


class InterceptIn(StrictInput):
    employee_id: uuid.UUID | None = Field(
        default=None, description="Who takes the call; default: yourself (your user's employee)."
    )


class CallPlaceOut(BaseModel):
    call_id: str
    queue: str
    position: int | None = Field(description="null while an offer rings.")
    offered_to: list[uuid.UUID] = Field(description="Employees whose phones ring for it now.")


class TransferIn(StrictInput):
    to: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^\+?[0-9*#]+$",
        description="An extension or a phone number, as the agent would dial it.",
    )


class TransferOut(BaseModel):
    call_id: str
    to: str


class ParkedCallOut(BaseModel):
    slot: str = Field(description='The park slot, "*51" … "*59": dial it to take the call.')
    call_id: str
    caller: str = Field(description="Who waits: the caller, or the customer an employee dialled.")
    since: datetime
    parked_by: uuid.UUID | None = Field(description="The employee who parked the call.")


class ParkedOut(BaseModel):
    parked: list[ParkedCallOut] = Field(description="By slot.")


class ListenIn(StrictInput):
    employee_id: uuid.UUID | None = Field(
        default=None,
        description="Whose phones ring to listen; default: yourself (your user's employee).",
    )


class ListenOut(BaseModel):
    call_id: str
    listener_id: str = Field(description="The listening call's own id (it is not journaled).")
    employee_id: uuid.UUID
    phones: int = Field(description="Registered phones of the employee that ring now.")
