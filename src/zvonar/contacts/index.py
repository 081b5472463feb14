"""The in-memory caller index: E.164 → contact, per account, for the caller rule.

A call must not wait on a database query to learn the caller is a VIP, so each account's numbers
live in a dict (O(1) lookup), loaded lazily on the first lookup and kept current by the contact
events the service publishes after commit. A bulk import drops the account's table; the next
lookup reloads it. Events that arrive while a load is running bump the account's generation and
make the load start over, so a stale snapshot is never installed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from zvonar.contacts.events import ContactDeleted, ContactSaved, ContactsImported
from zvonar.contacts.models import Contact, ContactNumber
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.store.db import Database

_MAX_LOAD_ATTEMPTS = 5


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


class ContactIndex:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._tables: dict[uuid.UUID, _Table] = {}
        self._generation: dict[uuid.UUID, int] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

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
            table = await self._load(account_id)
        return table.by_number.get(e164)

    async def _load(self, account_id: uuid.UUID) -> _Table:
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            for _ in range(_MAX_LOAD_ATTEMPTS):
                if (ready := self._tables.get(account_id)) is not None:
                    return ready
                generation = self._generation.get(account_id, 0)
                table = await self._read(account_id)
                if self._generation.get(account_id, 0) == generation:
                    self._tables[account_id] = table
                    return table
            # Writes keep racing the load: serve this snapshot without caching it.
            return table

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
        """Bring the account's table up to date with a committed change."""
        account_id = event.account_id
        self._generation[account_id] = self._generation.get(account_id, 0) + 1
        table = self._tables.get(account_id)
        if table is None:
            return
        if isinstance(event, ContactsImported):
            del self._tables[account_id]
            return
        if isinstance(event, ContactSaved | ContactDeleted):
            for e164 in table.numbers_of.pop(event.contact_id, ()):
                old = table.by_number.get(e164)
                if old is not None and old.contact_id == event.contact_id:
                    del table.by_number[e164]
        if isinstance(event, ContactSaved):
            hit = ContactHit(
                event.contact_id,
                event.contact_name,
                frozenset(event.tags),
                event.city,
                event.manager_id,
            )
            for e164 in event.numbers:
                table.by_number[e164] = hit
            table.numbers_of[event.contact_id] = event.numbers
