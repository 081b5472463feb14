"""The routing service: principal-scoped reads and writes of schemes, number assignments and
the account calendar. Writes go through :class:`~zvonar.routing.writer.RoutingWriter`.

Permissions: until ``routing.read``/``routing.write`` exist, reads need ``directory.read`` and
writes ``directory.write``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from zvonar.accounts.access import Perm, Principal
from zvonar.core.errors import NotFound
from zvonar.directory.service import Listing
from zvonar.routing.models import SchemeRow
from zvonar.routing.schedule import Branch, SpecialDay, WorkCalendar, special_days, zone
from zvonar.routing.writer import RoutingWriter
from zvonar.store.db import Database, UnitOfWork

READ, WRITE = Perm.routing_read, Perm.routing_write


@dataclass(frozen=True)
class AssignmentView:
    number_id: uuid.UUID
    e164: str
    scheme_id: uuid.UUID | None


# A rule of another slice over a scheme just written, in its unit of work (the queues slice:
# every queue step names a queue). Raises to refuse the write.
SchemeCheck = Callable[[UnitOfWork, uuid.UUID, str], Awaitable[None]]


class RoutingService:
    def __init__(self, db: Database, *, scheme_checks: Sequence[SchemeCheck] = ()) -> None:
        self.db = db
        self.scheme_checks = tuple(scheme_checks)

    async def _checked(self, uow: UnitOfWork, row: SchemeRow) -> SchemeRow:
        for check in self.scheme_checks:
            await check(uow, row.account_id, row.name)
        return row

    # --- schemes ---------------------------------------------------------------------------------
    async def list_schemes(
        self, p: Principal, *, q: str | None = None, limit: int = 50, offset: int = 0
    ) -> Listing[SchemeRow]:
        p.require(READ)
        async with self.db.read() as s:
            stmt = select(SchemeRow).where(SchemeRow.account_id == p.account_id)
            if q:
                stmt = stmt.where(SchemeRow.name.icontains(q, autoescape=True))
            total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
            rows = await s.scalars(stmt.order_by(SchemeRow.name).limit(limit).offset(offset))
            return Listing(items=list(rows), total=int(total or 0))

    async def get_scheme(self, p: Principal, scheme_id: uuid.UUID) -> SchemeRow:
        p.require(READ)
        async with self.db.read() as s:
            row = await s.scalar(
                select(SchemeRow).where(
                    SchemeRow.id == scheme_id, SchemeRow.account_id == p.account_id
                )
            )
        if row is None:
            raise NotFound("scheme not found")
        return row

    async def create_scheme(self, p: Principal, name: str, definition: Any) -> SchemeRow:
        p.require(WRITE)
        async with self.db.unit_of_work() as uow:
            w = await RoutingWriter.open(uow, p.account_id)
            return await self._checked(uow, await w.save_scheme(name, definition, None))

    async def replace_scheme(
        self, p: Principal, scheme_id: uuid.UUID, name: str, definition: Any
    ) -> SchemeRow:
        p.require(WRITE)
        async with self.db.unit_of_work() as uow:
            w = await RoutingWriter.open(uow, p.account_id)
            row = await w.save_scheme(name, definition, await w.scheme(scheme_id))
            return await self._checked(uow, row)

    async def delete_scheme(self, p: Principal, scheme_id: uuid.UUID) -> None:
        p.require(WRITE)
        async with self.db.unit_of_work() as uow:
            w = await RoutingWriter.open(uow, p.account_id)
            await w.delete_scheme(await w.scheme(scheme_id))

    # --- numbers ---------------------------------------------------------------------------------
    async def get_assignment(self, p: Principal, number_id: uuid.UUID) -> AssignmentView:
        p.require(READ)
        async with self.db.unit_of_work() as uow:  # read-only; the writer's scoped lookups
            w = await RoutingWriter.open(uow, p.account_id)
            number = await w.number(number_id)
            current = await w.assignment(number)
            return AssignmentView(number.id, number.e164, current.scheme_id if current else None)

    async def assign(
        self, p: Principal, number_id: uuid.UUID, scheme_id: uuid.UUID | None
    ) -> AssignmentView:
        p.require(WRITE)
        async with self.db.unit_of_work() as uow:
            w = await RoutingWriter.open(uow, p.account_id)
            number = await w.number(number_id)
            scheme = await w.scheme(scheme_id) if scheme_id is not None else None
            await w.assign(number, scheme)
            return AssignmentView(number.id, number.e164, scheme_id)

    # --- calendar --------------------------------------------------------------------------------
    async def get_calendar(self, p: Principal) -> WorkCalendar:
        p.require(READ)
        async with self.db.unit_of_work() as uow:
            return await (await RoutingWriter.open(uow, p.account_id)).calendar()

    async def special_days(
        self, p: Principal, year: int | None
    ) -> tuple[WorkCalendar, int, list[SpecialDay]]:
        """The calendar, the year (``None``: this year on its clock) and that year's special
        days, public holidays named in the account's language."""
        p.require(READ)
        async with self.db.unit_of_work() as uow:
            w = await RoutingWriter.open(uow, p.account_id)
            cal = await w.calendar()
            when = year or datetime.now(zone(cal.tz)).year
            return cal, when, special_days(cal, when, w.account.language)

    async def set_calendar(self, p: Principal, data: dict[str, Any]) -> WorkCalendar:
        p.require(WRITE)
        async with self.db.unit_of_work() as uow:
            w = await RoutingWriter.open(uow, p.account_id)
            cal, _ = await w.set_calendar(data)
            return cal

    async def branch_at(self, p: Principal, at: datetime) -> Branch:
        return (await self.get_calendar(p)).branch_at(at)
