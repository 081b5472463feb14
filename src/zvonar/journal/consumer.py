"""Applies batches of call events to the journal tables: one transaction per batch, Core SQL.

Per batch: the calls it names that are not remembered, nor started by the batch itself, are
read in one query (and their legs in a second), the events are applied in order to in-memory
:class:`~zvonar.journal.state.CallState` (pure rules, :mod:`zvonar.journal.state`), then only
what changed is written with ``executemany`` (new calls, new legs, updated calls grouped by the
columns they change, updated legs).

The states of recent calls are remembered (bounded, least recently used first out; far fewer
ended calls than live ones), so a live call's events cost no lookup query. They are updated
only after a batch commits: a failed batch leaves nothing behind. Nothing else writes an open
row except recovery, and the service makes the consumer :meth:`forget` after it (and after
retention).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from zvonar.calls.events import CallEvent, CallStarted
from zvonar.journal import state
from zvonar.journal.models import CallLeg, CallRecord, CallStatus
from zvonar.journal.state import LEG_MUTABLE, CallState, Key, LegState
from zvonar.store.base import utcnow
from zvonar.store.bulk import BulkStatement
from zvonar.store.db import Database

log = logging.getLogger(__name__)

CALLS: Table = CallRecord.__table__  # type: ignore[assignment]
LEGS: Table = CallLeg.__table__  # type: ignore[assignment]
REMEMBER = 20_000  # live calls whose state stays in memory (a few hundred bytes each)
# Ended calls still get a few late facts (recording, voicemail, rating) within seconds; keeping
# fewer of them keeps the heap the garbage collector walks small.
REMEMBER_ENDED = 2_000


class JournalConsumer:
    """Turns call events into journal rows; see the module docstring."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        *,
        remember: int = REMEMBER,
        remember_ended: int = REMEMBER_ENDED,
        owner_id: uuid.UUID | None = None,
    ) -> None:
        self.db = db
        # Stamped on every row this process opens (journal/owners.py): whose to close.
        self.owner_id = owner_id or uuid.uuid4()
        self.data_dir = data_dir
        self.remember = remember
        self.remember_ended = remember_ended
        self._known: OrderedDict[Key, CallState] = OrderedDict()  # open calls
        self._ended: OrderedDict[Key, CallState] = OrderedDict()  # closed calls

    def forget(self) -> None:
        """Drop every remembered state (rows were changed by someone else: recovery)."""
        self._known.clear()
        self._ended.clear()

    def _remembered(self, key: Key) -> CallState | None:
        known = self._known.get(key)
        return known if known is not None else self._ended.get(key)

    async def apply(self, events: Sequence[CallEvent], conn: AsyncConnection | None = None) -> None:
        """Apply ``events`` in order in one transaction; raises what the database raised (the
        transaction is then rolled back and nothing is remembered). On ``conn`` when
        given (the writer keeps one: see writer.py), else on one from the pool."""
        if conn is None:
            async with self.db.engine.connect() as pooled:
                await self.apply(events, pooled)
            return
        work: dict[Key, CallState] = {}
        async with conn.begin():
            # Not ``set - self._known.keys()``: that iterates every remembered call (20,000
            # tuples with a UUID each) for every batch; membership tests cost per event.
            missing = {
                key for key in _to_load(events) if key not in self._known and key not in self._ended
            }
            loaded = await _load(conn, missing) if missing else {}
            for e in events:
                key = (e.account_id, e.call_id)
                call = work.get(key)
                if call is None:
                    known = self._remembered(key)
                    call = known.copy() if known is not None else loaded.get(key)
                if isinstance(e, CallStarted):
                    if call is None:
                        call = state.started(e)
                    work[key] = call
                    continue
                if call is None:
                    log.warning("journal: %s for unknown call %s dropped", e.event_type, e.call_id)
                    continue
                work[key] = call
                state.apply(call, e, self.data_dir)
            await _write(conn, work.values(), self.owner_id)
        for key, call in work.items():
            if call.status is CallStatus.closed:
                self._known.pop(key, None)
                self._ended[key] = call
                self._ended.move_to_end(key)
            else:
                self._ended.pop(key, None)  # reopened? (never today; stay consistent anyway)
                self._known[key] = call
                self._known.move_to_end(key)
        while len(self._known) > self.remember:
            self._known.popitem(last=False)
        while len(self._ended) > self.remember_ended:
            self._ended.popitem(last=False)


def _to_load(events: Sequence[CallEvent]) -> set[Key]:
    """The calls a batch may find in the table: all but those it starts. A call's first event
    is its ``CallStarted`` (call ids are minted fresh per call), so looking those up would
    cost a query per batch for nothing; a repeated ``CallStarted`` of a stored call still
    cannot add a row — the unique (account, call id) refuses it and the writer drops it."""
    keys: set[Key] = set()
    starts: set[Key] = set()
    for e in events:
        key = (e.account_id, e.call_id)
        if key in keys or key in starts:
            continue
        (starts if isinstance(e, CallStarted) else keys).add(key)
    return keys


async def _load(conn: AsyncConnection, keys: Iterable[Key]) -> dict[Key, CallState]:
    found = await conn.execute(
        select(CALLS).where(tuple_(CALLS.c.account_id, CALLS.c.call_id).in_(list(keys)))
    )
    calls: dict[uuid.UUID, CallState] = {}
    for r in found.mappings():
        fields = {n: r[n] for n in state.INSERTED}
        calls[r["id"]] = CallState(**fields)
    if calls:
        legs = await conn.execute(select(LEGS).where(LEGS.c.call_pk.in_(list(calls))))
        for r in legs.mappings():
            leg = LegState(**{n: r[n] for n in state.LEG_COLUMNS})
            calls[leg.call_pk].legs[leg.leg_id] = leg
    return {c.key: c for c in calls.values()}


# Columns that someone besides this consumer rewrites (retention clears the recording): an
# UPDATE sets them only for the calls whose events changed them.
_OWN_ONLY = frozenset(
    {"recording_path", "recording_seconds", "voicemail_path", "voicemail_seconds"}
)


async def _write(conn: AsyncConnection, calls: Iterable[CallState], owner_id: uuid.UUID) -> None:
    new_calls: list[dict[str, Any]] = []
    new_legs: list[dict[str, Any]] = []
    changed_legs: list[dict[str, Any]] = []
    updated: list[CallState] = []
    for call in calls:
        if call.new:
            new_calls.append({**call.row(), "owner_id": owner_id})
        elif call.changed:
            updated.append(call)
        for leg in call.legs.values():
            if leg.new:
                new_legs.append(leg.row())
            elif leg.dirty:
                changed_legs.append(
                    {"_pk": leg.id, **{f"v_{k}": v for k, v in leg.updates().items()}}
                )
    # executemany needs one statement shape, and each statement is a round trip to the
    # database (most of a batch's cost): every updated call sets the union of the columns
    # the batch changed (an unchanged column is set to the value it holds: the state mirrors
    # the row), so a batch takes one UPDATE instead of one per combination of events.
    now = utcnow()
    shared: set[str] = set()
    for call in updated:
        shared |= call.changed
    shared -= _OWN_ONLY
    changed: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for call in updated:
        columns = tuple(sorted(shared | (call.changed & _OWN_ONLY)))
        changed.setdefault(columns, []).append(
            {"_pk": call.id, "updated_at": now, **{f"v_{c}": getattr(call, c) for c in columns}}
        )
    await _INSERT_CALL.run(conn, new_calls)
    await _INSERT_LEG.run(conn, new_legs)
    for columns, params in changed.items():
        await _call_update(columns).run(conn, params)
    await _LEG_UPDATE.run(conn, changed_legs)


# Compiled once per shape and dialect (zvonar.store.bulk): SQLAlchemy's per-row parameter
# work cost more than the database's.
_INSERT_CALL = BulkStatement(
    insert(CALLS).values(
        {c: bindparam(c) for c in (*state.INSERTED, "created_at", "updated_at", "owner_id")}
    )
)
_INSERT_LEG = BulkStatement(insert(LEGS).values({c: bindparam(c) for c in state.LEG_COLUMNS}))
_CALL_UPDATES: dict[tuple[str, ...], BulkStatement] = {}
_LEG_UPDATE = BulkStatement(
    update(LEGS)
    .where(LEGS.c.id == bindparam("_pk"))
    .values({c: bindparam(f"v_{c}") for c in LEG_MUTABLE})
)


def _call_update(columns: tuple[str, ...]) -> BulkStatement:
    stmt = _CALL_UPDATES.get(columns)
    if stmt is None:
        stmt = BulkStatement(
            update(CALLS)
            .where(CALLS.c.id == bindparam("_pk"))
            .values({"updated_at": bindparam("updated_at")})
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        if len(_CALL_UPDATES) >= 256:
            _CALL_UPDATES.clear()
        _CALL_UPDATES[columns] = stmt
    return stmt
