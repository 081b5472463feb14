"""ACD queue definitions: the service (the only writer), its events and the writer both doors
use.

:class:`QueueWriter` holds every write rule, so the REST service and ``zvonar config apply``
(:mod:`zvonar.acd.config`) cannot disagree: a definition parses (``invalid_queue`` with a
path); members are extensions of the account's employees (``unknown_reference``); names are
unique per account (``queue_name_taken``); a queue a scheme's queue step names cannot be deleted
or renamed through the API (``queue_in_use``). Events go out after commit.

Permissions: reading needs ``routing.read`` or ``calls.read`` (operators see the queues they
serve), writing ``routing.write``. :meth:`AcdQueueService.load` is the runtime's internal read
and checks none.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from zvonar.accounts.access import Perm, Principal
from zvonar.acd.definitions import QueueDef, queue_from_dict, queue_to_dict
from zvonar.acd.models import AcdQueueRow
from zvonar.core.errors import Conflict, InvalidInput, NotFound
from zvonar.core.events import Event
from zvonar.directory.models import Employee
from zvonar.directory.service import Listing
from zvonar.routing.models import SchemeRow
from zvonar.routing.scheme import QueueStep, walk
from zvonar.routing.scheme_codec import scheme_from_dict
from zvonar.store.db import Database, UnitOfWork

READ = (Perm.routing_read, Perm.calls_read)
WRITE = Perm.routing_write


@dataclass(frozen=True, kw_only=True)
class QueueDefined(Event):
    """A queue was created or changed: reload its definition (``AcdQueueService.load``)."""

    name: str


@dataclass(frozen=True, kw_only=True)
class QueueDeleted(Event):
    name: str


@dataclass(frozen=True)
class QueueView:
    id: uuid.UUID
    definition: QueueDef
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QueueRef:
    """A scheme step that names a queue: ``path`` inside scheme ``scheme``."""

    scheme: str
    path: str
    queue: str


def _view(row: AcdQueueRow) -> QueueView:
    return QueueView(row.id, queue_from_dict(row.definition), row.created_at, row.updated_at)


def _require_read(p: Principal) -> None:
    if not any(p.can(perm) for perm in READ):
        p.require(READ[0])


async def guard_queue_members(
    uow: UnitOfWork, account_id: uuid.UUID
) -> Callable[[], Awaitable[None]]:
    """For a directory write (``DirectoryService``'s guard): refuses one that changes or
    deletes the extension of a queue's member (``employee_in_use``), which would leave the
    queue offering calls to nobody there. Members already missing do not block it."""
    writer = QueueWriter(uow, account_id)
    before = set(await writer.missing_members())

    async def after() -> None:
        for queue, extension in await writer.missing_members():
            if (queue, extension) not in before:
                raise Conflict(
                    f"extension {extension} is a member of queue {queue!r}: change the queue first",
                    code="employee_in_use",
                    queue=queue,
                )

    return after


class QueueWriter:
    """Every queue write for one account inside one unit of work."""

    def __init__(self, uow: UnitOfWork, account_id: uuid.UUID) -> None:
        self.uow = uow
        self.session = uow.session
        self.account_id = account_id

    async def _flush(self) -> None:
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict("the change conflicts with data written meanwhile") from exc

    async def rows(self) -> dict[str, AcdQueueRow]:
        found = await self.session.scalars(
            select(AcdQueueRow)
            .where(AcdQueueRow.account_id == self.account_id)
            .order_by(AcdQueueRow.name)
        )
        return {r.name: r for r in found}

    async def row(self, name: str) -> AcdQueueRow:
        row = await self.session.scalar(
            select(AcdQueueRow).where(
                AcdQueueRow.account_id == self.account_id, AcdQueueRow.name == name
            )
        )
        if row is None:
            raise NotFound("queue not found")
        return row

    async def _extensions(self) -> set[str]:
        return set(
            await self.session.scalars(
                select(Employee.extension).where(Employee.account_id == self.account_id)
            )
        )

    async def missing_members(self) -> list[tuple[str, str]]:
        """``(queue, extension)`` of every member that is no employee of the account."""
        known = await self._extensions()
        return [
            (name, m.extension)
            for name, row in (await self.rows()).items()
            for m in queue_from_dict(row.definition).members
            if m.extension not in known
        ]

    async def check_members(self, q: QueueDef, path: str = "") -> None:
        known = await self._extensions()
        for i, m in enumerate(q.members):
            if m.extension not in known:
                where = f"members[{i}].extension"
                raise InvalidInput(
                    f"no employee with extension {m.extension} in this account",
                    code="unknown_reference",
                    path=f"{path}.{where}" if path else where,
                )

    async def references(self) -> list[QueueRef]:
        """Every queue step of the account's schemes, in scheme then step order."""
        schemes = await self.session.scalars(
            select(SchemeRow)
            .where(SchemeRow.account_id == self.account_id)
            .order_by(SchemeRow.name)
        )
        out = []
        for row in schemes:
            scheme = scheme_from_dict(row.name, row.definition)
            for branch, steps in scheme.branches.items():
                for path, step, _ in walk(steps, f"branches.{branch.value}"):
                    if isinstance(step, QueueStep):
                        out.append(QueueRef(row.name, path, step.queue))
        return out

    async def check_unused(self, name: str) -> None:
        for ref in await self.references():
            if ref.queue == name:
                raise Conflict(
                    f"scheme {ref.scheme!r} sends calls to this queue",
                    code="queue_in_use",
                    scheme=ref.scheme,
                    path=f"{ref.path}.queue",
                )

    async def save(
        self, q: QueueDef, row: AcdQueueRow | None, *, path: str = "", check: bool = True
    ) -> AcdQueueRow:
        """Create (``row`` None) or replace; ``check`` False skips the in-use rule on a rename
        (``zvonar config`` checks every reference once, at the end)."""
        await self.check_members(q, path)
        canonical = queue_to_dict(q)
        if row is not None and row.name == q.name and row.definition == canonical:
            return row
        taken = await self.session.scalar(
            select(AcdQueueRow.id).where(
                AcdQueueRow.account_id == self.account_id, AcdQueueRow.name == q.name
            )
        )
        if taken is not None and (row is None or taken != row.id):
            where = f"{path}.name" if path else "name"
            raise Conflict(f"a queue named {q.name!r} exists", code="queue_name_taken", path=where)
        old_name = row.name if row is not None else None
        if row is None:
            row = AcdQueueRow(account_id=self.account_id, name=q.name, definition=canonical)
            self.session.add(row)
        else:
            if check and old_name != q.name and old_name is not None:
                await self.check_unused(old_name)
            row.name, row.definition = q.name, canonical
        await self._flush()
        if old_name is not None and old_name != q.name:
            self.uow.emit(QueueDeleted(account_id=self.account_id, name=old_name))
        self.uow.emit(QueueDefined(account_id=self.account_id, name=q.name))
        return row

    async def delete(self, row: AcdQueueRow, *, check: bool = True) -> None:
        if check:
            await self.check_unused(row.name)
        name = row.name
        await self.session.delete(row)
        await self._flush()
        self.uow.emit(QueueDeleted(account_id=self.account_id, name=name))


class AcdQueueService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_queues(
        self, p: Principal, *, q: str | None = None, limit: int = 50, offset: int = 0
    ) -> Listing[QueueView]:
        _require_read(p)
        async with self.db.read() as s:
            stmt = select(AcdQueueRow).where(AcdQueueRow.account_id == p.account_id)
            if q:
                stmt = stmt.where(AcdQueueRow.name.icontains(q, autoescape=True))
            total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
            rows = await s.scalars(stmt.order_by(AcdQueueRow.name).limit(limit).offset(offset))
            return Listing(items=[_view(r) for r in rows], total=int(total or 0))

    async def get_queue(self, p: Principal, name: str) -> QueueView:
        _require_read(p)
        async with self.db.unit_of_work() as uow:  # read-only; the writer's scoped lookup
            return _view(await QueueWriter(uow, p.account_id).row(name))

    async def create_queue(self, p: Principal, data: Mapping[str, Any]) -> QueueView:
        """``data`` in the plain form of :mod:`zvonar.acd.definitions`."""
        p.require(WRITE)
        q = queue_from_dict(data)
        async with self.db.unit_of_work() as uow:
            return _view(await QueueWriter(uow, p.account_id).save(q, None))

    async def update_queue(self, p: Principal, name: str, patch: Mapping[str, Any]) -> QueueView:
        """Only the keys in ``patch`` change; a key set to None goes back to its default."""
        p.require(WRITE)
        async with self.db.unit_of_work() as uow:
            w = QueueWriter(uow, p.account_id)
            row = await w.row(name)
            merged = queue_to_dict(queue_from_dict(row.definition), full=True)
            for key, value in patch.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            return _view(await w.save(queue_from_dict(merged), row))

    async def delete_queue(self, p: Principal, name: str) -> None:
        p.require(WRITE)
        async with self.db.unit_of_work() as uow:
            w = QueueWriter(uow, p.account_id)
            await w.delete(await w.row(name))

    async def load(self, account_id: uuid.UUID) -> dict[str, QueueDef]:
        """Every queue of the account by name, for the ACD runtime (no permission check)."""
        async with self.db.read() as s:
            rows = await s.scalars(
                select(AcdQueueRow)
                .where(AcdQueueRow.account_id == account_id)
                .order_by(AcdQueueRow.name)
            )
            return {r.name: queue_from_dict(r.definition) for r in rows}
