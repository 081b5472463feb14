"""Applies batches of call events to the journal tables: one transaction per batch, Core SQL.

Per batch: the calls it names that are not remembered are read in one query (and their legs in
a second), the events are applied in order to in-memory :class:`~zvonar.journal.state.CallState`
(pure rules, :mod:`zvonar.journal.state`), then only what changed is written with ``executemany``
(new calls, new legs, updated calls grouped by the columns they change, updated legs).

The states of recent calls are remembered (bounded, least recently used first out), so a live
call's events cost no lookup query. They are updated only after a batch commits: a failed batch
leaves nothing behind. Nothing else writes an open row except recovery, and the service makes
the consumer :meth:`forget` after it (and after retention).
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
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.journal.state import CallState, Key, LegState
from zvonar.store.db import Database

log = logging.getLogger(__name__)

CALLS: Table = CallRecord.__table__  # type: ignore[assignment]
LEGS: Table = CallLeg.__table__  # type: ignore[assignment]
REMEMBER = 20_000  # calls whose state stays in memory (a few hundred bytes each)


class JournalConsumer:
    """Turns call events into journal rows; see the module docstring."""

    def __init__(self, db: Database, data_dir: Path, *, remember: int = REMEMBER) -> None:
        self.db = db
        self.data_dir = data_dir
        self.remember = remember
        self._known: OrderedDict[Key, CallState] = OrderedDict()

    def forget(self) -> None:
        """Drop every remembered state (rows were changed by someone else: recovery)."""
        self._known.clear()

    async def apply(self, events: Sequence[CallEvent]) -> None:
        """Apply ``events`` in order in one transaction; raises what the database raised (the
        transaction is then rolled back and nothing is remembered)."""
        work: dict[Key, CallState] = {}
        async with self.db.engine.begin() as conn:
            missing = {(e.account_id, e.call_id) for e in events} - self._known.keys()
            loaded = await _load(conn, missing) if missing else {}
            for e in events:
                key = (e.account_id, e.call_id)
                call = work.get(key)
                if call is None:
                    known = self._known.get(key)
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
            await _write(conn, work.values())
        for key, call in work.items():
            self._known[key] = call
            self._known.move_to_end(key)
        while len(self._known) > self.remember:
            self._known.popitem(last=False)


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


async def _write(conn: AsyncConnection, calls: Iterable[CallState]) -> None:
    new_calls: list[dict[str, Any]] = []
    new_legs: list[dict[str, Any]] = []
    changed_legs: list[dict[str, Any]] = []
    # executemany needs one statement shape: calls are grouped by the columns they change.
    changed: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for call in calls:
        if call.new:
            new_calls.append(call.row())
        elif call.changed:
            values = call.updates()
            changed.setdefault(tuple(values), []).append(
                {"_pk": call.id, **{f"v_{k}": v for k, v in values.items()}}
            )
        for leg in call.legs.values():
            if leg.new:
                new_legs.append(leg.row())
            elif leg.dirty:
                changed_legs.append(
                    {"_pk": leg.id, **{f"v_{k}": v for k, v in leg.updates().items()}}
                )
    if new_calls:
        await conn.execute(insert(CALLS), new_calls)
    if new_legs:
        await conn.execute(insert(LEGS), new_legs)
    for columns, params in changed.items():
        stmt = (
            update(CALLS)
            .where(CALLS.c.id == bindparam("_pk"))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        await conn.execute(stmt, params)
    if changed_legs:
        stmt = (
            update(LEGS)
            .where(LEGS.c.id == bindparam("_pk"))
            .values({c: bindparam(f"v_{c}") for c in ("answered_at", "ended_at", "end_reason")})
        )
        await conn.execute(stmt, changed_legs)
