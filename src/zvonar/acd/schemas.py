"""API shapes of the ACD slice."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class QueueSummaryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
