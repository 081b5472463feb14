"""The resolver's read model: numbers, and per account everything routing reads, in memory.

A call must not wait on seven queries to learn whom to ring, so the resolver reads from here:

- ``number(candidates)``: the active number (DID) of any account, from one map of them all;
- ``account(account_id)``: an :class:`AccountSnapshot` — the account's settings, its parsed
  schemes and their assignments, the parsed calendar, active employees, groups with their
  members, active trunks (and which one a call to an outside number takes: ``trunk_for``);
- ``history(account_id, since)``: each employee's last answered call and calls since
  ``since`` (the "least recent" and "fewest calls" strategies), read from the journal.

Each is loaded on first use and dropped by the directory's and routing's events for its account
(``attach(bus)``; numbers by any number event), so a changed scheme, number or group takes effect
for the next call. History is dropped by the account's ``CallEnded``; when a ``flush`` is given
(the journal's write-behind) it runs before history is re-read. How long a value is served, and
how it is confirmed or read again, is ``pbx/slots.py``'s: a load an event raced is not
installed, a value past half ``max_age`` is refreshed behind the call that read it, and nothing
unconfirmed is served older than ``max_age``.

``max_age`` (30 s) bounds what no event announces here: writes made by another process (the
CLI's ``config apply``, another node) publish their events on its own bus, and reach this one
only through the outbox relay (``store/outbox.py``, within a second, unless it is off or missed
them). Those writes also bump the account's routing version (``routing/version.py``), so an
account past ``max_age`` is confirmed by reading that one integer (~1 ms on the call path of a
quiet account's first call; the whole read is ~5-8 ms) and read whole only when it moved. A
write that bypasses the services (a hand edit in the database) bumps no version: every value
is read whole in the background once it was read whole ``full_age`` (300 s) ago. Numbers and
history have no version: past ``max_age`` they are read whole.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import case, func, select

from zvonar.accounts.models import Account
from zvonar.calls.events import CallEnded, Direction, Disposition, TargetKind
from zvonar.core.bus import EventBus
from zvonar.core.errors import InvalidInput
from zvonar.core.events import Event
from zvonar.directory.events import NumberEvent
from zvonar.directory.models import Employee, Group, GroupMember, Number, Trunk
from zvonar.directory.secrets import open_password
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.outbound.trunks import prefix_match, rank_key
from zvonar.pbx.slots import Freshness, Slot
from zvonar.routing.engine import GroupInfo
from zvonar.routing.models import CalendarRow, SchemeAssignment, SchemeRow
from zvonar.routing.schedule import WorkCalendar, calendar_from_dict
from zvonar.routing.scheme import ManagerRef, Scheme
from zvonar.routing.scheme_codec import scheme_from_dict
from zvonar.routing.strategies import MemberState, Strategy
from zvonar.routing.version import ROUTING_EVENTS, routing_version
from zvonar.sip.auth_client import ClientCredentials
from zvonar.store.db import Database
from zvonar.store.sealed import Sealer, UnsealError

__all__ = [
    "AccountInfo",
    "AccountSnapshot",
    "NumberInfo",
    "Person",
    "RoutingSnapshot",
    "TrunkInfo",
    "trunk_credentials",
]

log = logging.getLogger(__name__)

# Strategies that read the journal; any scheme or group naming one makes history needed.
_HISTORY_STRATEGIES = frozenset({Strategy.least_recent.value, Strategy.fewest_calls.value})
_LAST = frozenset({ManagerRef.last.value})


@dataclass(frozen=True)
class NumberInfo:
    id: uuid.UUID
    account_id: uuid.UUID
    e164: str
    label: str | None
    trunk_id: uuid.UUID | None


@dataclass(frozen=True)
class AccountInfo:
    id: uuid.UUID
    time_zone: str
    country: str
    language: str
    recording_enabled: bool
    park_seconds: float = 120.0  # calls/park.py: the wait in a slot, then the ring back
    park_ring_back_seconds: float = 30.0
    http_route_private: bool = False  # HTTP route steps may call private addresses


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    name: str
    extension: str
    sip_username: str
    mobiles: tuple[str, ...] = ()  # rung with the devices (the employee chose ring_mobile)
    mobile_confirm: bool = False  # … and take a call only when they press 1
    dnd: bool = False  # do not disturb: routing rings none of their phones (pbx/reach.py)


@dataclass(frozen=True)
class TrunkInfo:
    id: uuid.UUID
    name: str
    host: str
    port: int | None  # None: located by DNS SRV
    transport: str  # "udp" | "tcp" | "tls"
    auth: ClientCredentials | None = field(default=None, repr=False)  # for INVITE challenges
    caller_id: str | None = None  # the number its calls show by default
    srtp: bool = False  # its calls are offered SRTP only (Trunk.srtp)
    from_user: str | None = None  # the From user its carrier requires (Trunk.from_user)
    priority: int = 100  # among trunks that may dial a number, lowest first (Trunk.priority)
    prefixes: tuple[str, ...] = ()  # E.164 prefixes it may dial; () any (Trunk.prefixes)


def trunk_credentials(trunk: Trunk, sealer: Sealer | None) -> ClientCredentials | None:
    """The carrier account a trunk's INVITEs answer 401/407 challenges with: its username and
    password whenever both are set (carriers that take calls by IP may still challenge). A
    password that does not open (the secret key changed) is logged and left out: the carrier's
    challenge then ends the leg, and the scheme moves on."""
    if not trunk.username or not trunk.password:
        return None
    try:
        password = open_password(sealer, trunk)
    except UnsealError:
        log.error("trunk %s: the stored password does not open with this secret_key", trunk.name)
        return None
    return ClientCredentials(trunk.username, password) if password else None


@dataclass(frozen=True)
class AccountSnapshot:
    """One account's routing data as of one load; never changed after it is built."""

    account: AccountInfo
    rows: list[SchemeRow]  # detached rows: id and name for HTTP route replies
    schemes: Mapping[str, Scheme]  # the parsed library by name
    scheme_by_id: Mapping[uuid.UUID, Scheme]
    assignments: Mapping[uuid.UUID, uuid.UUID]  # number id → scheme id
    calendar: WorkCalendar
    staff: Mapping[str, Person]  # active employees by extension
    extensions: Mapping[uuid.UUID, str]  # every employee (active or not) by id
    groups: Mapping[str, GroupInfo]  # groups with active members, members in ringing order
    group_names: Mapping[uuid.UUID, str]  # every group by id
    trunks: tuple[TrunkInfo, ...]  # active, by priority then name (the ranking's tie-break)
    needs_history: bool  # a scheme or group uses "least recent" / "fewest calls"
    needs_last_manager: bool = False  # a scheme rings {manager: last}
    version: int = 0  # the account's routing version this was read at

    @cached_property
    def staff_by_username(self) -> Mapping[str, Person]:
        """Active employees by SIP username: who placed a call from a phone (worked out on
        first use, once per load, not per call)."""
        return {p.sip_username: p for p in self.staff.values()}

    def scheme_of(self, number_id: uuid.UUID) -> Scheme | None:
        scheme_id = self.assignments.get(number_id)
        return None if scheme_id is None else self.scheme_by_id.get(scheme_id)

    def trunk_for(self, number: NumberInfo | None, callee: str) -> TrunkInfo | None:
        """The trunk a call leaving for ``callee`` (E.164: an employee's mobile, a scheme's
        number) goes out on, ranked as an employee's own call is (outbound/trunks.py), so an
        admin's primary and backup and per-country trunks hold for it too: the trunk that
        hosts ``number``, the account's number the customer called (its carrier takes the
        customer's number in From from the number Diversion names), else the one whose
        ``prefixes`` match ``callee`` longest, else the lowest ``priority``, then the name.
        None: no active trunk may dial ``callee`` (a trunk with prefixes dials only those).

        A call pays one pass over a few trunks, no sort and no query."""
        host = number.trunk_id if number is not None else None
        best: TrunkInfo | None = None
        best_key: tuple[bool, int, int, str] | None = None
        for trunk in self.trunks:
            match = prefix_match(trunk.prefixes, callee)
            if match < 0:
                continue
            key = rank_key(trunk.id == host, match, trunk.priority, trunk.name)
            if best_key is None or key < best_key:
                best, best_key = trunk, key
        return best


class RoutingSnapshot:
    """Numbers, per-account routing data and call history in memory (module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        max_age: float = 30.0,
        full_age: float = 300.0,
        flush: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._flush = flush
        self._fresh = Freshness("routing snapshot", max_age=max_age, full_age=full_age, clock=clock)
        self._numbers = Slot()
        self._accounts: dict[uuid.UUID, Slot] = {}
        self._history: dict[uuid.UUID, Slot] = {}

    @property
    def loads(self) -> int:
        """Whole reads of the database done (observability, tests)."""
        return self._fresh.loads

    @property
    def checks(self) -> int:
        """Accounts confirmed (or not) by their routing version instead."""
        return self._fresh.checks

    @property
    def refreshes(self) -> int:
        """Background confirmations or reloads, ahead of ``max_age``."""
        return self._fresh.refreshes

    # -- invalidation --------------------------------------------------------------------------

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Follow the directory, routing and call events; returns the unsubscribe."""
        offs = [bus.subscribe(kind, self._on_event) for kind in ROUTING_EVENTS]
        offs.append(bus.subscribe(CallEnded, self._on_call_ended))

        def detach() -> None:
            for off in offs:
                off()
            for slot in (self._numbers, *self._accounts.values(), *self._history.values()):
                if slot.refresh is not None:
                    slot.refresh.cancel()

        return detach

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, NumberEvent):
            self._numbers.drop()
        self.invalidate(event.account_id)

    async def _on_call_ended(self, event: Event) -> None:
        slot = self._history.get(event.account_id)
        if slot is not None:
            slot.drop()

    def invalidate(self, account_id: uuid.UUID | None = None) -> None:
        """Forget one account's routing data (None: everything, numbers included)."""
        if account_id is None:
            self._numbers.drop()
            for each in (*self._accounts.values(), *self._history.values()):
                each.drop()
            return
        slot = self._accounts.get(account_id)
        if slot is not None:
            slot.drop()

    # -- reads ---------------------------------------------------------------------------------

    async def preload(self) -> int:
        """Load the numbers and every account that has one (at start: the first call must not
        pay for it — the first calendar alone loads the holiday tables, ~0.5 s); returns how
        many accounts were loaded."""
        numbers: dict[str, NumberInfo] = await self._fresh.get(self._numbers, self._read_numbers)
        accounts = {n.account_id for n in numbers.values()}
        for account_id in accounts:
            await self.account(account_id)
        return len(accounts)

    async def number(self, candidates: Iterable[str]) -> NumberInfo | None:
        """The active number among ``candidates`` (E.164 forms of what was dialed)."""
        numbers: dict[str, NumberInfo] = await self._fresh.get(self._numbers, self._read_numbers)
        for e164 in candidates:
            hit = numbers.get(e164)
            if hit is not None:
                return hit
        return None

    async def account(self, account_id: uuid.UUID) -> AccountSnapshot | None:
        slot = self._accounts.setdefault(account_id, Slot())
        snapshot: AccountSnapshot | None = await self._fresh.get(
            slot,
            lambda: self._read_account(account_id),
            lambda value: self._unchanged(account_id, value),
        )
        return snapshot

    async def history(
        self, account_id: uuid.UUID, since: datetime
    ) -> Mapping[uuid.UUID, MemberState]:
        """Per employee: the end of their last answered call and how many they took since
        ``since`` (midnight in the account's zone; a new day reads again)."""
        slot = self._history.setdefault(account_id, Slot())
        if slot.value is not None and slot.value[0] != since:
            slot.drop()

        async def read() -> tuple[datetime, dict[uuid.UUID, MemberState]]:
            if self._flush is not None:
                await self._flush()  # the journal writes behind: make the last calls visible
            return since, await self._read_history(account_id, since)

        cached: tuple[datetime, dict[uuid.UUID, MemberState]] = await self._fresh.get(slot, read)
        return cached[1]

    async def last_talked_with(
        self, account_id: uuid.UUID, customer: str, since: datetime
    ) -> uuid.UUID | None:
        """The employee who last talked with ``customer`` (E.164) since ``since``: who
        answered their last inbound call or took their last callback, or placed the last
        outbound call they answered, whichever came later. Two indexed reads
        (ix_calls_account_caller, ix_calls_account_dialed), not cached: the answer changes
        with every call. No flush of the journal's writer first (it writes within 25 ms;
        their last call ended before this one began), so a busy account's calls do not each
        hurry a batch out."""
        recent = (CallRecord.account_id == account_id, CallRecord.started_at >= since)
        # A callback (a request from the website, a queue's "call me back") is a talk too:
        # its row names the customer as the caller and the agent who took it as answered_by
        # (set only once the customer answered).
        answered = (
            CallRecord.answered_by,
            CallRecord.caller == customer,
            CallRecord.direction.in_((Direction.inbound, Direction.callback)),
        )
        placed = (
            CallRecord.placed_by,
            CallRecord.dialed == customer,
            CallRecord.direction == Direction.outbound,
            CallRecord.disposition == Disposition.answered,
        )
        found = []
        async with self._db.read() as s:
            for who, *where in (answered, placed):
                stmt = select(CallRecord.started_at, who).where(*recent, *where, who.is_not(None))
                row = (
                    await s.execute(stmt.order_by(CallRecord.started_at.desc()).limit(1))
                ).first()
                if row is not None:
                    found.append(row)
        if not found:
            return None
        latest: uuid.UUID | None = max(found, key=lambda row: row[0])[1]
        return latest

    async def _unchanged(self, account_id: uuid.UUID, snapshot: AccountSnapshot | None) -> bool:
        """Whether the account's routing version is still the one ``snapshot`` was read at."""
        if snapshot is None:  # the account was not there: look again
            return False
        return await routing_version(self._db, account_id) == snapshot.version

    # -- the database --------------------------------------------------------------------------

    async def _read_numbers(self) -> dict[str, NumberInfo]:
        async with self._db.read() as s:
            rows = (
                await s.execute(
                    select(
                        Number.id, Number.account_id, Number.e164, Number.label, Number.trunk_id
                    ).where(Number.active.is_(True))
                )
            ).all()
        return {e164: NumberInfo(nid, aid, e164, label, tid) for nid, aid, e164, label, tid in rows}

    async def _read_account(self, account_id: uuid.UUID) -> AccountSnapshot | None:
        async with self._db.read() as s:
            account = await s.get(Account, account_id)
            if account is None:
                return None
            rows = list(
                await s.scalars(select(SchemeRow).where(SchemeRow.account_id == account_id))
            )
            assigned = (
                await s.execute(
                    select(SchemeAssignment.number_id, SchemeAssignment.scheme_id).where(
                        SchemeAssignment.account_id == account_id
                    )
                )
            ).all()
            cal_row = await s.get(CalendarRow, account_id)
            people = list(
                await s.scalars(select(Employee).where(Employee.account_id == account_id))
            )
            groups = (
                await s.execute(select(Group.id, Group.name).where(Group.account_id == account_id))
            ).all()
            members = (
                await s.execute(
                    select(Group.name, Group.strategy, Employee.extension, GroupMember.weight)
                    .join(GroupMember, GroupMember.group_id == Group.id)
                    .join(Employee, Employee.id == GroupMember.employee_id)
                    .where(Group.account_id == account_id, Employee.active.is_(True))
                    .order_by(Group.name, GroupMember.position)
                )
            ).all()
            trunks = list(
                await s.scalars(
                    select(Trunk)
                    .where(Trunk.account_id == account_id, Trunk.active.is_(True))
                    .order_by(Trunk.name)
                )
            )
        info = AccountInfo(
            account.id,
            account.time_zone,
            account.country,
            account.language,
            account.recording_enabled,
            account.park_seconds,
            account.park_ring_back_seconds,
            account.http_route_private,
        )
        schemes, by_id = _library(rows)
        grouped: dict[str, tuple[Strategy, list[tuple[str, int]]]] = {}
        for name, strategy, ext, weight in members:
            grouped.setdefault(name, (Strategy(strategy.value), []))[1].append((ext, weight))
        return AccountSnapshot(
            account=info,
            rows=rows,
            schemes=schemes,
            scheme_by_id=by_id,
            assignments=dict(assigned),
            calendar=_calendar(cal_row, info),
            staff={
                e.extension: Person(
                    e.id,
                    e.name,
                    e.extension,
                    e.sip_username,
                    tuple(e.mobile_numbers) if e.ring_mobile else (),
                    e.mobile_confirm,
                    e.dnd,
                )
                for e in people
                if e.active
            },
            extensions={e.id: e.extension for e in people},
            groups={n: GroupInfo(st, tuple(m)) for n, (st, m) in grouped.items()},
            group_names=dict(groups),
            trunks=tuple(
                TrunkInfo(
                    t.id,
                    t.name,
                    t.host,
                    t.port,
                    t.transport.value,
                    trunk_credentials(t, self._db.sealer),
                    t.caller_id,
                    t.srtp,
                    t.from_user,
                    t.priority,
                    tuple(t.prefixes),
                )
                # Python's order, not the database's collation: rank_trunks' tie-break.
                for t in sorted(trunks, key=lambda t: (t.priority, t.name))
            ),
            needs_history=any(st.value in _HISTORY_STRATEGIES for st, _m in grouped.values())
            or any(_names(r.definition, "strategy", _HISTORY_STRATEGIES) for r in rows),
            needs_last_manager=any(_names(r.definition, "manager", _LAST) for r in rows),
            version=account.routing_version,
        )

    async def _read_history(
        self, account_id: uuid.UUID, since: datetime
    ) -> dict[uuid.UUID, MemberState]:
        ended = func.coalesce(CallLeg.ended_at, CallLeg.answered_at)
        async with self._db.read() as s:
            rows = await s.execute(
                select(
                    CallLeg.target_id,
                    func.max(ended),
                    func.count(case((CallRecord.started_at >= since, 1))),
                )
                .join(CallRecord, CallRecord.id == CallLeg.call_pk)
                .where(
                    CallRecord.account_id == account_id,
                    CallLeg.target_kind == TargetKind.employee,
                    CallLeg.target_id.is_not(None),
                    CallLeg.answered_at.is_not(None),
                )
                .group_by(CallLeg.target_id)
            )
            return {
                emp: MemberState("", last_call_end=last, calls_today=int(today))
                for emp, last, today in rows.all()
                if emp is not None
            }


def _library(rows: list[SchemeRow]) -> tuple[dict[str, Scheme], dict[uuid.UUID, Scheme]]:
    by_name: dict[str, Scheme] = {}
    by_id: dict[uuid.UUID, Scheme] = {}
    for row in rows:
        try:
            scheme = scheme_from_dict(row.name, row.definition)
        except InvalidInput:  # rows are validated on write; a bad one must not drop calls
            log.exception("scheme %s does not parse", row.id)
            continue
        by_name[row.name] = scheme
        by_id[row.id] = scheme
    return by_name, by_id


def _calendar(row: CalendarRow | None, account: AccountInfo) -> WorkCalendar:
    try:
        return calendar_from_dict(
            row.definition if row else {}, tz=account.time_zone, default_country=account.country
        )
    except InvalidInput:  # validated on write; a bad row must not drop calls
        log.exception("the calendar of account %s does not parse", account.id)
        return WorkCalendar(tz=account.time_zone)


def _names(definition: Any, key: str, values: frozenset[str]) -> bool:
    """Whether a scheme definition sets ``key`` to one of ``values`` anywhere (a strategy
    that reads the journal, a target that does)."""
    if isinstance(definition, Mapping):
        if definition.get(key) in values:
            return True
        return any(_names(v, key, values) for v in definition.values())
    if isinstance(definition, list | tuple):
        return any(_names(v, key, values) for v in definition)
    return False
