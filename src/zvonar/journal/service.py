"""The journal service: consumes call events from the bus and answers principal-scoped queries.

Writes come only from call events (queued by :mod:`zvonar.journal.writer`, applied in batches by
:mod:`zvonar.journal.consumer`), recovery and retention; people only read. Reads flush the
writer first, so a caller sees every event published before it asked.

Every query filters by the principal's account, so another tenant's call is
"not found".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from zvonar.accounts.access import Perm, Principal
from zvonar.accounts.zone import range_on_clock
from zvonar.calls.events import CallEvent, Direction, Disposition
from zvonar.contacts.models import ContactNumber
from zvonar.core.bus import EventBus
from zvonar.core.errors import NotFound
from zvonar.core.events import Event
from zvonar.journal import export, paths, recovery, retention
from zvonar.journal.consumer import JournalConsumer
from zvonar.journal.keyset import CallOrder, Position, beyond, ordering
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.journal.owners import OwnerLease
from zvonar.journal.writer import JournalWriter
from zvonar.store.db import Database

AudioKind = Literal["recording", "voicemail"]

READ = Perm.calls_read


@dataclass(frozen=True)
class CallFilter:
    """``started_from`` is inclusive, ``started_to`` exclusive; a day (a ``date``) is read on
    the account's clock, and as ``started_to`` it is included. Text filters are substrings."""

    started_from: date | datetime | None = None
    started_to: date | datetime | None = None
    dispositions: Sequence[Disposition] = ()
    direction: Direction | None = None
    number: str | None = None
    caller: str | None = None
    # The customer's number contains one of these, whichever side they were on: the caller
    # of an inbound call (or a callback), the callee of an outbound one.
    party: Sequence[str] = ()
    answered_by: uuid.UUID | None = None
    has_recording: bool | None = None
    # The customer's calls: from or to any of the contact's numbers as they are now, or
    # taken for it when they were made (see _of_contact).
    contact_id: uuid.UUID | None = None
    # Calls that sounded bad: the caller's or some target's estimated MOS (the worse direction
    # of that leg) below this.
    mos_below: float | None = None


@dataclass(frozen=True)
class CallListing:
    items: list[CallRecord]
    total: int
    next: Position | None = None  # the last row's place, when more rows follow it


@dataclass(frozen=True)
class CallView:
    call: CallRecord
    legs: tuple[CallLeg, ...]


class JournalService:
    def __init__(
        self, db: Database, data_dir: Path, *, writer: JournalWriter | None = None
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.writer = writer or JournalWriter(JournalConsumer(db, data_dir))
        self.consumer = self.writer.consumer
        self.owner_id = self.consumer.owner_id
        self._bus: EventBus | None = None  # where recovery announces what it closed

    def lease(self) -> OwnerLease:
        """This process's lease on the rows it opens, with its sweep of dead processes' rows
        (journal/owners.py); the PBX holds it while it takes calls."""
        return OwnerLease(
            self.db,
            self.owner_id,
            lambda now: self.recover_open_calls(now, orphans=False),
            before_release=self.flush,
        )

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Subscribe to every call event; returns the unsubscribe. The handler only queues the
        event (the writer task starts with the first one, in the running loop)."""
        writer = self.writer
        self._bus = bus

        async def on_event(event: Event) -> None:
            if isinstance(event, CallEvent) and not writer.submit(event):
                await writer.put(event)  # the queue is full: back pressure, bounded

        return bus.subscribe(CallEvent, on_event)

    async def flush(self) -> None:
        """Wait until every call event published so far is in the tables."""
        await self.writer.flush()

    async def aclose(self) -> None:
        """Flush and stop the writer: at shutdown, after the PBX stopped, before db.dispose()."""
        await self.writer.aclose()

    # --- maintenance --------------------------------------------------------------------------
    async def recover_open_calls(
        self, now: datetime, *, idle_for: timedelta = timedelta(0), orphans: bool = True
    ) -> int:
        """Close the rows of processes that are gone (journal/recovery.py); how many. Each is
        announced as ``CallRecovered`` on this process's bus (not through the outbox)."""
        await self.flush()
        try:
            closed = await recovery.recover_open_calls(
                self.db, now, self.data_dir, idle_for=idle_for, orphans=orphans
            )
            if self._bus is not None:
                for event in closed:
                    await self._bus.publish(event)
            return len(closed)
        finally:
            self.consumer.forget()  # the rows it closed differ from what the consumer remembers

    async def purge_recordings(
        self, account_id: uuid.UUID, retention_days: int, now: datetime
    ) -> int:
        await self.flush()
        try:
            return await retention.purge_recordings(
                self.db, self.data_dir, account_id, retention_days, now
            )
        finally:
            self.consumer.forget()

    def recording_path_for(self, account_id: uuid.UUID, call_id: str, started_at: datetime) -> Path:
        """Where the B2BUA should write this call's recording."""
        return paths.recording_path_for(self.data_dir, account_id, call_id, started_at)

    # --- reads --------------------------------------------------------------------------------
    async def _filtered(self, account_id: uuid.UUID, f: CallFilter) -> Select[CallRecord]:
        if f.started_from is not None or f.started_to is not None:
            started_from, started_to = await range_on_clock(
                self.db, account_id, f.started_from, f.started_to
            )
            f = replace(f, started_from=started_from, started_to=started_to)
        stmt = select(CallRecord).where(CallRecord.account_id == account_id)
        if f.started_from is not None:
            stmt = stmt.where(CallRecord.started_at >= f.started_from)
        if f.started_to is not None:
            stmt = stmt.where(CallRecord.started_at < f.started_to)
        if f.dispositions:
            stmt = stmt.where(CallRecord.disposition.in_(list(f.dispositions)))
        if f.direction is not None:
            stmt = stmt.where(CallRecord.direction == f.direction)
        if f.number:
            stmt = stmt.where(CallRecord.dialed.contains(f.number, autoescape=True))
        if f.caller:
            stmt = stmt.where(CallRecord.caller.contains(f.caller, autoescape=True))
        if f.party:
            outbound = CallRecord.direction == Direction.outbound
            stmt = stmt.where(
                or_(
                    *(
                        or_(
                            and_(outbound, CallRecord.dialed.contains(x, autoescape=True)),
                            and_(~outbound, CallRecord.caller.contains(x, autoescape=True)),
                        )
                        for x in f.party
                    )
                )
            )
        if f.answered_by is not None:
            stmt = stmt.where(CallRecord.answered_by == f.answered_by)
        if f.contact_id is not None:
            stmt = stmt.where(_of_contact(account_id, f.contact_id))
        if f.has_recording is True:
            stmt = stmt.where(CallRecord.recording_path.is_not(None))
        elif f.has_recording is False:
            stmt = stmt.where(CallRecord.recording_path.is_(None))
        if f.mos_below is not None:
            bad_leg = select(CallLeg.id).where(
                CallLeg.call_pk == CallRecord.id, CallLeg.mos < f.mos_below
            )
            stmt = stmt.where(or_(CallRecord.mos < f.mos_below, bad_leg.exists()))
        return stmt

    async def list_calls(
        self,
        p: Principal,
        f: CallFilter,
        *,
        limit: int = 50,
        offset: int = 0,
        order: CallOrder = CallOrder.newest_first,
        after: Position | None = None,
    ) -> CallListing:
        """A page in ``order``: the rows beyond ``after`` (keyset, journal/keyset.py), then
        past ``offset`` of them. ``total`` counts every row ``f`` selects, wherever the page
        is."""
        p.require(READ)
        await self.flush()
        stmt = await self._filtered(p.account_id, f)
        async with self.db.read() as s:
            total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
            if after is not None:
                stmt = stmt.where(beyond(order, after))
            # One row more than asked: whether a next page exists, without a second query.
            rows = list(
                await s.scalars(stmt.order_by(*ordering(order)).limit(limit + 1).offset(offset))
            )
        items = rows[:limit]
        last = items[-1] if len(rows) > limit else None
        return CallListing(
            items=items,
            total=int(total or 0),
            next=Position(last.started_at, last.id) if last is not None else None,
        )

    async def export_calls(
        self,
        p: Principal,
        f: CallFilter,
        order: CallOrder = CallOrder.newest_first,
        separator: export.Separator = export.Separator.comma,
    ) -> AsyncIterator[bytes]:
        """The calls ``f`` selects as CSV (:mod:`zvonar.journal.export`) in ``order``. The
        permission is checked and the writer flushed now, before the first byte is sent."""
        p.require(READ)
        await self.flush()
        filtered = await self._filtered(p.account_id, f)
        return export.export_csv(self.db, p.account_id, filtered, order=order, separator=separator)

    async def _call(self, p: Principal, call_pk: uuid.UUID) -> CallRecord:
        p.require(READ)
        await self.flush()
        async with self.db.read() as s:
            call = await s.scalar(
                select(CallRecord).where(
                    CallRecord.id == call_pk, CallRecord.account_id == p.account_id
                )
            )
        if call is None:
            raise NotFound("call not found")
        return call

    async def get_call(self, p: Principal, call_pk: uuid.UUID) -> CallView:
        call = await self._call(p, call_pk)
        async with self.db.read() as s:
            legs = await s.scalars(
                select(CallLeg)
                .where(CallLeg.call_pk == call.id)
                .order_by(CallLeg.rang_at, CallLeg.leg_id)
            )
            return CallView(call=call, legs=tuple(legs))

    async def audio_file(self, p: Principal, call_pk: uuid.UUID, kind: AudioKind) -> Path:
        """The WAV file of the call's ``recording`` or of the ``voicemail`` message the caller
        left; ``recording_not_found`` / ``voicemail_not_found`` when there is none (never
        made, purged by retention, or missing on disk)."""
        p.require(Perm.recordings_listen)
        call = await self._call(p, call_pk)
        stored = call.recording_path if kind == "recording" else call.voicemail_path
        file = paths.to_file(self.data_dir, call.account_id, stored) if stored else None
        if file is None or not file.is_file():
            raise NotFound(f"this call has no {kind} file", code=f"{kind}_not_found")
        return file


def _of_contact(account_id: uuid.UUID, contact_id: uuid.UUID) -> ColumnElement[bool]:
    """A customer's calls. ``caller_contact_id`` is who the caller was when the call came in,
    so alone it misses the calls made before the contact existed (or before it had that
    number) and every call the account made to them; the contact's current numbers find
    those: an inbound call (or a callback, whose caller is the customer) from one of them, an
    outbound call to one. Each side has its (account, number, started_at) index."""
    numbers = select(ContactNumber.e164).where(
        ContactNumber.account_id == account_id, ContactNumber.contact_id == contact_id
    )
    return or_(
        CallRecord.caller_contact_id == contact_id,
        and_(
            CallRecord.direction.in_([Direction.inbound, Direction.callback]),
            CallRecord.caller.in_(numbers),
        ),
        and_(CallRecord.direction == Direction.outbound, CallRecord.dialed.in_(numbers)),
    )
