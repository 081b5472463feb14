"""API shapes of the routing slice. The scheme body is checked by ``scheme_codec`` (its errors
carry the path inside the definition); these models only fix the envelope."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from zvonar.core.schemas import ShortName, StrictInput
from zvonar.routing.schedule import DayKind


class SchemeIn(StrictInput):
    name: ShortName
    branches: dict[str, list[dict[str, Any]]] = Field(
        description="working / off / holiday → steps (see the scheme format)."
    )
    final: dict[str, Any] | None = Field(default=None, description="voicemail (default) or hangup")
    rating: bool = Field(
        default=False,
        strict=True,  # true or false, as config files must: "yes" is not a boolean
        description="Ask the caller to rate (1-5) a call a step connected.",
    )

    def definition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"branches": self.branches}
        if self.final is not None:
            out["final"] = self.final
        if self.rating:
            out["rating"] = True
        return out


class SchemeOut(BaseModel):
    id: uuid.UUID
    name: str
    branches: dict[str, list[dict[str, Any]]]
    final: dict[str, Any] | None = None
    rating: bool = False
    created_at: datetime
    updated_at: datetime


class AssignmentIn(StrictInput):
    scheme_id: uuid.UUID | None = Field(description="null: the number has no scheme.")


class AssignmentOut(BaseModel):
    number_id: uuid.UUID
    e164: str
    scheme_id: uuid.UUID | None


TimeRangeText = Annotated[str, Field(min_length=3, max_length=20)]
DateText = Annotated[str, Field(min_length=10, max_length=10)]


class CalendarIn(StrictInput):
    hours: dict[str, list[TimeRangeText]] | None = Field(
        default=None, description="mon..sun → ['09:00-18:00', …]; omitted: Mon–Fri 09–18."
    )
    country: str | None = Field(
        default=None,
        description="Whose public holidays; omitted: the account's, whatever it is then; "
        "null: none.",
    )
    extra_days_off: list[DateText] = Field(default_factory=list, max_length=400)
    working_days: list[DateText] = Field(default_factory=list, max_length=400)
    custom_hours: dict[DateText, list[TimeRangeText]] = Field(default_factory=dict)


class CalendarOut(BaseModel):
    """Answered without the unset fields: ``country`` is there only when the calendar names
    one (or null: none); absent, the calendar follows the account's country."""

    time_zone: str
    hours: dict[str, list[str]]
    country: str | None = Field(
        default=None,
        description="Set on the calendar (null: no public holidays); absent: the account's.",
    )
    effective_country: str | None = Field(
        description="Whose public holidays apply now: ``country``, else the account's."
    )
    extra_days_off: list[str]
    working_days: list[str]
    custom_hours: dict[str, list[str]]


class SpecialDayOut(BaseModel):
    day: date
    kind: DayKind = Field(
        description="holiday: no hours; working: worked although a weekend day or a holiday; "
        "custom: hours of its own."
    )
    source: str = Field(description="country: the public calendar; account: the overrides.")
    name: str | None = Field(description="The public holiday's name, when it is one.")
    hours: list[str] = Field(description="The hours in force that day (empty: closed).")


class SpecialDaysOut(BaseModel):
    year: int
    country: str | None = Field(description="Whose public holidays (null: none).")
    days: list[SpecialDayOut]


class BranchOut(BaseModel):
    at: datetime
    branch: str


class HttpRouteOut(BaseModel):
    """What a back office needs to check that a route request came from us."""

    secret: str = Field(description="HMAC-SHA256 key of the account's route requests (hex text)")
    signature_header: str = Field(description="The header carrying the signature")
    signature: str = Field(description="How the header's value is made")
    tolerance_seconds: int = Field(description="Refuse a request whose t is older than this")
