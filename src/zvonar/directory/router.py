"""HTTP endpoints of the directory: employees, groups, numbers (DIDs), SIP trunks.

Reads need ``directory.read``, writes ``directory.write`` (checked in the service). Another
account's id is a 404, like an id that never existed. Error codes beyond the generic ones:
``invalid_phone_number``, ``invalid_time_zone``, ``invalid_email``, ``invalid_host``,
``invalid_ip_network``, ``mobile_number_required``, ``password_required``,
``credentials_required``, ``allowed_sources_required``, ``srtp_needs_tls``,
``duplicate_member`` (422);
``extension_taken``, ``sip_username_taken``, ``group_name_taken``, ``number_taken``,
``trunk_name_taken``, ``trunk_in_use`` (409).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from zvonar.api.deps import AppContainer, CurrentPrincipal
from zvonar.api.pagination import Page, Paging, page_of, search_query
from zvonar.directory.phone import NumberKind
from zvonar.directory.schemas import (
    DndIn,
    DndOut,
    EmployeeCreatedOut,
    EmployeeIn,
    EmployeeOut,
    EmployeePatch,
    GroupIn,
    GroupOut,
    GroupPatch,
    MemberOut,
    MembersIn,
    NumberIn,
    NumberOut,
    NumberPatch,
    SipPasswordOut,
    TrunkIn,
    TrunkOut,
    TrunkPatch,
)
from zvonar.directory.service import EmployeeView, GroupView

router = APIRouter(tags=["directory"])

Search = Annotated[str | None, search_query("Case-insensitive substring.")]
ActiveFilter = Annotated[bool | None, Query(description="Only active (true) or inactive.")]


def _employee(v: EmployeeView) -> EmployeeOut:
    return EmployeeOut.of(v.employee, v.group_ids)


def _group(v: GroupView) -> GroupOut:
    return GroupOut(
        id=v.group.id,
        name=v.group.name,
        strategy=v.group.strategy,
        members=[MemberOut.model_validate(m) for m in v.members],
        created_at=v.group.created_at,
        updated_at=v.group.updated_at,
    )


# --- employees ------------------------------------------------------------------------------------


@router.get("/employees", response_model=Page[EmployeeOut])
async def list_employees(
    p: CurrentPrincipal,
    c: AppContainer,
    page: Paging,
    q: Search = None,
    group_id: uuid.UUID | None = None,
    active: ActiveFilter = None,
) -> Page[EmployeeOut]:
    found = await c.directory.list_employees(
        p, q=q, group_id=group_id, active=active, limit=page.limit, offset=page.offset
    )
    return page_of(found, page, _employee)


@router.post("/employees", response_model=EmployeeCreatedOut, status_code=201)
async def create_employee(
    body: EmployeeIn, p: CurrentPrincipal, c: AppContainer
) -> EmployeeCreatedOut:
    created = await c.directory.create_employee(p, body)
    out = _employee(created.view).model_dump()
    return EmployeeCreatedOut(**out, sip_password=created.generated_password)


@router.get("/employees/{employee_id}", response_model=EmployeeOut)
async def get_employee(employee_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> EmployeeOut:
    return _employee(await c.directory.get_employee(p, employee_id))


@router.patch("/employees/{employee_id}", response_model=EmployeeOut)
async def update_employee(
    employee_id: uuid.UUID, body: EmployeePatch, p: CurrentPrincipal, c: AppContainer
) -> EmployeeOut:
    return _employee(await c.directory.update_employee(p, employee_id, body))


@router.put("/employees/{employee_id}/dnd", response_model=DndOut)
async def set_employee_dnd(
    employee_id: uuid.UUID, body: DndIn, p: CurrentPrincipal, c: AppContainer
) -> DndOut:
    """Turn an employee's do not disturb on or off: admins for anybody, a user for their own
    employee (the one whose email is theirs), as ``*78``/``*79`` do from the phone."""
    return DndOut(
        employee_id=employee_id, dnd=await c.directory.set_dnd_as(p, employee_id, body.dnd)
    )


@router.post("/employees/{employee_id}/sip-password", response_model=SipPasswordOut)
async def reset_sip_password(
    employee_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer
) -> SipPasswordOut:
    username, password = await c.directory.reset_sip_password(p, employee_id)
    return SipPasswordOut(sip_username=username, sip_password=password)


@router.delete("/employees/{employee_id}", status_code=204)
async def delete_employee(employee_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> None:
    await c.directory.delete_employee(p, employee_id)


# --- groups ---------------------------------------------------------------------------------------


@router.get("/groups", response_model=Page[GroupOut])
async def list_groups(
    p: CurrentPrincipal, c: AppContainer, page: Paging, q: Search = None
) -> Page[GroupOut]:
    found = await c.directory.list_groups(p, q=q, limit=page.limit, offset=page.offset)
    return page_of(found, page, _group)


@router.post("/groups", response_model=GroupOut, status_code=201)
async def create_group(body: GroupIn, p: CurrentPrincipal, c: AppContainer) -> GroupOut:
    return _group(await c.directory.create_group(p, body))


@router.get("/groups/{group_id}", response_model=GroupOut)
async def get_group(group_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> GroupOut:
    return _group(await c.directory.get_group(p, group_id))


@router.patch("/groups/{group_id}", response_model=GroupOut)
async def update_group(
    group_id: uuid.UUID, body: GroupPatch, p: CurrentPrincipal, c: AppContainer
) -> GroupOut:
    return _group(await c.directory.update_group(p, group_id, body))


@router.delete("/groups/{group_id}", status_code=204)
async def delete_group(group_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> None:
    await c.directory.delete_group(p, group_id)


@router.get("/groups/{group_id}/members", response_model=list[MemberOut])
async def get_members(group_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> list[MemberOut]:
    return _group(await c.directory.get_group(p, group_id)).members


@router.put("/groups/{group_id}/members", response_model=list[MemberOut])
async def set_members(
    group_id: uuid.UUID, body: MembersIn, p: CurrentPrincipal, c: AppContainer
) -> list[MemberOut]:
    """Replace the members; the list order is the ringing order."""
    return _group(await c.directory.set_members(p, group_id, body.members)).members


# --- numbers --------------------------------------------------------------------------------------


@router.get("/numbers", response_model=Page[NumberOut])
async def list_numbers(
    p: CurrentPrincipal,
    c: AppContainer,
    page: Paging,
    q: Search = None,
    kind: NumberKind | None = None,
    trunk_id: uuid.UUID | None = None,
    active: ActiveFilter = None,
) -> Page[NumberOut]:
    found = await c.directory.list_numbers(
        p, q=q, kind=kind, trunk_id=trunk_id, active=active, limit=page.limit, offset=page.offset
    )
    return page_of(found, page, NumberOut.model_validate)


@router.post("/numbers", response_model=NumberOut, status_code=201)
async def add_number(body: NumberIn, p: CurrentPrincipal, c: AppContainer) -> NumberOut:
    return NumberOut.model_validate(await c.directory.add_number(p, body))


@router.get("/numbers/{number_id}", response_model=NumberOut)
async def get_number(number_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> NumberOut:
    return NumberOut.model_validate(await c.directory.get_number(p, number_id))


@router.patch("/numbers/{number_id}", response_model=NumberOut)
async def update_number(
    number_id: uuid.UUID, body: NumberPatch, p: CurrentPrincipal, c: AppContainer
) -> NumberOut:
    return NumberOut.model_validate(await c.directory.update_number(p, number_id, body))


@router.delete("/numbers/{number_id}", status_code=204)
async def remove_number(number_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> None:
    await c.directory.remove_number(p, number_id)


# --- trunks ---------------------------------------------------------------------------------------


@router.get("/trunks", response_model=Page[TrunkOut])
async def list_trunks(
    p: CurrentPrincipal,
    c: AppContainer,
    page: Paging,
    q: Search = None,
    active: ActiveFilter = None,
) -> Page[TrunkOut]:
    found = await c.directory.list_trunks(
        p, q=q, active=active, limit=page.limit, offset=page.offset
    )
    return page_of(found, page, TrunkOut.model_validate)


@router.post("/trunks", response_model=TrunkOut, status_code=201)
async def create_trunk(body: TrunkIn, p: CurrentPrincipal, c: AppContainer) -> TrunkOut:
    return TrunkOut.model_validate(await c.directory.create_trunk(p, body))


@router.get("/trunks/{trunk_id}", response_model=TrunkOut)
async def get_trunk(trunk_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> TrunkOut:
    return TrunkOut.model_validate(await c.directory.get_trunk(p, trunk_id))


@router.patch("/trunks/{trunk_id}", response_model=TrunkOut)
async def update_trunk(
    trunk_id: uuid.UUID, body: TrunkPatch, p: CurrentPrincipal, c: AppContainer
) -> TrunkOut:
    return TrunkOut.model_validate(await c.directory.update_trunk(p, trunk_id, body))


@router.delete("/trunks/{trunk_id}", status_code=204)
async def delete_trunk(trunk_id: uuid.UUID, p: CurrentPrincipal, c: AppContainer) -> None:
    await c.directory.delete_trunk(p, trunk_id)
