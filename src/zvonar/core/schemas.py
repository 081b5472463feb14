"""Pydantic bases and field types every slice's API shapes build on.

Inputs forbid unknown fields so typos fail loudly. Schemas check form (lengths, patterns, ranges:
failures are ``validation_error``); services check meaning. They live here rather than in
``zvonar.api`` because services take the input models, and domain code never imports the HTTP
layer (the import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "PRINTABLE",
    "EmailText",
    "Name",
    "Output",
    "PatchInput",
    "PhoneText",
    "ShortName",
    "StrictInput",
]

# No control characters: they have no business in names and PostgreSQL refuses NUL in text.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

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
