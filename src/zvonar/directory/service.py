"""The directory service: principal-scoped reads and writes of employees, groups, numbers and
trunks. Writes go through :class:`~zvonar.directory.writer.DirectoryWriter` in one unit of work
each; every query filters by the principal's account, so another tenant's id is "not found".
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.accounts.access import Perm, Principal
from zvonar.accounts.models import User
from zvonar.core.errors import NotFound, PermissionDenied
from zvonar.directory.models import Employee, Group, GroupMember, Number, Trunk
from zvonar.directory.phone import NumberKind
from zvonar.directory.schemas import (
    EmployeeIn,
    EmployeePatch,
    GroupIn,
    GroupPatch,
    MemberIn,
    NumberIn,
    NumberPatch,
    TrunkIn,
    TrunkPatch,
)
from zvonar.directory.writer import DirectoryWriter
from zvonar.store.db import Database, UnitOfWork

T = TypeVar("T")
M = TypeVar("M", Employee, Group, Number, Trunk)


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of a list and the total matching the filters."""

    items: list[T]
    total: int


@dataclass(frozen=True)
class EmployeeView:
    employee: Employee
    group_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class CreatedEmployee:
    """Returned once at creation: ``generated_password`` is never stored and cannot be shown
    again (only its digest HA1s are kept)."""

    view: EmployeeView
    generated_password: str | None


@dataclass(frozen=True)
class MemberView:
    employee_id: uuid.UUID
    extension: str
    name: str
    position: int
    weight: int


@dataclass(frozen=True)
class GroupView:
    group: Group
    members: tuple[MemberView, ...]


async def _owned(
    s: AsyncSession, model: Any, obj_id: uuid.UUID, account_id: uuid.UUID, what: str
) -> None:
    found = await s.scalar(
        select(model.id).where(model.id == obj_id, model.account_id == account_id)
    )
    if found is None:
        raise NotFound(f"{what} not found")


async def _scoped(
    s: AsyncSession, model: type[M], obj_id: uuid.UUID, account_id: uuid.UUID, what: str
) -> M:
    """The account's ``model`` row ``obj_id``; another tenant's id is "not found" too."""
    obj = await s.scalar(select(model).where(model.id == obj_id, model.account_id == account_id))
    if obj is None:
        raise NotFound(f"{what} not found")
    return obj


async def _page(
    s: AsyncSession, stmt: Select[T], order: Sequence[Any], limit: int, offset: int
) -> Listing[T]:
    total = await s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = await s.scalars(stmt.order_by(*order).limit(limit).offset(offset))
    return Listing(items=list(rows), total=int(total or 0))


async def group_ids_of(
    s: AsyncSession, employee_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, ...]]:
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if employee_ids:
        rows = await s.execute(
            select(GroupMember.employee_id, GroupMember.group_id)
            .join(Group, Group.id == GroupMember.group_id)
            .where(GroupMember.employee_id.in_(employee_ids))
            .order_by(Group.name)
        )
        for emp_id, group_id in rows:
            out[emp_id].append(group_id)
    return {k: tuple(v) for k, v in out.items()}


async def members_of(
    s: AsyncSession, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[MemberView, ...]]:
    out: dict[uuid.UUID, list[MemberView]] = defaultdict(list)
    if group_ids:
        rows = await s.execute(
            select(
                GroupMember.group_id,
                GroupMember.employee_id,
                GroupMember.weight,
                Employee.extension,
                Employee.name,
            )
            .join(Employee, Employee.id == GroupMember.employee_id)
            .where(GroupMember.group_id.in_(group_ids))
            .order_by(GroupMember.group_id, GroupMember.position)
        )
        for group_id, emp_id, weight, extension, name in rows:
            members = out[group_id]
            members.append(
                MemberView(
                    employee_id=emp_id,
                    extension=extension,
                    name=name,
                    position=len(members) + 1,
                    weight=weight,
                )
            )
    return {k: tuple(v) for k, v in out.items()}


# What another slice checks around a directory write, in its unit of work: called before the
# write, it returns the check to run after it (which raises to refuse the write). The
# composition root wires them (routing's scheme references), so the directory imports no
# slice that builds on it.
ReferenceGuard = Callable[[UnitOfWork, uuid.UUID], Awaitable[Callable[[], Awaitable[None]]]]


class DirectoryService:
    def __init__(self, db: Database, guards: Sequence[ReferenceGuard] = ()) -> None:
        self.db = db
        self.guards = tuple(guards)

    @asynccontextmanager
    async def _writing(
        self, p: Principal, *, guarded: bool = False
    ) -> AsyncIterator[DirectoryWriter]:
        """``p`` may write; one unit of work with the account's writer. ``guarded``: the
        write can rename or remove what others name (an extension, a group), so the guards'
        checks run once it is done; the other writes skip their reads."""
        p.require(Perm.directory_write)
        async with self.db.unit_of_work() as uow:
            checks = [await g(uow, p.account_id) for g in self.guards] if guarded else []
            yield await DirectoryWriter.open(uow, p.account_id)
            for check in checks:
                await check()

    # --- employees ------------------------------------------------------------------------------
    async def list_employees(
        self,
        p: Principal,
        *,
        q: str | None = None,
        group_id: uuid.UUID | None = None,
        active: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Listing[EmployeeView]:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            stmt = select(Employee).where(Employee.account_id == p.account_id)
            if group_id is not None:
                await _owned(s, Group, group_id, p.account_id, "group")
                stmt = stmt.where(
                    Employee.id.in_(
                        select(GroupMember.employee_id).where(GroupMember.group_id == group_id)
                    )
                )
            if active is not None:
                stmt = stmt.where(Employee.active.is_(active))
            if q:
                stmt = stmt.where(
                    or_(
                        Employee.name_folded.contains(q.casefold(), autoescape=True),
                        Employee.extension.contains(q, autoescape=True),
                        Employee.email.contains(q.lower(), autoescape=True),
                    )
                )
            order = (func.length(Employee.extension), Employee.extension)
            page = await _page(s, stmt, order, limit, offset)
            groups = await group_ids_of(s, [e.id for e in page.items])
        return Listing(
            items=[EmployeeView(e, groups.get(e.id, ())) for e in page.items], total=page.total
        )

    async def get_employee(self, p: Principal, employee_id: uuid.UUID) -> EmployeeView:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            emp = await _scoped(s, Employee, employee_id, p.account_id, "employee")
            groups = await group_ids_of(s, [emp.id])
        return EmployeeView(emp, groups.get(emp.id, ()))

    async def create_employee(self, p: Principal, data: EmployeeIn) -> CreatedEmployee:
        async with self._writing(p) as w:
            emp, generated = await w.create_employee(data, generate_password=True)
        return CreatedEmployee(EmployeeView(emp, ()), generated)

    async def update_employee(
        self, p: Principal, employee_id: uuid.UUID, patch: EmployeePatch
    ) -> EmployeeView:
        async with self._writing(p, guarded=True) as w:
            emp = await w.employee(employee_id)
            await w.update_employee(emp, patch)
            groups = await group_ids_of(w.session, [emp.id])
        return EmployeeView(emp, groups.get(emp.id, ()))

    async def set_dnd(
        self,
        account_id: uuid.UUID,
        on: bool | None,
        *,
        employee_id: uuid.UUID | None = None,
        sip_username: str | None = None,
    ) -> bool | None:
        """Turn an active employee's do not disturb on or off (``on`` None: the other way
        round), for callers that authorized it themselves: the employee's own phone (it
        passed SIP digest as ``sip_username``: the ``*78``/``*79``/``*76`` codes) or the
        ACD's agent status (the agent or a supervisor). Returns the setting now; None when
        the account has no such active employee."""
        if (employee_id is None) == (sip_username is None):
            raise ValueError("name the employee by id or by SIP username")
        async with self.db.unit_of_work() as uow:
            w = await DirectoryWriter.open(uow, account_id)
            who = (
                Employee.id == employee_id
                if employee_id is not None
                else Employee.sip_username == sip_username
            )
            emp = await uow.session.scalar(
                select(Employee).where(
                    Employee.account_id == account_id, Employee.active.is_(True), who
                )
            )
            if emp is None:
                return None
            now = not emp.dnd if on is None else on
            await w.update_employee(emp, EmployeePatch(dnd=now))
        return now

    async def own_employee(self, p: Principal) -> uuid.UUID | None:
        """The active employee ``p``'s user is (their email is the user's); None when there
        is none, or two share the email (then nobody's)."""
        if p.user_id is None:
            return None
        async with self.db.read() as s:
            found = (
                await s.scalars(
                    select(Employee.id)
                    .join(User, func.lower(User.email) == func.lower(Employee.email))
                    .where(
                        User.id == p.user_id,
                        User.account_id == p.account_id,
                        Employee.account_id == p.account_id,
                        Employee.active.is_(True),
                    )
                    .limit(2)
                )
            ).all()
        return found[0] if len(found) == 1 else None

    async def set_dnd_as(self, p: Principal, employee_id: uuid.UUID, on: bool) -> bool:
        """Do not disturb through the API: an admin's for anybody, a user's for their own
        employee (a CRM's or the operator's "do not disturb" button). Returns ``on``."""
        if not p.can(Perm.directory_write) and await self.own_employee(p) != employee_id:
            async with self.db.read() as s:
                await _scoped(s, Employee, employee_id, p.account_id, "employee")  # 404 first
            raise PermissionDenied(
                f"role {p.role.value!r} may only set its own employee's do not disturb"
            )
        if await self.set_dnd(p.account_id, on, employee_id=employee_id) is None:
            raise NotFound("employee not found")
        return on

    async def reset_sip_password(self, p: Principal, employee_id: uuid.UUID) -> tuple[str, str]:
        """A new generated SIP password; returns ``(sip_username, password)``, shown once."""
        async with self._writing(p) as w:
            emp = await w.employee(employee_id)
            password = await w.reset_sip_password(emp)
        return emp.sip_username, password

    async def delete_employee(self, p: Principal, employee_id: uuid.UUID) -> None:
        async with self._writing(p, guarded=True) as w:
            await w.delete_employee(await w.employee(employee_id))

    # --- groups -----------------------------------------------------------------------------------
    async def list_groups(
        self, p: Principal, *, q: str | None = None, limit: int = 50, offset: int = 0
    ) -> Listing[GroupView]:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            stmt = select(Group).where(Group.account_id == p.account_id)
            if q:
                stmt = stmt.where(Group.name.icontains(q, autoescape=True))
            page = await _page(s, stmt, (Group.name, Group.id), limit, offset)
            members = await members_of(s, [g.id for g in page.items])
        return Listing(
            items=[GroupView(g, members.get(g.id, ())) for g in page.items], total=page.total
        )

    async def _group_view(
        self, s: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID
    ) -> GroupView:
        group = await _scoped(s, Group, group_id, account_id, "group")
        members = await members_of(s, [group.id])
        return GroupView(group, members.get(group.id, ()))

    async def get_group(self, p: Principal, group_id: uuid.UUID) -> GroupView:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            return await self._group_view(s, p.account_id, group_id)

    async def create_group(self, p: Principal, data: GroupIn) -> GroupView:
        async with self._writing(p) as w:
            group = await w.create_group(data)
            return await self._group_view(w.session, p.account_id, group.id)

    async def update_group(self, p: Principal, group_id: uuid.UUID, patch: GroupPatch) -> GroupView:
        async with self._writing(p, guarded=True) as w:
            await w.update_group(await w.group(group_id), patch)
            return await self._group_view(w.session, p.account_id, group_id)

    async def set_members(
        self, p: Principal, group_id: uuid.UUID, members: Sequence[MemberIn]
    ) -> GroupView:
        async with self._writing(p) as w:
            await w.set_members(await w.group(group_id), members)
            return await self._group_view(w.session, p.account_id, group_id)

    async def delete_group(self, p: Principal, group_id: uuid.UUID) -> None:
        async with self._writing(p, guarded=True) as w:
            await w.delete_group(await w.group(group_id))

    # --- numbers ----------------------------------------------------------------------------------
    async def list_numbers(
        self,
        p: Principal,
        *,
        q: str | None = None,
        kind: NumberKind | None = None,
        trunk_id: uuid.UUID | None = None,
        active: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Listing[Number]:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            stmt = select(Number).where(Number.account_id == p.account_id)
            if kind is not None:
                stmt = stmt.where(Number.kind == kind)
            if trunk_id is not None:
                await _owned(s, Trunk, trunk_id, p.account_id, "trunk")
                stmt = stmt.where(Number.trunk_id == trunk_id)
            if active is not None:
                stmt = stmt.where(Number.active.is_(active))
            if q:
                digits = "".join(ch for ch in q if ch.isdigit())
                text = Number.label_folded.contains(q.casefold(), autoescape=True)
                stmt = stmt.where(
                    or_(text, Number.e164.contains(digits, autoescape=True)) if digits else text
                )
            return await _page(s, stmt, (Number.e164,), limit, offset)

    async def get_number(self, p: Principal, number_id: uuid.UUID) -> Number:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            return await _scoped(s, Number, number_id, p.account_id, "number")

    async def add_number(self, p: Principal, data: NumberIn) -> Number:
        async with self._writing(p) as w:
            return await w.create_number(data)

    async def update_number(self, p: Principal, number_id: uuid.UUID, patch: NumberPatch) -> Number:
        async with self._writing(p) as w:
            number = await w.number(number_id)
            await w.update_number(number, patch)
            return number

    async def remove_number(self, p: Principal, number_id: uuid.UUID) -> None:
        async with self._writing(p) as w:
            await w.delete_number(await w.number(number_id))

    # --- trunks -----------------------------------------------------------------------------------
    async def list_trunks(
        self,
        p: Principal,
        *,
        q: str | None = None,
        active: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Listing[Trunk]:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            stmt = select(Trunk).where(Trunk.account_id == p.account_id)
            if q:
                stmt = stmt.where(
                    or_(
                        Trunk.name.icontains(q, autoescape=True),
                        Trunk.host.contains(q.lower(), autoescape=True),
                    )
                )
            if active is not None:
                stmt = stmt.where(Trunk.active.is_(active))
            return await _page(s, stmt, (Trunk.name,), limit, offset)

    async def get_trunk(self, p: Principal, trunk_id: uuid.UUID) -> Trunk:
        p.require(Perm.directory_read)
        async with self.db.read() as s:
            return await _scoped(s, Trunk, trunk_id, p.account_id, "trunk")

    async def create_trunk(self, p: Principal, data: TrunkIn) -> Trunk:
        async with self._writing(p) as w:
            return await w.create_trunk(data)

    async def update_trunk(self, p: Principal, trunk_id: uuid.UUID, patch: TrunkPatch) -> Trunk:
        async with self._writing(p) as w:
            trunk = await w.trunk(trunk_id)
            await w.update_trunk(trunk, patch)
            return trunk

    async def delete_trunk(self, p: Principal, trunk_id: uuid.UUID) -> None:
        async with self._writing(p) as w:
            await w.delete_trunk(await w.trunk(trunk_id))
