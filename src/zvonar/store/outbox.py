"""Events between processes through the database: a transactional outbox and its relay.

A write's events reach the bus of the process that made it (``UnitOfWork.emit``). A running
server keeps what the PBX reads in memory (credentials, trunks, queues, routing data, the
contacts index) and follows those events; a write made by another process — the CLI's
``zvonar config apply``, ``zvonar account create``, another node — would never reach it.

So every unit of work also writes its events to ``event_outbox``, in its own transaction
(:meth:`EventOutbox.record`, a ``Database.before_commit`` hook): an event is there exactly when
its write committed. Each server runs :class:`OutboxRelay`, which reads the rows other processes
wrote since it started, every ``interval`` (1 s), and publishes their events on its own bus;
its own rows it skips (its bus had them at commit). Works the same on SQLite and PostgreSQL,
with no broker; a broker bus (DESIGN.md) could carry the same encoded events later.

Sequence numbers are taken at insert time, right before the commit, so on PostgreSQL a
transaction may commit a lower number after the relay read a higher one. The relay remembers
such holes and looks for them again; one still empty after ``GRACE`` seconds was rolled back.
Rows older than ``KEEP`` are deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from zvonar.core.bus import EventBus
from zvonar.core.event_codec import EventCodecError, decode_event, encode_event
from zvonar.core.tasks import cancel
from zvonar.store.base import Base, utcnow
from zvonar.store.db import Database, UnitOfWork

__all__ = ["EventOutbox", "OutboxRelay", "OutboxRow"]

log = logging.getLogger(__name__)

GRACE = 30.0  # seconds a hole below the highest number read may take to fill
KEEP = timedelta(hours=1)  # how long rows stay for relays to read
_BATCH = 500  # rows read per query
_MAX_HOLES = 10_000  # more than this at once: the oldest are given up


class OutboxRow(Base):
    __tablename__ = "event_outbox"
    # AUTOINCREMENT on SQLite: numbers never go back, even after the newest rows are deleted.
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    origin: Mapped[str] = mapped_column(String(32))  # the writing process (EventOutbox.origin)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class EventOutbox:
    """Writes each unit of work's events to the outbox (``db.before_commit(outbox.record)``)
    and starts this process's relay."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.origin = uuid.uuid4().hex  # this process

    async def record(self, uow: UnitOfWork) -> None:
        rows = []
        for event in uow.events:
            try:
                name, payload = encode_event(event)
            except EventCodecError:
                # Never fail a write for it: other processes miss this event (logged).
                log.exception("event outbox: %s cannot be encoded", type(event).__name__)
                continue
            rows.append({"origin": self.origin, "event_type": name, "payload": payload})
        if rows:
            await uow.session.execute(insert(OutboxRow), rows)

    def relay(self, bus: EventBus, *, interval: float = 1.0) -> OutboxRelay:
        return OutboxRelay(self.db, bus, self.origin, interval=interval)


class OutboxRelay:
    """Publishes on ``bus`` the events other processes committed (module docstring)."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        origin: str,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.bus = bus
        self.origin = origin
        self.interval = interval
        self._clock = clock
        self.high = 0  # the highest number read
        self._holes: dict[int, float] = {}  # numbers below ``high`` not read yet: noticed at
        self._task: asyncio.Task[None] | None = None
        self.relayed = 0  # events published (observability, tests)

    async def start(self) -> None:
        await self.mark()
        self.begin()

    async def mark(self) -> None:
        """Relay only what comes after what is there now (read before the caches are read
        whole: a write in between is then both read and relayed, never missed)."""
        async with self.db.read() as s:
            self.high = int(await s.scalar(select(func.max(OutboxRow.seq))) or 0)

    def begin(self) -> None:
        """Poll every ``interval`` until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        polls = 0
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
                polls += 1
                if polls % 600 == 1:  # at start, then every ~10 minutes at 1 s
                    await self.prune()
            except Exception:
                log.warning("event outbox relay: a poll failed", exc_info=True)

    async def poll(self) -> int:
        """Read and publish what arrived; returns how many events were published."""
        columns = select(OutboxRow.seq, OutboxRow.origin, OutboxRow.event_type, OutboxRow.payload)
        arrived = columns.where(OutboxRow.seq > self.high).order_by(OutboxRow.seq).limit(_BATCH)
        holes = sorted(self._holes)[:_BATCH]
        async with self.db.read() as s:
            rows = list((await s.execute(arrived)).all())
            if holes:
                rows += (await s.execute(columns.where(OutboxRow.seq.in_(holes)))).all()
        now = self._clock()
        published = 0
        for seq, origin, name, payload in sorted(rows, key=lambda row: row[0]):
            if seq > self.high:
                for missing in range(self.high + 1, seq):
                    self._holes[missing] = now
                self.high = seq
            else:
                self._holes.pop(seq, None)
            if origin == self.origin:
                continue
            try:
                event = decode_event(name, payload)
            except EventCodecError:
                log.exception("event outbox relay: row %d cannot be read", seq)
                continue
            await self.bus.publish(event)
            published += 1
        for seq, noticed in list(self._holes.items()):
            if now - noticed >= GRACE:  # rolled back
                del self._holes[seq]
        if len(self._holes) > _MAX_HOLES:
            for seq in sorted(self._holes)[: len(self._holes) - _MAX_HOLES]:
                del self._holes[seq]
        self.relayed += published
        return published

    async def prune(self) -> int:
        """Delete rows older than ``KEEP``; returns how many."""
        async with self.db.unit_of_work() as uow:
            result = await uow.session.execute(
                delete(OutboxRow).where(OutboxRow.created_at < utcnow() - KEEP)
            )
        return int(getattr(result, "rowcount", 0) or 0)
