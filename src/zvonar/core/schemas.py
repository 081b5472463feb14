"""Pydantic bases and field types every slice's API shapes build on.

Inputs forbid unknown fields so typos fail loudly. Schemas check form (lengths, patterns, ranges:
failures are ``validation_error``); services check meaning. They live here rather than in
``zvonar.api`` because services take the input models, and domain code never imports the HTTP
layer (the import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from zvonar.core.errors import InvalidInput

__all__ = [
    "PRINTABLE",
    "DayOrDateTime",
    "DayOrInstant",
    "EmailText",
    "Instant",
    "Name",
    "Output",
    "PatchInput",
    "PhoneText",
    "ShortName",
    "StrictInput",
    "bound_instant",
    "checked_instant",
    "is_email",
    "utc_instant",
]

# No control characters: they have no business in names and PostgreSQL refuses NUL in text.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
# A prompt's key (uploaded prompts, built-in ones, and the steps that name them).
PROMPT_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]
ShortName = Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
PhoneText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        pattern=PRINTABLE,
        description="E.164 or national format (read with the account's country).",
    ),
]
EmailText = Annotated[str, Field(min_length=3, max_length=254, pattern=PRINTABLE)]
# local@domain.tld with no spaces and no control characters: what a mail server takes, and
# what PostgreSQL can store (it refuses NUL). Every slice checks addresses with this one.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")


def is_email(value: str) -> bool:
    return _EMAIL.match(value) is not None


def utc_instant(value: datetime) -> datetime:
    """``value`` as a UTC instant; ``ValueError`` when it has no offset or lies outside what
    UTC can hold. A wall-clock time alone names no instant (whose clock?), and the columns
    compare instants: without this a naive or out-of-range value fails in the database."""
    if value.utcoffset() is None:
        raise ValueError("give the instant with its UTC offset, e.g. 2026-12-01T09:00:00+03:00")
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant is out of range") from None
    # Kept two days inside what datetime holds: it is seen later on an account's clock (up to
    # 14 h away) and its day before and after are looked at (the schedule's overnight hours).
    if not _EARLIEST <= instant <= _LATEST:
        raise ValueError("the instant is out of range")
    return instant


_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)


Instant = Annotated[datetime, AfterValidator(utc_instant)]


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)
_FIRST_DAY = date.min + timedelta(days=4)
_LAST_DAY = date.max - timedelta(days=4)


def day_in_range(day: date) -> bool:
    """Whether ``day``'s midnight and the next one are instants on any clock (UTC-12 to
    UTC+14): the days a filter may name."""
    return _FIRST_DAY <= day <= _LAST_DAY


def _day_or(value: object, times: TypeAdapter[datetime]) -> date | datetime:
    # A plain validator, not a union: pydantic's lax ``date`` would take a naive midnight
    # ("2026-12-01T00:00:00") for a day, and a naive time must stay a refusal.
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise ValueError("not a calendar day, e.g. 2026-12-01") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        # Its midnight and the next one stay instants on any clock (UTC-12 to UTC+14).
        if not day_in_range(value):
            raise ValueError("the day is out of range")
        return value
    try:
        return times.validate_python(value)
    except ValidationError as e:
        raise ValueError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None


_DAY_OR_INSTANT_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
)
DayOrInstant = Annotated[
    date | datetime,
    PlainValidator(lambda v: _day_or(v, _INSTANT)),
    _DAY_OR_INSTANT_SCHEMA,
]
"""A bound of a time range that people type: an instant with its offset, or a plain day
(``2026-12-01``) that :func:`bound_instant` reads on the account's clock."""

DayOrDateTime = Annotated[
    date | datetime,
    PlainValidator(lambda v: _day_or(v, _DATETIME)),
    _DAY_OR_INSTANT_SCHEMA,
]
""":data:`DayOrInstant` for a handler that checks the instant itself (``checked_instant``),
keeping the stable error code it had before ``Instant``."""


def bound_instant(value: date | datetime, zone: tzinfo, *, end: bool = False) -> datetime:
    """A :data:`DayOrInstant` as a UTC instant. A day is its midnight on ``zone``'s clock; as
    the ``end`` of a range (exclusive) the next midnight, so the day is included: from
    2026-12-01 to 2026-12-07 is the whole week. An hour the clock skips at midnight (a
    daylight-saving change) is read as ``zoneinfo`` reads it."""
    if isinstance(value, datetime):
        return value
    day = value + timedelta(days=1) if end else value
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def checked_instant(value: datetime, *, code: str | None = None) -> datetime:
    """``utc_instant`` for an input whose refusal has its own stable code (``InvalidInput``;
    ``invalid_input`` unless ``code`` says otherwise), older than ``Instant``'s."""
    try:
        return utc_instant(value)
    except ValueError as e:
        raise InvalidInput(str(e), code=code) from None


class StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PatchInput(StrictInput):
    """A partial update: only the fields sent change. ``NOT_NULL`` fields may be omitted but not
    set to null; the others accept null to clear them."""

    NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in sorted(self.NOT_NULL & self.model_fields_set):
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)
