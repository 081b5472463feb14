"""Queues as code: the ``queues`` section of ``zvonar config`` (same contract as directory's).

``await export_queues(db, account_id) -> list[dict]``
    The account's queues in canonical form (:func:`~zvonar.acd.definitions.queue_to_dict`),
    by name.

``await apply_queues_in(uow, account_id, section) -> list[Change]``
    ``section`` is the complete desired list: queues missing from it are deleted. Every item is
    parsed and its members checked before anything is written; errors carry
    ``details["path"]`` such as ``queues[2].members[0].extension``. Applying the same list twice
    returns ``[]`` the second time.

``await check_queue_references_in(uow, account_id)``
    Every queue step of the account's schemes names a queue that exists, else
    ``unknown_reference`` at ``routing.schemes.<scheme>.<step path>.queue``. ``zvonar.configfile``
    runs it after all sections are applied, so a scheme may name a queue the same document
    defines, and a document cannot delete a queue its schemes still use.

``await check_scheme_queues(uow, account_id, scheme)``
    The same for one scheme the REST API saves, at the step's path.
"""

from __future__ import annotations

import uuid
from typing import Any

from zvonar.acd.definitions import QueueDef, queue_from_dict, queue_to_dict
from zvonar.acd.queues import QueueWriter
from zvonar.core.errors import Conflict, InvalidInput
from zvonar.directory.config import Change, ChangeKind, FieldChange
from zvonar.store.db import Database, UnitOfWork, dry_runnable

SECTION = "queues"


async def export_queues(db: Database, account_id: uuid.UUID) -> list[dict[str, Any]]:
    async with db.unit_of_work() as uow:  # nothing is written; the writer scopes the reads
        rows = await QueueWriter(uow, account_id).rows()
        return [dict(r.definition) for r in rows.values()]


async def apply_queues(
    db: Database, account_id: uuid.UUID, section: Any, *, dry_run: bool
) -> list[Change]:
    return await dry_runnable(
        db, lambda uow: apply_queues_in(uow, account_id, section), dry_run=dry_run
    )


def _parse(section: Any) -> list[QueueDef]:
    if not isinstance(section, list):
        raise InvalidInput("expected a list of queues", code="invalid_config", path=SECTION)
    wanted: list[QueueDef] = []
    where: dict[str, int] = {}
    for i, item in enumerate(section):
        q = queue_from_dict(item, f"{SECTION}[{i}]")
        if q.name in where:
            raise Conflict(
                f"queue {q.name!r} is also queues[{where[q.name]}]",
                code="queue_name_taken",
                path=f"{SECTION}[{i}].name",
            )
        where[q.name] = i
        wanted.append(q)
    return wanted


async def apply_queues_in(uow: UnitOfWork, account_id: uuid.UUID, section: Any) -> list[Change]:
    """The same inside the caller's unit of work (see ``zvonar.configfile``)."""
    wanted = _parse(section)
    w = QueueWriter(uow, account_id)
    for i, q in enumerate(wanted):
        await w.check_members(q, f"{SECTION}[{i}]")
    rows = await w.rows()
    changes: list[Change] = []
    for i, q in enumerate(wanted):
        row = rows.get(q.name)
        if row is None:
            await w.save(q, None, path=f"{SECTION}[{i}]", check=False)
            changes.append(Change(ChangeKind.create, "queue", q.name))
            continue
        old = queue_to_dict(queue_from_dict(row.definition), full=True)
        new = queue_to_dict(q, full=True)
        if old == new:
            continue
        await w.save(q, row, path=f"{SECTION}[{i}]", check=False)
        diff = tuple(FieldChange(k, old[k], v) for k, v in new.items() if old[k] != v)
        changes.append(Change(ChangeKind.update, "queue", q.name, diff))
    names = {q.name for q in wanted}
    for name, row in rows.items():
        if name not in names:
            await w.delete(row, check=False)
            changes.append(Change(ChangeKind.delete, "queue", name))
    return changes


async def check_queue_references_in(uow: UnitOfWork, account_id: uuid.UUID) -> None:
    w = QueueWriter(uow, account_id)
    names = set(await w.rows())
    for ref in await w.references():
        if ref.queue not in names:
            raise InvalidInput(
                f"no queue named {ref.queue!r}",
                code="unknown_reference",
                path=f"routing.schemes.{ref.scheme}.{ref.path}.queue",
            )


async def check_scheme_queues(uow: UnitOfWork, account_id: uuid.UUID, scheme: str) -> None:
    """The REST door's check of one scheme just saved (``RoutingService``'s scheme check):
    each queue step names a queue of the account, else ``unknown_reference`` at the step's
    path. The same rule ``config apply`` enforces over the whole document, so a scheme the
    API took is one its own export can apply again."""
    w = QueueWriter(uow, account_id)
    names = set(await w.rows())
    for ref in await w.references():
        if ref.scheme == scheme and ref.queue not in names:
            raise InvalidInput(
                f"no queue named {ref.queue!r}",
                code="unknown_reference",
                path=f"{ref.path}.queue",
                scheme=scheme,
            )
