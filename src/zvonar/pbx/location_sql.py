"""A SQL-backed ``sip.location.LocationStore``: registrations survive a restart.

The registrar is sans-IO and calls its store synchronously, while the database is async. So
the store is *write-behind*: ``save``/``delete`` record the change in memory at once (the
registrar's ``LocationService`` stays authoritative) and a background task writes the
coalesced changes to ``sip_bindings`` a moment later, in one transaction. ``preload()``
reads the table before ``registrar.load(now)``, which then gets the rows from ``load_all()``.

Trade-off, deliberately: a REGISTER is answered 200 before its row is committed, so a crash
inside the flush window (``flush_interval``, 0.2 s by default) forgets the newest
registrations — phones re-register on their next refresh anyway. A failing write is logged
and retried on the next flush; it never blocks SIP.

Times: bindings carry the registrar's monotonic ``now``; rows hold wall-clock UTC, converted
with ``wall_offset = time.time() - loop.time()`` (as ``JsonFileLocationStore`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import and_, delete, or_, select

from zvonar.pbx.models import SipBinding
from zvonar.sip.location import Binding, BindingKey
from zvonar.store.db import Database

__all__ = ["SqlLocationStore"]

log = logging.getLogger(__name__)

_BATCH = 200  # keys per DELETE statement (bound parameters stay well under every limit)


def _wall(t: float, offset: float) -> datetime:
    return datetime.fromtimestamp(t + offset, UTC)


def _mono(at: datetime, offset: float) -> float:
    return at.timestamp() - offset


def binding_to_row(b: Binding, offset: float, account_id: uuid.UUID | None) -> SipBinding:
    return SipBinding(
        account_id=account_id,
        aor=b.aor,
        contact=b.contact,
        expires_at=_wall(b.expires_at, offset),
        registered_at=_wall(b.registered_at, offset),
        q=b.q,
        call_id=b.call_id,
        cseq=b.cseq,
        source_host=b.source[0],
        source_port=b.source[1],
        transport=b.transport,
        flow_id=b.flow_id,
        params=[[k, v] for k, v in b.params],
        path=list(b.path),
        user_agent=b.user_agent,
    )


def row_to_binding(row: SipBinding, offset: float) -> Binding:
    return Binding(
        aor=row.aor,
        contact=row.contact,
        expires_at=_mono(row.expires_at, offset),
        q=row.q,
        call_id=row.call_id,
        cseq=row.cseq,
        source=(row.source_host, row.source_port),
        transport=row.transport,
        flow_id=row.flow_id,
        registered_at=_mono(row.registered_at, offset),
        params=tuple((str(p[0]), None if p[1] is None else str(p[1])) for p in row.params),
        path=tuple(row.path),
        user_agent=row.user_agent,
    )


class SqlLocationStore:
    """Bindings in ``sip_bindings``, written behind (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        wall_offset: float = 0.0,
        account_of: Callable[[str], uuid.UUID | None] = lambda _aor: None,
        flush_interval: float = 0.2,
        on_change: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        self._db = db
        # Told the account of every binding saved or deleted (the ACD's "unreachable").
        self.on_change = on_change
        self.wall_offset = wall_offset
        self._account_of = account_of
        self._interval = flush_interval
        self._loaded: list[Binding] = []
        # Pending changes by key, in arrival order: a Binding to upsert, None to delete.
        self._pending: dict[BindingKey, Binding | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.flushes = 0  # transactions committed (observability, tests)
        self.failures = 0

    # -- the LocationStore protocol (synchronous, called by the registrar) ---------------------

    def load_all(self) -> list[Binding]:
        """What ``preload()`` read, minus what was changed since."""
        return [b for b in self._loaded if b.key not in self._pending]

    def save(self, binding: Binding) -> None:
        self._pending.pop(binding.key, None)  # keep arrival order: newest change last
        self._pending[binding.key] = binding
        self._schedule()
        self._changed(binding.aor)

    def delete(self, aor: str, contact: str) -> None:
        self._pending.pop((aor, contact), None)
        self._pending[(aor, contact)] = None
        self._schedule()
        self._changed(aor)

    def _changed(self, aor: str) -> None:
        if self.on_change is None:
            return
        account_id = self._account_of(aor)
        if account_id is not None:
            try:
                self.on_change(account_id)
            except Exception:  # the registrar must answer the REGISTER whatever happens here
                log.exception("location: change listener failed for %s", aor)

    # -- async side ----------------------------------------------------------------------------

    async def preload(self) -> int:
        """Read every stored binding (before ``registrar.load``); returns how many."""
        async with self._db.read() as s:
            rows = list(await s.scalars(select(SipBinding)))
        self._loaded = [row_to_binding(r, self.wall_offset) for r in rows]
        return len(self._loaded)

    def _schedule(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a sync caller): flush() must be awaited later
            return
        self._task = loop.create_task(self._later(), name="sip location flush")

    async def _later(self) -> None:
        streak = 0  # failed flushes in a row: back off up to 30 s between retries
        while self._pending:
            await asyncio.sleep(min(30.0, self._interval * 2**streak))
            failures = self.failures
            await self.flush()
            streak = streak + 1 if self.failures > failures else 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Write every pending change now, in one transaction. On failure the changes stay
        pending (unless newer ones replaced them) and the next flush retries them."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            try:
                await self._write(batch)
            except BaseException as exc:
                for key, value in batch.items():  # newer changes made meanwhile win
                    self._pending.setdefault(key, value)
                if not isinstance(exc, Exception):  # cancelled: close() flushes again
                    raise
                self.failures += 1
                log.exception("writing %d SIP bindings failed; will retry", len(batch))
                return
            self.flushes += 1

    async def _write(self, batch: dict[BindingKey, Binding | None]) -> None:
        keys = list(batch)
        async with self._db.unit_of_work() as uow:
            s = uow.session
            for i in range(0, len(keys), _BATCH):
                chunk = keys[i : i + _BATCH]
                await s.execute(
                    delete(SipBinding).where(
                        or_(*(and_(SipBinding.aor == a, SipBinding.contact == c) for a, c in chunk))
                    )
                )
            for b in batch.values():
                if b is not None:
                    s.add(binding_to_row(b, self.wall_offset, self._account_of(b.aor)))

    async def close(self) -> None:
        """Stop the timer and write what is pending."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
