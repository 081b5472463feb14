"""Offset pagination and the free-text filter shared by list endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from zvonar.core.schemas import PRINTABLE

T = TypeVar("T")
X = TypeVar("X")
X_co = TypeVar("X_co", covariant=True)


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


Paging = Annotated[PageParams, Depends(page_params)]


def search_query(description: str) -> Any:
    """A list endpoint's ``q``: 1–100 printable characters; what it matches is ``description``."""
    return Query(min_length=1, max_length=100, pattern=PRINTABLE, description=description)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Found(Protocol[X_co]):
    """What a service's list method returns: one page of rows and the total matching."""

    @property
    def items(self) -> Sequence[X_co]: ...

    @property
    def total(self) -> int: ...


def page_of(found: Found[X], page: PageParams, out: Callable[[X], T]) -> Page[T]:
    """The response page: each row through ``out``, with the request's limit and offset."""
    return Page(
        items=[out(x) for x in found.items], total=found.total, limit=page.limit, offset=page.offset
    )
