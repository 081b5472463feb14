"""The call journal pages: ``GET /calls``, the account's calls, newest first, filtered by day,
outcome, direction and number, paged by the journal's own cursor, with each recording playable
in the browser for those who may listen (the API's rules, through the same services); and
``GET /calls/{id}``, one call with its legs and the scheme path it took.

Read only: nothing here writes. The recording player streams ``/api/v1/calls/{id}/recording``,
which accepts the session cookie for a GET; the page's CSP allows media from its own origin.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request

from zvonar.accounts.access import Perm, Principal
from zvonar.accounts.models import Account, User
from zvonar.accounts.zone import zone_or_utc
from zvonar.calls.events import Direction, Disposition
from zvonar.contacts import search
from zvonar.container import Container
from zvonar.core.errors import InvalidInput, NotFound
from zvonar.core.schemas import day_in_range
from zvonar.directory.models import Employee
from zvonar.journal import keyset, rules
from zvonar.journal.models import CallLeg, CallRecord
from zvonar.journal.service import CallFilter

PAGE_SIZE = 50
_MAX_EMPLOYEES = 2_000  # names shown for at most this many employees (pages of 200)


@dataclass(frozen=True)
class Query:
    """The page's filters as the form sent them, kept to fill the form in again."""

    day_from: str = ""
    day_to: str = ""
    disposition: str = ""
    direction: str = ""
    q: str = ""
    cursor: str = ""

    @classmethod
    def of(cls, request: Request) -> Query:
        qp = request.query_params

        def field(name: str, size: int = 64) -> str:
            return qp.get(name, "")[:size].strip()

        return cls(
            day_from=field("from"),
            day_to=field("to"),
            disposition=field("disposition"),
            direction=field("direction"),
            q=field("q", 32),
            cursor=field("cursor", 256),
        )

    def filter(self, country: str | None) -> tuple[CallFilter, list[str]]:
        """The journal filter for an account of ``country``, and the message keys of the
        fields that could not be read (those are left out, never guessed)."""
        problems: list[str] = []

        def day(text: str) -> date | None:
            if not text:
                return None
            try:
                found = date.fromisoformat(text)
            except ValueError:
                found = None
            if found is None or not day_in_range(found):
                problems.append("calls.error.bad_day")
                return None
            return found

        disposition = None
        if self.disposition:
            try:
                disposition = Disposition(self.disposition)
            except ValueError:
                problems.append("calls.error.bad_filter")
        direction = None
        if self.direction:
            try:
                direction = Direction(self.direction)
            except ValueError:
                problems.append("calls.error.bad_filter")
        number: tuple[str, ...] = ()
        if self.q:
            wanted = search.parse(self.q, country).number
            if wanted is None:  # letters, or too few digits to mean a number
                problems.append("calls.error.bad_number")
            elif wanted.exact:
                number = (wanted.exact,)
            else:  # as written in the account's country: 8 912… is +7912…, or those digits
                number = tuple(x for x in (wanted.prefix, wanted.contains) if x)
        return (
            CallFilter(
                started_from=day(self.day_from),
                started_to=day(self.day_to),
                dispositions=(disposition,) if disposition else (),
                direction=direction,
                party=number,
            ),
            problems,
        )

    def link(self, cursor: str | None) -> str:
        """The URL of this query at ``cursor`` (None: the newest calls)."""
        params = {
            "from": self.day_from,
            "to": self.day_to,
            "disposition": self.disposition,
            "direction": self.direction,
            "q": self.q,
        }
        kept = {k: v for k, v in params.items() if v}
        if cursor:
            kept["cursor"] = cursor
        return "/calls" + (f"?{urlencode(kept)}" if kept else "")


@dataclass(frozen=True)
class Row:
    """One call as the table shows it: times on the account's clock, names for numbers."""

    id: uuid.UUID
    started: str
    direction: str
    who: str  # the customer: caller (inbound) or callee (outbound), a name when known
    number: str
    line: str
    employee: str
    wait: str
    talk: str
    disposition: str
    recording: bool
    recording_expired: bool


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


async def _rows(
    c: Container, account: Account, calls: list[CallRecord], staff: dict[uuid.UUID, str]
) -> list[Row]:
    zone = zone_or_utc(account.time_zone)
    out = []
    for call in calls:
        outbound = call.direction is Direction.outbound
        number = call.dialed if outbound else call.caller
        hit = await c.contacts.lookup(account.id, number) if number else None  # in memory
        person = call.answered_by or call.placed_by
        out.append(
            Row(
                id=call.id,
                started=call.started_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                direction=call.direction.value,
                who=hit.name if hit is not None else "",
                number=number,
                line="" if outbound else (call.dialed_label or call.dialed),
                employee=staff.get(person, "") if person else "",
                wait=_clock(call.wait_seconds),
                talk=_clock(call.talk_seconds),
                disposition=call.disposition.value if call.disposition else "",
                recording=call.recording_path is not None,
                recording_expired=rules.expired(call.recording_path, call.recording_seconds),
            )
        )
    return out


def _name(e: Employee) -> str:
    return f"{e.name} ({e.extension})" if e.extension else e.name


async def _staff(c: Container, p: Principal) -> dict[uuid.UUID, str]:
    """Every employee's name (a page of calls may name any of them)."""
    if not p.can(Perm.directory_read):
        return {}
    names: dict[uuid.UUID, str] = {}
    while len(names) < _MAX_EMPLOYEES:
        page = await c.directory.list_employees(p, limit=200, offset=len(names))
        names.update((v.employee.id, _name(v.employee)) for v in page.items)
        if len(page.items) < 200:
            break
    return names


async def _people(c: Container, p: Principal, call: CallRecord) -> dict[uuid.UUID, str]:
    """The names of who answered or placed one call (not the whole staff)."""
    if not p.can(Perm.directory_read):
        return {}
    names: dict[uuid.UUID, str] = {}
    for who in {call.answered_by, call.placed_by} - {None}:
        assert who is not None
        with contextlib.suppress(NotFound):  # deleted since
            names[who] = _name((await c.directory.get_employee(p, who)).employee)
    return names


class CallsPage:
    def __init__(self, container: Container) -> None:
        self.c = container
        self.key = keyset.cursor_key(container.settings.effective_secret_key)

    async def context(self, user: User, request: Request) -> dict[str, Any]:
        """What calls.html shows for ``user`` (who may read calls) at this request's query."""
        p = Principal.of_user(user)
        account = await self.c.accounts.get_account(user.account_id)
        query = Query.of(request)
        f, problems = query.filter(account.country)
        after = None
        order = keyset.CallOrder.newest_first
        if query.cursor:
            try:
                order, after = keyset.resume(query.cursor, None, 0, self.key)
            except InvalidInput:
                problems.append("calls.error.bad_cursor")
        found = await self.c.journal.list_calls(p, f, limit=PAGE_SIZE, order=order, after=after)
        following = (
            keyset.encode(keyset.Cursor(order, found.next), self.key) if found.next else None
        )
        return {
            "query": query,
            "rows": await _rows(self.c, account, found.items, await _staff(self.c, p)),
            "total": found.total,
            "problems": sorted(set(problems)),
            "older": query.link(following) if following else None,
            "newest": query.link(None) if query.cursor else None,
            "can_listen": p.can(Perm.recordings_listen),
            "zone": account.time_zone,
            "dispositions": [d.value for d in Disposition],
            "directions": [d.value for d in Direction],
            "today": datetime.now(zone_or_utc(account.time_zone)).date().isoformat(),
        }


@dataclass(frozen=True)
class LegRow:
    """One leg of a call as the detail page shows it."""

    who: str
    kind: str
    rang: str  # its start on the account's clock
    ring: str  # how long it rang (to its answer or end)
    answered: bool
    end_reason: str


def _leg_rows(legs: tuple[CallLeg, ...], zone: ZoneInfo) -> list[LegRow]:
    out = []
    for leg in legs:
        stop = leg.answered_at or leg.ended_at
        out.append(
            LegRow(
                who=leg.target_display,
                kind=leg.target_kind.value,
                rang=leg.rang_at.astimezone(zone).strftime("%H:%M:%S"),
                ring=_clock((stop - leg.rang_at).total_seconds()) if stop else "",
                answered=leg.answered_at is not None,
                end_reason=leg.end_reason.value if leg.end_reason else "",
            )
        )
    return out


async def call_detail(c: Container, user: User, call_pk: uuid.UUID) -> dict[str, Any]:
    """What call.html shows: the call as a row, its legs and the scheme path, players for its
    recording and message. ``NotFound`` for a call of another account or none."""
    p = Principal.of_user(user)
    view = await c.journal.get_call(p, call_pk)  # NotFound / PermissionDenied as the API's
    account = await c.accounts.get_account(user.account_id)
    (row,) = await _rows(c, account, [view.call], await _people(c, p, view.call))
    return {
        "row": row,
        "legs": _leg_rows(view.legs, zone_or_utc(account.time_zone)),
        "path": list(view.call.scheme_path or ()),
        "voicemail": view.call.voicemail_path is not None,
        "can_listen": p.can(Perm.recordings_listen),
        "zone": account.time_zone,
    }


def may_read_calls(user: User) -> bool:
    return Principal.of_user(user).can(Perm.calls_read)


__all__ = ["CallsPage", "LegRow", "Query", "Row", "call_detail", "may_read_calls"]
