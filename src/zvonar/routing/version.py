"""The account's routing version: how a process learns that another one changed routing data.

Call routing reads an in-memory copy of each account's routing data (``pbx/snapshot.py``). The
events of a write drop that copy in the process that made it; a write made elsewhere (the CLI's
``config apply``, another node) publishes its events on its own bus. So every unit of work that
emits one of :data:`ROUTING_EVENTS` also bumps ``accounts.routing_version`` of each account it
touched, in the same transaction (:func:`bump_routing_versions`, a ``Database.before_commit``
hook). A cached copy older than its ``max_age`` is then confirmed by reading one integer instead
of being read again whole.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from zvonar.accounts.events import AccountSettingsChanged
from zvonar.accounts.models import Account
from zvonar.core.events import Event
from zvonar.directory.events import EmployeeEvent, GroupChanged, NumberEvent, TrunkChanged
from zvonar.routing.events import CalendarChanged, SchemeAssigned, SchemeChanged
from zvonar.store.db import Database, UnitOfWork

__all__ = ["ROUTING_EVENTS", "bump_routing_versions", "routing_version"]

# Events after which an account's routing data must be read again.
ROUTING_EVENTS: tuple[type[Event], ...] = (
    AccountSettingsChanged,
    EmployeeEvent,
    GroupChanged,
    NumberEvent,
    TrunkChanged,
    SchemeChanged,
    SchemeAssigned,
    CalendarChanged,
)


async def bump_routing_versions(uow: UnitOfWork) -> None:
    """Bump the routing version of every account a routing event of ``uow`` names (once per
    account per transaction)."""
    touched = {e.account_id for e in uow.events if isinstance(e, ROUTING_EVENTS)}
    # One order for every writer: two transactions touching the same accounts cannot deadlock.
    for account_id in sorted(touched):
        await uow.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(routing_version=Account.routing_version + 1)
            .execution_options(synchronize_session=False)
        )


async def routing_version(db: Database, account_id: uuid.UUID) -> int | None:
    """The account's routing version now; None: no such account."""
    async with db.read() as s:
        version: int | None = await s.scalar(
            select(Account.routing_version).where(Account.id == account_id)
        )
    return version
