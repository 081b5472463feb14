"""API shapes of the ACD slice."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from zvonar.acd.definitions import (
    DAY,
    EXTENSION,
    MAX_ANNOUNCE_INTERVAL,
    MAX_LENGTH,
    MAX_LEVEL,
    MAX_MEMBERS,
    MAX_NO_ANSWER,
    MAX_RING_TIMEOUT,
    MAX_TAGS,
    MAX_WRAPUP,
    MIN_ANNOUNCE_INTERVAL,
    PROMPT_KEY,
    QUEUE_KEY,
    TAG,
)
from zvonar.acd.queue import Strategy
from zvonar.core.schemas import Name, Output, PatchInput, StrictInput


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


# --- queue definitions (zvonar.acd.definitions checks meaning and gives error paths) ----------

Seconds = Annotated[float, Field(ge=0, le=DAY)]
Digit = Annotated[str, Field(pattern=r"^[0-9*#]$", description="One of 0–9, * or #.")]
PromptKey = Annotated[str, Field(pattern=PROMPT_KEY.pattern, description="A prompt key.")]
Tag = Annotated[str, Field(min_length=1, max_length=32, pattern=TAG.pattern)]


class QueueMemberIn(StrictInput):
    extension: str = Field(pattern=EXTENSION.pattern, description="An employee's extension.")
    level: int = Field(default=1, ge=1, le=MAX_LEVEL, description="1 is offered calls first.")


class QueueIn(StrictInput):
    name: str = Field(pattern=QUEUE_KEY.pattern, description="The key schemes use.")
    title: Name | None = Field(default=None, description="Display name.")
    strategy: Strategy = Strategy.round_robin
    members: list[QueueMemberIn] = Field(
        default_factory=list, max_length=MAX_MEMBERS, description='Listed in "in turn" order.'
    )
    escalation: dict[int, Seconds] = Field(
        default_factory=dict,
        description="Level (2–9) → seconds the head caller waits before that level is offered.",
    )
    max_wait: float | None = Field(
        default=None, ge=1, le=DAY, description="Then the queue step's overflow steps."
    )
    max_length: int | None = Field(default=None, ge=0, le=MAX_LENGTH)
    wrapup_seconds: float = Field(default=10.0, ge=0, le=MAX_WRAPUP)
    respect_wrapup: bool = True
    ring_timeout: float = Field(
        default=15.0, ge=1, le=MAX_RING_TIMEOUT, description="Seconds one offer rings an agent."
    )
    max_no_answer: int = Field(
        default=3, ge=0, le=MAX_NO_ANSWER, description='Missed offers in a row, then "away".'
    )
    hold_music: PromptKey | None = Field(default=None, description="null: the built-in melody.")
    announce_prompt: PromptKey | None = None
    agent_announce: PromptKey | None = Field(
        default=None, description="Played to the agent who answers, before the caller."
    )
    announce_interval: float | None = Field(
        default=None, ge=MIN_ANNOUNCE_INTERVAL, le=MAX_ANNOUNCE_INTERVAL
    )
    announce_position: bool = Field(
        default=False, description="Also say the caller's position and the estimated wait."
    )
    exit_digit: Digit | None = None
    callback_digit: Digit | None = None
    vip_tags: list[Tag] = Field(
        default_factory=lambda: ["vip"],
        max_length=MAX_TAGS,
        description="Callers whose contact carries one of these tags get priority.",
    )


class QueuePatch(PatchInput):
    """Only the fields sent change; null puts a field back to its default."""

    NOT_NULL = frozenset({"name"})

    name: str | None = Field(default=None, pattern=QUEUE_KEY.pattern)
    title: Name | None = None
    strategy: Strategy | None = None
    members: list[QueueMemberIn] | None = Field(default=None, max_length=MAX_MEMBERS)
    escalation: dict[int, Seconds] | None = None
    max_wait: float | None = Field(default=None, ge=1, le=DAY)
    max_length: int | None = Field(default=None, ge=0, le=MAX_LENGTH)
    wrapup_seconds: float | None = Field(default=None, ge=0, le=MAX_WRAPUP)
    respect_wrapup: bool | None = None
    ring_timeout: float | None = Field(default=None, ge=1, le=MAX_RING_TIMEOUT)
    max_no_answer: int | None = Field(default=None, ge=0, le=MAX_NO_ANSWER)
    hold_music: PromptKey | None = None
    announce_prompt: PromptKey | None = None
    agent_announce: PromptKey | None = Field(
        default=None, description="Played to the agent who answers, before the caller."
    )
    announce_interval: float | None = Field(
        default=None, ge=MIN_ANNOUNCE_INTERVAL, le=MAX_ANNOUNCE_INTERVAL
    )
    announce_position: bool | None = None
    exit_digit: Digit | None = None
    callback_digit: Digit | None = None
    vip_tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)


class QueueMemberOut(BaseModel):
    extension: str
    level: int


class QueueOut(BaseModel):
    id: uuid.UUID
    name: str
    title: str | None
    strategy: Strategy
    members: list[QueueMemberOut]
    escalation: dict[int, float]
    max_wait: float | None
    max_length: int | None
    wrapup_seconds: float
    respect_wrapup: bool
    ring_timeout: float
    max_no_answer: int
    hold_music: str | None
    announce_prompt: str | None
    agent_announce: str | None
    announce_interval: float | None
    announce_position: bool
    exit_digit: str | None
    callback_digit: str | None
    vip_tags: list[str]
    created_at: datetime
    updated_at: datetime
