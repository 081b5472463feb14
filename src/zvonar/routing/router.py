"""HTTP endpoints of routing: forwarding schemes, the scheme of each number, the calendar.

Error codes beyond the generic ones: ``invalid_scheme``, ``empty_scheme``, ``too_deep``,
``unknown_scheme``, ``goto_cycle``, ``unknown_reference``, ``invalid_calendar``,
``invalid_country`` (422, with ``details.path``); ``scheme_name_taken``, ``scheme_in_use`` (409).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from zvonar.accounts.access import Perm
from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.api.pagination import Page, Paging, page_of, search_query
from zvonar.core.schemas import checked_instant
from zvonar.integrations.signing import DEFAULT_TOLERANCE, SIGNATURE_HEADER, route_secret
from zvonar.routing.models import SchemeRow
from zvonar.routing.schedule import WorkCalendar, calendar_to_dict
from zvonar.routing.schemas import (
    AssignmentIn,
    AssignmentOut,
    BranchOut,
    CalendarIn,
    CalendarOut,
    HttpRouteOut,
    SchemeIn,
    SchemeOut,
    SpecialDayOut,
    SpecialDaysOut,
)
from zvonar.routing.service import AssignmentView, RoutingService

router = APIRouter(tags=["routing"])


def _svc(c: AppContainer) -> RoutingService:
    return c.routing


Service = Annotated[RoutingService, Depends(_svc)]


def _scheme(row: SchemeRow) -> SchemeOut:
    return SchemeOut(
        id=row.id,
        name=row.name,
        branches=row.definition["branches"],
        final=row.definition.get("final"),
        rating=bool(row.definition.get("rating", False)),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _calendar(cal: WorkCalendar) -> CalendarOut:
    # ``country`` is passed only when the calendar names one: left unset, the answer leaves it
    # out (``response_model_exclude_unset``), as a PUT or a config file leaves it out.
    return CalendarOut(
        time_zone=cal.tz, effective_country=cal.holidays.country, **calendar_to_dict(cal)
    )


def _assignment(v: AssignmentView) -> AssignmentOut:
    return AssignmentOut(number_id=v.number_id, e164=v.e164, scheme_id=v.scheme_id)


@router.get("/schemes", response_model=Page[SchemeOut])
async def list_schemes(
    p: CurrentPrincipal,
    svc: Service,
    page: Paging,
    q: Annotated[str | None, search_query("Scheme name contains.")] = None,
) -> Page[SchemeOut]:
    found = await svc.list_schemes(p, q=q, limit=page.limit, offset=page.offset)
    return page_of(found, page, _scheme)


@router.post("/schemes", response_model=SchemeOut, status_code=201)
async def create_scheme(body: SchemeIn, p: CurrentPrincipal, svc: Service) -> SchemeOut:
    return _scheme(await svc.create_scheme(p, body.name, body.definition()))


@router.get("/schemes/{scheme_id}", response_model=SchemeOut)
async def get_scheme(scheme_id: uuid.UUID, p: CurrentPrincipal, svc: Service) -> SchemeOut:
    return _scheme(await svc.get_scheme(p, scheme_id))


@router.put("/schemes/{scheme_id}", response_model=SchemeOut)
async def replace_scheme(
    scheme_id: uuid.UUID, body: SchemeIn, p: CurrentPrincipal, svc: Service
) -> SchemeOut:
    return _scheme(await svc.replace_scheme(p, scheme_id, body.name, body.definition()))


@router.delete("/schemes/{scheme_id}", status_code=204)
async def delete_scheme(scheme_id: uuid.UUID, p: CurrentPrincipal, svc: Service) -> None:
    await svc.delete_scheme(p, scheme_id)


@router.get("/numbers/{number_id}/scheme", response_model=AssignmentOut)
async def get_number_scheme(
    number_id: uuid.UUID, p: CurrentPrincipal, svc: Service
) -> AssignmentOut:
    return _assignment(await svc.get_assignment(p, number_id))


@router.put("/numbers/{number_id}/scheme", response_model=AssignmentOut)
async def set_number_scheme(
    number_id: uuid.UUID, body: AssignmentIn, p: CurrentPrincipal, svc: Service
) -> AssignmentOut:
    return _assignment(await svc.assign(p, number_id, body.scheme_id))


@router.get("/routing/http-route", response_model=HttpRouteOut)
async def http_route(p: CurrentPrincipal, c: AppContainer) -> HttpRouteOut:
    """How the account's HTTP route requests are signed, with the key to check them
    (``routing.write``: whoever may point a scheme at a URL)."""
    p.require(Perm.routing_write)
    return HttpRouteOut(
        secret=route_secret(c.settings.effective_secret_key, p.account_id),
        signature_header=SIGNATURE_HEADER,
        signature="t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + '.' + raw body)>",
        tolerance_seconds=DEFAULT_TOLERANCE,
    )


@router.get("/calendar", response_model=CalendarOut, response_model_exclude_unset=True)
async def get_calendar(p: CurrentPrincipal, svc: Service) -> CalendarOut:
    return _calendar(await svc.get_calendar(p))


@router.put("/calendar", response_model=CalendarOut, response_model_exclude_unset=True)
async def set_calendar(body: CalendarIn, p: CurrentPrincipal, svc: Service) -> CalendarOut:
    """Replace the calendar; ``country`` omitted means the account's, null means none."""
    return _calendar(await svc.set_calendar(p, body.model_dump(exclude_unset=True)))


@router.get("/calendar/days", response_model=SpecialDaysOut)
async def special_days_of(
    p: CurrentPrincipal,
    svc: Service,
    year: Annotated[int | None, Query(ge=1, le=9998, description="Default: this year.")] = None,
) -> SpecialDaysOut:
    """The days of ``year`` the calendar treats other than its week does: public holidays,
    weekend days worked by decree, and the account's own days off, working days and custom
    hours, each with the hours in force that day; holidays named in the account's language."""
    cal, when, days = await svc.special_days(p, year)
    return SpecialDaysOut(
        year=when,
        country=cal.holidays.country,
        days=[
            SpecialDayOut(
                day=d.day,
                kind=d.kind,
                source=d.source,
                name=d.name,
                hours=[str(r) for r in d.hours],
            )
            for d in days
        ],
    )


@router.get("/calendar/branch", response_model=BranchOut)
async def branch_at(
    p: CurrentPrincipal, svc: Service, at: Annotated[datetime, Query()]
) -> BranchOut:
    """Which schedule branch is in force at ``at`` (an ISO instant with offset)."""
    checked_instant(at, code="invalid_instant")
    return BranchOut(at=at, branch=(await svc.branch_at(p, at)).value)
