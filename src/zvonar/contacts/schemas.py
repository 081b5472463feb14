"""API shapes of the contacts slice (on :mod:`zvonar.core.schemas`, like every slice's: inputs
forbid unknown fields; schemas check form, the service checks meaning)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from zvonar.core.schemas import (
    EmailText,
    Name,
    Output,
    PatchInput,
    PhoneText,
    ShortName,
    StrictInput,
)

MAX_TAGS = 20
MAX_NUMBERS = 10
# Letters (any script), digits, "_" and "-"; stored lower-cased.
Tag = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[\w-]+$")]
# Notes may hold line breaks and tabs, but no other control characters.
Notes = Annotated[str, Field(max_length=4000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]


_MANAGER = (
    "The employee who looks after this customer: a scheme's ring step with the target"
    " {manager: contact} rings them when the customer calls."
)


class ContactIn(StrictInput):
    name: Name
    company: Name | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    city: ShortName | None = None
    numbers: list[PhoneText] = Field(
        default_factory=list,
        max_length=MAX_NUMBERS,
        description="Read with the account's country; stored as E.164.",
    )
    email: EmailText | None = None
    notes: Notes | None = None
    external_id: ShortName | None = Field(default=None, description="Your CRM's id.")
    manager_id: uuid.UUID | None = Field(default=None, description=_MANAGER)


class ContactPatch(PatchInput):
    NOT_NULL = frozenset({"name", "tags", "numbers"})

    name: Name | None = None
    company: Name | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    city: ShortName | None = None
    numbers: list[PhoneText] | None = Field(default=None, max_length=MAX_NUMBERS)
    email: EmailText | None = None
    notes: Notes | None = None
    external_id: ShortName | None = None
    manager_id: uuid.UUID | None = Field(default=None, description=_MANAGER)


class ContactOut(Output):
    id: uuid.UUID
    name: str
    company: str | None
    tags: list[str]
    city: str | None
    numbers: list[str]
    email: str | None
    notes: str | None
    external_id: str | None
    manager_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class ImportRowError(BaseModel):
    row: int = Field(description="1-based line of the CSV (the header is line 1).")
    code: str
    message: str


class ImportMergedRow(BaseModel):
    row: int = Field(description="1-based line of the CSV (the header is line 1).")
    into_row: int = Field(
        description="The earlier line of the same file whose contact this row updated again."
    )


class ImportOut(BaseModel):
    """Every data row is counted once: created + updated + merged + failed."""

    created: int
    updated: int = Field(description="Rows that updated a contact stored before the import.")
    merged: int = Field(
        description=(
            "Rows for a contact an earlier row of the same file created or updated: merged"
            " into it, their non-empty cells overwriting."
        )
    )
    failed: int
    merged_rows: list[ImportMergedRow] = Field(description="The first 1,000 merged rows.")
    merged_rows_truncated: bool = Field(description="More rows merged than are listed.")
    errors: list[ImportRowError]
    errors_truncated: bool = Field(description="More rows failed than are listed.")
