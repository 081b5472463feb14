"""API shapes of the ACD slice."""

from __future__ import annotations

from zvonar.core.schemas import Output


class QueueSummaryOut(Output):
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
