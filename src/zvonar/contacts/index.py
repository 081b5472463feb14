"""The in-memory caller index: E.164 → contact, per account, for the caller rule.

A call must not wait on a database query to learn the caller is a VIP, so each account's numbers
live in a dict (O(1) lookup), loaded lazily on the first lookup and kept current by the contact
events the service publishes after commit. Only that first load of an account makes a call wait.

A bulk import (one event for many rows) is read again whole, in the background: calls keep being
answered from the table in memory until the new one is read, then it is swapped in. So a contact
imported a moment ago may be unknown for as long as that read takes (about 1.4 s for 100,000
contacts); a contact saved one by one is known at once.

Events that arrive while a table is being read are applied to the table in memory as usual and
kept, then applied again to the new table before it is installed: the read may or may not have
seen their commits, and applying a contact's saved state (or its deletion) twice is harmless. An
import that arrives during a read installs that read and starts another one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from zvonar.contacts.events import ContactDeleted, ContactSaved, ContactsImported
from zvonar.contacts.models import Contact, ContactNumber
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContactHit:
    contact_id: uuid.UUID
    name: str
    tags: frozenset[str]
    city: str | None
    manager_id: uuid.UUID | None = None  # the employee who looks after them


@dataclass
class _Table:
    by_number: dict[str, ContactHit]
    numbers_of: dict[uuid.UUID, tuple[str, ...]]

    def apply(self, event: ContactSaved | ContactDeleted) -> None:
        """Set the contact to its state at the event's commit (or remove it)."""
        for e164 in self.numbers_of.pop(event.contact_id, ()):
            old = self.by_number.get(e164)
            if old is not None and old.contact_id == event.contact_id:
                del self.by_number[e164]
        if isinstance(event, ContactSaved):
            hit = ContactHit(
                event.contact_id,
                event.contact_name,
                frozenset(event.tags),
                event.city,
                event.manager_id,
            )
            for e164 in event.numbers:
                self.by_number[e164] = hit
            self.numbers_of[event.contact_id] = event.numbers


@dataclass
class _Load:
    """A read of one account's table under way."""

    task: asyncio.Task[None] | None = None
    # Set once a table is installed: what the first lookup of an account waits for.
    ready: asyncio.Future[_Table] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # The changes committed since this read began, to apply to what it read.
    changes: list[ContactSaved | ContactDeleted] = field(default_factory=list)
    again: bool = False  # an import arrived since this read began: read once more


class ContactIndex:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._tables: dict[uuid.UUID, _Table] = {}
        self._loads: dict[uuid.UUID, _Load] = {}

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to contact events; returns a function that unsubscribes."""
        offs = [
            bus.subscribe(ContactSaved, self._on_event),
            bus.subscribe(ContactDeleted, self._on_event),
            bus.subscribe(ContactsImported, self._on_event),
        ]

        def detach() -> None:
            for off in offs:
                off()

        return detach

    async def aclose(self) -> None:
        """Stop the reads under way (the tables in memory stay as they are)."""
        loads = list(self._loads.values())
        for load in loads:
            if load.task is not None:
                load.task.cancel()
        for load in loads:
            if load.task is not None:
                await asyncio.gather(load.task, return_exceptions=True)

    # --- reads ------------------------------------------------------------------------------------
    def peek(self, account_id: uuid.UUID, e164: str) -> ContactHit | None:
        """The hit if the account is loaded; None for an unknown number or an unloaded account."""
        table = self._tables.get(account_id)
        return table.by_number.get(e164) if table is not None else None

    def loaded(self, account_id: uuid.UUID) -> bool:
        return account_id in self._tables

    async def lookup(self, account_id: uuid.UUID, e164: str) -> ContactHit | None:
        table = self._tables.get(account_id)
        if table is None:
            load = self._loads.get(account_id) or self._start(account_id)
            # Shielded: a caller that hangs up cancels its own wait, not the read others share.
            table = await asyncio.shield(load.ready)
        return table.by_number.get(e164)

    async def reloaded(self, account_id: uuid.UUID) -> None:
        """Wait until the account's reads under way are done (tests, benchmarks)."""
        while (load := self._loads.get(account_id)) is not None and load.task is not None:
            await asyncio.gather(asyncio.shield(load.task), return_exceptions=True)

    def _start(self, account_id: uuid.UUID) -> _Load:
        load = _Load()
        # A first lookup that was cancelled leaves nobody to take a failed read's error.
        load.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._loads[account_id] = load
        load.task = asyncio.get_running_loop().create_task(
            self._run(account_id, load), name=f"contacts index {account_id}"
        )
        return load

    async def _run(self, account_id: uuid.UUID, load: _Load) -> None:
        try:
            while True:
                load.changes, load.again = [], False
                table = await self._read(account_id)
                for change in load.changes:
                    table.apply(change)
                self._tables[account_id] = table
                if not load.ready.done():
                    load.ready.set_result(table)
                if not load.again:
                    return
        except Exception as exc:
            # The table in memory (if any) stays; a first lookup fails as its read did.
            log.warning("contacts index: reading account %s failed", account_id, exc_info=True)
            if not load.ready.done():
                load.ready.set_exception(exc)
        finally:
            if not load.ready.done():
                load.ready.cancel()
            if self._loads.get(account_id) is load:
                del self._loads[account_id]

    async def _read(self, account_id: uuid.UUID) -> _Table:
        by_number: dict[str, ContactHit] = {}
        numbers_of: dict[uuid.UUID, list[str]] = {}
        async with self._db.read() as s:
            hits: dict[uuid.UUID, ContactHit] = {}
            # One round trip each, not a server-side cursor: per-row awaits cost more than the
            # memory of 100k small tuples.
            contacts = await s.execute(
                select(
                    Contact.id, Contact.name, Contact.tags, Contact.city, Contact.manager_id
                ).where(Contact.account_id == account_id)
            )
            for cid, name, tags, city, manager_id in contacts:
                hits[cid] = ContactHit(cid, name, frozenset(tags or ()), city, manager_id)
            numbers = await s.execute(
                select(ContactNumber.e164, ContactNumber.contact_id)
                .where(ContactNumber.account_id == account_id)
                .order_by(ContactNumber.contact_id, ContactNumber.position)
            )
            for e164, cid in numbers:
                hit = hits.get(cid)
                if hit is not None:
                    by_number[e164] = hit
                    numbers_of.setdefault(cid, []).append(e164)
        return _Table(by_number, {k: tuple(v) for k, v in numbers_of.items()})

    # --- events -----------------------------------------------------------------------------------
    async def _on_event(self, event: Event) -> None:
        self.apply(event)

    def apply(self, event: Event) -> None:
        """Bring the account's table up to date with a committed change (an import: start
        reading it again, and keep answering from this one meanwhile). On the event loop."""
        account_id = event.account_id
        load = self._loads.get(account_id)
        if isinstance(event, ContactsImported):
            if load is not None:
                load.again = True
            elif account_id in self._tables:
                self._start(account_id)
            return
        if isinstance(event, ContactSaved | ContactDeleted):
            if load is not None:
                load.changes.append(event)
            table = self._tables.get(account_id)
            if table is not None:
                table.apply(event)
