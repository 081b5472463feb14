"""The contacts service: principal-scoped CRUD, the CSV import, and the caller index.

It is the only writer of contacts. Each write is one unit of work; its event is published after
commit and keeps :class:`~zvonar.contacts.index.ContactIndex` current. Until contacts get their
own permissions, reads need ``directory.read`` and writes ``directory.write``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.accounts.access import Perm, Principal
from zvonar.accounts.models import Account
from zvonar.contacts import csvimport, search
from zvonar.contacts.events import ContactAction, ContactDeleted, ContactSaved, ContactsImported
from zvonar.contacts.index import ContactHit, ContactIndex
from zvonar.contacts.models import Contact, ContactNumber, folded, tags_key
from zvonar.contacts.schemas import ContactIn, ContactPatch
from zvonar.core.errors import Conflict, InvalidInput, NotFound
from zvonar.directory import phone, rules
from zvonar.directory.models import Employee
from zvonar.store.base import utcnow
from zvonar.store.db import Database, UnitOfWork

# Rows per INSERT/UPDATE batch in the import: well under PostgreSQL's 32767 bind parameters.
_BATCH = 2000


@dataclass(frozen=True)
class ContactView:
    contact: Contact
    numbers: tuple[str, ...]


@dataclass(frozen=True)
class Listing:
    items: list[ContactView]
    total: int


@dataclass(frozen=True)
class MergedRow:
    """A row that named a contact an earlier row of the same file had created or updated: its
    non-empty cells overwrote that row's (the admin sees two lines became one contact)."""

    line: int
    into: int  # the line of the file's first row for that contact


@dataclass(frozen=True)
class ImportReport:
    """Every data row is one of: created, updated (a stored contact), merged, failed."""

    created: int
    updated: int
    merged: list[MergedRow]
    errors: list[csvimport.RowError]

    @property
    def failed(self) -> int:
        return len(self.errors)


async def _numbers_of(
    s: AsyncSession, contact_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, ...]]:
    out: dict[uuid.UUID, list[str]] = {}
    if contact_ids:
        rows = await s.execute(
            select(ContactNumber.contact_id, ContactNumber.e164)
            .where(ContactNumber.contact_id.in_(contact_ids))
            .order_by(ContactNumber.contact_id, ContactNumber.position)
        )
        for cid, e164 in rows:
            out.setdefault(cid, []).append(e164)
    return {k: tuple(v) for k, v in out.items()}


def _tags(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v.lower() for v in values))


def _matches(found: search.Search, account_id: uuid.UUID) -> ColumnElement[bool]:
    """The contacts a search finds (what it finds: :mod:`zvonar.contacts.search`)."""
    either: list[ColumnElement[bool]] = [
        Contact.name_folded.contains(found.folded, autoescape=True),
        Contact.company_folded.contains(found.folded, autoescape=True),
    ]
    if (n := found.number) is not None:
        e164 = ContactNumber.e164
        number: list[ColumnElement[bool]] = []
        if n.exact is not None:
            number.append(e164 == n.exact)
        if n.contains is not None:
            number.append(e164.contains(n.contains, autoescape=True))
        if n.prefix is not None:
            number.append(e164.startswith(n.prefix, autoescape=True))
        either.append(
            Contact.id.in_(
                select(ContactNumber.contact_id).where(
                    ContactNumber.account_id == account_id, or_(*number)
                )
            )
        )
    return or_(*either)


class ContactService:
    def __init__(self, db: Database, *, index: ContactIndex | None = None) -> None:
        self.db = db
        self.index = index or ContactIndex(db)
        self._detach = self.index.attach(db.bus)

    # --- reads ------------------------------------------------------------------------------------
    async def list_contacts(
        self,
        p: Principal,
        *,
        tag: str | None = None,
        q: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Listing:
        p.require(Perm.contacts_read)
        async with self.db.read() as s:
            stmt = select(Contact).where(Contact.account_id == p.account_id)
            if tag:
                stmt = stmt.where(Contact.tags_key.contains(f"|{tag.lower()}|", autoescape=True))
            if q:
                country = await s.scalar(select(Account.country).where(Account.id == p.account_id))
                stmt = stmt.where(_matches(search.parse(q, country), p.account_id))
            total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
            rows = list(
                await s.scalars(stmt.order_by(Contact.name, Contact.id).limit(limit).offset(offset))
            )
            numbers = await _numbers_of(s, [c.id for c in rows])
        return Listing([ContactView(c, numbers.get(c.id, ())) for c in rows], int(total or 0))

    async def get_contact(self, p: Principal, contact_id: uuid.UUID) -> ContactView:
        p.require(Perm.contacts_read)
        async with self.db.read() as s:
            contact = await self._owned(s, p.account_id, contact_id)
            numbers = await _numbers_of(s, [contact.id])
        return ContactView(contact, numbers.get(contact.id, ()))

    # --- writes -----------------------------------------------------------------------------------
    async def create_contact(self, p: Principal, data: ContactIn) -> ContactView:
        p.require(Perm.contacts_write)
        async with self.db.unit_of_work() as uow:
            account = await self._account(uow.session, p.account_id)
            numbers = self._normalize(data.numbers, account.country)
            tags = _tags(data.tags)
            contact = Contact(
                id=uuid.uuid4(),
                account_id=account.id,
                name=data.name,
                name_folded=data.name.casefold(),
                company=data.company,
                company_folded=folded(data.company),
                tags=tags,
                tags_key=tags_key(tags),
                city=data.city,
                email=rules.email(data.email) if data.email else None,
                notes=data.notes,
                external_id=data.external_id,
                manager_id=await self._manager(uow.session, account.id, data.manager_id),
            )
            await self._check_external_id(uow.session, account.id, data.external_id, None)
            uow.session.add(contact)
            await self._flush(uow.session)
            await self._set_numbers(uow.session, contact, numbers)
            self._emit(uow, contact, numbers, ContactAction.created)
        return ContactView(contact, numbers)

    async def update_contact(
        self, p: Principal, contact_id: uuid.UUID, patch: ContactPatch
    ) -> ContactView:
        p.require(Perm.contacts_write)
        sent = patch.model_fields_set
        async with self.db.unit_of_work() as uow:
            s = uow.session
            account = await self._account(s, p.account_id)
            contact = await self._owned(s, account.id, contact_id)
            if "name" in sent and patch.name is not None:
                contact.name = patch.name
                contact.name_folded = patch.name.casefold()
            if "external_id" in sent:
                # Checked before it is set: the check's query would autoflush the duplicate
                # into the unique index and fail there instead of answering 409.
                await self._check_external_id(s, account.id, patch.external_id, contact.id)
            for field in ("company", "city", "notes", "external_id"):
                if field in sent:
                    setattr(contact, field, getattr(patch, field))
            if "company" in sent:
                contact.company_folded = folded(patch.company)
            if "email" in sent:
                contact.email = rules.email(patch.email) if patch.email else None
            if "tags" in sent and patch.tags is not None:
                contact.tags = _tags(patch.tags)
                contact.tags_key = tags_key(contact.tags)
            if "manager_id" in sent:
                contact.manager_id = await self._manager(s, account.id, patch.manager_id)
            stored = (await _numbers_of(s, [contact.id])).get(contact.id, ())
            numbers = stored
            if "numbers" in sent and patch.numbers is not None:
                numbers = self._normalize(patch.numbers, account.country)
                if numbers != stored:
                    await self._set_numbers(s, contact, numbers)
                    # The numbers are rows of their own: the contact's row would not change
                    # (nor its onupdate updated_at), and "changed since" syncs missed it.
                    contact.updated_at = utcnow()
            await self._flush(s)
            self._emit(uow, contact, numbers, ContactAction.updated)
        return ContactView(contact, numbers)

    async def delete_contact(self, p: Principal, contact_id: uuid.UUID) -> None:
        p.require(Perm.contacts_write)
        async with self.db.unit_of_work() as uow:
            contact = await self._owned(uow.session, p.account_id, contact_id)
            numbers = (await _numbers_of(uow.session, [contact.id])).get(contact.id, ())
            await uow.session.delete(contact)
            await self._flush(uow.session)
            uow.emit(
                ContactDeleted(account_id=p.account_id, contact_id=contact.id, numbers=numbers)
            )

    # --- caller lookup ----------------------------------------------------------------------------
    async def lookup(self, account_id: uuid.UUID, e164: str) -> ContactHit | None:
        """The caller rule's question: who is ``e164`` in this account? (O(1) once loaded.)"""
        return await self.index.lookup(account_id, e164)

    # --- import -----------------------------------------------------------------------------------
    async def import_csv(self, p: Principal, data: bytes) -> ImportReport:
        """Upsert contacts by phone number from CSV (see :mod:`zvonar.contacts.csvimport`).

        A row whose numbers already belong to a contact updates it (non-empty cells overwrite,
        new numbers are added); a row whose numbers belong to two contacts is an error; other
        rows create contacts. A row for a contact an earlier row of the file created or updated
        updates it the same way and is reported as merged into that row. The whole import is one
        transaction and one event.
        """
        p.require(Perm.contacts_write)
        async with self.db.read() as s:
            country = (await self._account(s, p.account_id)).country
        # Parsing and phone validation are CPU work: keep the event loop (and calls) responsive.
        rows, errors = await asyncio.to_thread(csvimport.parse_csv, data, country)
        async with self.db.unit_of_work() as uow:
            upsert = _Upsert(uow.session, p.account_id)
            await upsert.run(rows, errors)
            created, updated = len(upsert.new), len(upsert.changed)
            uow.emit(
                ContactsImported(
                    account_id=p.account_id, created=created, updated=updated, failed=len(errors)
                )
            )
        errors.sort(key=lambda e: e.line)
        return ImportReport(created, updated, upsert.merged, errors)

    # --- helpers ----------------------------------------------------------------------------------
    @staticmethod
    async def _account(s: AsyncSession, account_id: uuid.UUID) -> Account:
        account = await s.get(Account, account_id)
        if account is None:
            raise NotFound("account not found")
        return account

    @staticmethod
    async def _owned(s: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID) -> Contact:
        contact = await s.scalar(
            select(Contact).where(Contact.id == contact_id, Contact.account_id == account_id)
        )
        if contact is None:
            raise NotFound("contact not found")
        return contact

    @staticmethod
    def _normalize(values: Sequence[str], country: str | None) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                phone.normalize(raw, country, field=f"numbers[{i}]") for i, raw in enumerate(values)
            )
        )

    @staticmethod
    async def _manager(
        s: AsyncSession, account_id: uuid.UUID, employee_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        if employee_id is None:
            return None
        found = await s.scalar(
            select(Employee.id).where(Employee.id == employee_id, Employee.account_id == account_id)
        )
        if found is None:
            raise InvalidInput(
                "no such employee in this account", code="unknown_manager", field="manager_id"
            )
        return employee_id

    @staticmethod
    async def _check_external_id(
        s: AsyncSession, account_id: uuid.UUID, external_id: str | None, own: uuid.UUID | None
    ) -> None:
        if external_id is None:
            return
        query = select(Contact.id).where(
            Contact.account_id == account_id, Contact.external_id == external_id
        )
        other = await s.scalar(query if own is None else query.where(Contact.id != own))
        if other is not None:
            raise Conflict(
                "another contact has this external_id",
                code="external_id_taken",
                field="external_id",
            )

    @staticmethod
    async def _set_numbers(s: AsyncSession, contact: Contact, numbers: tuple[str, ...]) -> None:
        if numbers:
            owners = await s.execute(
                select(ContactNumber.e164, ContactNumber.contact_id).where(
                    ContactNumber.account_id == contact.account_id,
                    ContactNumber.e164.in_(numbers),
                    ContactNumber.contact_id != contact.id,
                )
            )
            for e164, owner in owners:
                raise Conflict(
                    f"{e164} belongs to another contact",
                    code="number_taken",
                    field="numbers",
                    contact_id=str(owner),
                )
        await s.execute(delete(ContactNumber).where(ContactNumber.contact_id == contact.id))
        for i, e164 in enumerate(numbers):
            s.add(
                ContactNumber(
                    account_id=contact.account_id, e164=e164, contact_id=contact.id, position=i
                )
            )
        await ContactService._flush(s)

    @staticmethod
    async def _flush(s: AsyncSession) -> None:
        # A unique violation the checks could not see (a concurrent writer) is a 409, not a 500.
        try:
            await s.flush()
        except IntegrityError as exc:
            raise Conflict("the change conflicts with data written meanwhile") from exc

    @staticmethod
    def _emit(
        uow: UnitOfWork, contact: Contact, numbers: tuple[str, ...], action: ContactAction
    ) -> None:
        uow.emit(
            ContactSaved(
                account_id=contact.account_id,
                contact_id=contact.id,
                action=action,
                contact_name=contact.name,
                numbers=numbers,
                tags=tuple(contact.tags),
                city=contact.city,
                manager_id=contact.manager_id,
            )
        )


class _Upsert:
    """The import's database half: one read of the account's numbers, then batched writes."""

    def __init__(self, s: AsyncSession, account_id: uuid.UUID) -> None:
        self.s = s
        self.account_id = account_id
        self.owner: dict[str, uuid.UUID] = {}
        self.count: dict[uuid.UUID, int] = {}
        self.new: dict[uuid.UUID, dict[str, Any]] = {}
        self.changed: dict[uuid.UUID, dict[str, Any]] = {}
        self.new_numbers: list[dict[str, Any]] = []
        # The line of the file's first row for each contact it created or updated; a later row
        # for the same contact is merged into it (and reported, never silently).
        self.first_line: dict[uuid.UUID, int] = {}
        self.merged: list[MergedRow] = []

    async def run(self, rows: list[csvimport.ImportRow], errors: list[csvimport.RowError]) -> None:
        existing = await self.s.execute(
            select(ContactNumber.e164, ContactNumber.contact_id).where(
                ContactNumber.account_id == self.account_id
            )
        )
        for e164, cid in existing:
            self.owner[e164] = cid
            self.count[cid] = self.count.get(cid, 0) + 1
        ext_owner: dict[str, uuid.UUID] = {
            ext: cid
            for ext, cid in await self.s.execute(
                select(Contact.external_id, Contact.id).where(
                    Contact.account_id == self.account_id, Contact.external_id.is_not(None)
                )
            )
            if ext is not None
        }
        staff: dict[str, uuid.UUID] = {
            ext: eid
            for ext, eid in await self.s.execute(
                select(Employee.extension, Employee.id).where(
                    Employee.account_id == self.account_id
                )
            )
        }
        for row in rows:
            if row.manager is not None and row.manager not in staff:
                errors.append(
                    csvimport.RowError(
                        row.line, "unknown_manager", f"no employee {row.manager} in this account"
                    )
                )
                continue
            owners = {self.owner[n] for n in row.numbers if n in self.owner}
            if len(owners) > 1:
                errors.append(
                    csvimport.RowError(
                        row.line,
                        "numbers_of_different_contacts",
                        "the numbers belong to different contacts",
                    )
                )
                continue
            owner = owners.pop() if owners else None
            holder = ext_owner.get(row.external_id) if row.external_id is not None else None
            if holder is not None and holder != owner:
                errors.append(
                    csvimport.RowError(
                        row.line, "external_id_taken", "another contact has this external_id"
                    )
                )
                continue
            cid = self._apply(row, owner, staff.get(row.manager) if row.manager else None)
            if row.external_id is not None:
                ext_owner[row.external_id] = cid
        # Core executemany on the tables: the ORM's per-row bookkeeping costs more than the SQL.
        now = utcnow()
        for batch in _batches(list(self.new.values())):
            rows_ = [{**row, "created_at": now, "updated_at": now} for row in batch]
            await self.s.execute(insert(cast(Table, Contact.__table__)), rows_)
        for batch in _batches(list(self.changed.values())):
            await self.s.execute(update(Contact), batch)
        for batch in _batches(self.new_numbers):
            await self.s.execute(insert(cast(Table, ContactNumber.__table__)), batch)
        try:
            await self.s.flush()
        except IntegrityError as exc:
            raise Conflict("the import conflicts with data written meanwhile") from exc

    def _apply(
        self, row: csvimport.ImportRow, owner: uuid.UUID | None, manager: uuid.UUID | None
    ) -> uuid.UUID:
        values: dict[str, Any] = {"name": row.name, "name_folded": row.name.casefold()}
        if manager is not None:
            values["manager_id"] = manager
        for field in ("company", "city", "email", "notes", "external_id"):
            value = getattr(row, field)
            if value is not None:
                values[field] = value
        if row.company is not None:
            values["company_folded"] = folded(row.company)
        if row.tags is not None:
            values["tags"] = list(row.tags)
            values["tags_key"] = tags_key(list(row.tags))
        cid = owner or uuid.uuid4()
        into = self.first_line.setdefault(cid, row.line)
        if into != row.line:
            self.merged.append(MergedRow(row.line, into))
        if owner is None:
            self.new[cid] = {
                "id": cid,
                "account_id": self.account_id,
                "company": None,
                "company_folded": None,
                "city": None,
                "email": None,
                "notes": None,
                "external_id": None,
                "manager_id": None,
                "tags": [],
                "tags_key": "|",
                **values,
            }
        elif cid in self.new:
            self.new[cid].update(values)
        else:
            self.changed.setdefault(cid, {"id": cid, "updated_at": utcnow()}).update(values)
        for e164 in row.numbers:
            if e164 not in self.owner:
                self.owner[e164] = cid
                position = self.count.get(cid, 0)
                self.count[cid] = position + 1
                self.new_numbers.append(
                    {
                        "account_id": self.account_id,
                        "e164": e164,
                        "contact_id": cid,
                        "position": position,
                    }
                )
        return cid


def _batches(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [items[i : i + _BATCH] for i in range(0, len(items), _BATCH)]
