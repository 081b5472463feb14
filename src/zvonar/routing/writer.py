"""Every routing write, for one account inside one unit of work (the REST service and
``config.apply_routing`` both write through here, so the rules hold whichever door is used).

Rules: a scheme's definition parses (``invalid_scheme`` and friends, with a path); the account's
schemes as a whole have no silent goto loop and no jump to a missing scheme; ring targets name
employees (by extension) and groups (by name) of the account (``unknown_reference``); a scheme
a number or another scheme uses cannot be deleted, nor one another scheme goes to renamed
(``scheme_in_use``, naming those schemes).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from zvonar.accounts.models import Account
from zvonar.core.errors import Conflict, InvalidInput, NotFound
from zvonar.core.schemas import PROMPT_KEY
from zvonar.directory.events import Action
from zvonar.directory.models import Employee, Group, Number
from zvonar.integrations.ssrf import UnsafeTarget, check_static
from zvonar.routing.errors import SchemeInvalid
from zvonar.routing.events import CalendarChanged, SchemeAssigned, SchemeChanged
from zvonar.routing.models import CalendarRow, SchemeAssignment, SchemeRow
from zvonar.routing.schedule import WorkCalendar, calendar_from_dict, calendar_to_dict
from zvonar.routing.scheme import (
    CallerRuleStep,
    HttpRouteStep,
    IvrStep,
    PlayStep,
    RingStep,
    Scheme,
    Step,
    TargetKind,
    VoicemailStep,
    edges,
    validate_library,
    walk,
)
from zvonar.routing.scheme_codec import scheme_from_dict, scheme_to_dict
from zvonar.store.db import UnitOfWork

# A contact's tag (contacts/schemas.py, kept lower-case there; rules are lower-cased on parse).
_TAG = re.compile(r"^[\w-]{1,32}$")


@dataclass(frozen=True)
class Dangling:
    """A ring target that names an employee or a group the account does not have."""

    kind: TargetKind
    ref: str
    scheme: str
    path: str


async def guard_scheme_references(
    uow: UnitOfWork, account_id: uuid.UUID
) -> Callable[[], Awaitable[None]]:
    """For a directory write (``DirectoryService``'s guard): notes the schemes' dangling
    references now and returns the check to run after the write, which refuses one that
    left a scheme ringing an employee or a group that no longer answers to that name
    (``employee_in_use``, ``group_in_use``). References already dangling do not block it."""
    writer = await RoutingWriter.open(uow, account_id)
    before = set(await writer.dangling(await writer.library()))

    async def after() -> None:
        for d in await writer.dangling(await writer.library()):
            if d not in before:
                raise Conflict(
                    f"scheme {d.scheme!r} rings {d.kind.value} {d.ref!r}: change the scheme first",
                    code=f"{d.kind.value}_in_use",
                    scheme=d.scheme,
                    path=d.path,
                )

    return after


class RoutingWriter:
    def __init__(self, uow: UnitOfWork, account: Account) -> None:
        self.uow = uow
        self.session = uow.session
        self.account = account
        self.account_id: uuid.UUID = account.id

    @classmethod
    async def open(cls, uow: UnitOfWork, account_id: uuid.UUID) -> RoutingWriter:
        account = await uow.session.get(Account, account_id)
        if account is None:
            raise NotFound("account not found")
        return cls(uow, account)

    async def _flush(self) -> None:
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict("the change conflicts with data written meanwhile") from exc

    # --- lookups ---------------------------------------------------------------------------------
    async def rows(self) -> dict[str, SchemeRow]:
        found = await self.session.scalars(
            select(SchemeRow)
            .where(SchemeRow.account_id == self.account_id)
            .order_by(SchemeRow.name)
        )
        return {r.name: r for r in found}

    async def scheme(self, scheme_id: uuid.UUID) -> SchemeRow:
        row = await self.session.scalar(
            select(SchemeRow).where(
                SchemeRow.id == scheme_id, SchemeRow.account_id == self.account_id
            )
        )
        if row is None:
            raise NotFound("scheme not found")
        return row

    async def number(self, number_id: uuid.UUID) -> Number:
        row = await self.session.scalar(
            select(Number).where(Number.id == number_id, Number.account_id == self.account_id)
        )
        if row is None:
            raise NotFound("number not found")
        return row

    # --- validation ------------------------------------------------------------------------------
    async def check_library(self, library: Mapping[str, Scheme]) -> None:
        """Jumps and references of the whole desired set of schemes."""
        try:
            validate_library(library)
        except SchemeInvalid as exc:
            exc.details.setdefault("scheme", None)
            raise
        for d in await self.dangling(library):
            raise InvalidInput(
                f"no {d.kind.value} {d.ref!r} in this account",
                code="unknown_reference",
                path=d.path,
                scheme=d.scheme,
            )

    async def dangling(self, library: Mapping[str, Scheme]) -> list[Dangling]:
        """Ring targets naming an employee (by extension) or a group (by name) the account
        does not have, in scheme then step order."""
        extensions = set(
            await self.session.scalars(
                select(Employee.extension).where(Employee.account_id == self.account_id)
            )
        )
        groups = set(
            await self.session.scalars(
                select(Group.name).where(Group.account_id == self.account_id)
            )
        )
        known = {TargetKind.employee: extensions, TargetKind.group: groups}
        found = []
        for name, scheme in library.items():
            for branch, steps in scheme.branches.items():
                for path, step, _ in walk(steps, f"branches.{branch.value}"):
                    if not isinstance(step, RingStep):
                        continue
                    for i, t in enumerate(step.targets):
                        if t.kind in known and t.ref not in known[t.kind]:
                            at = f"{path}.targets[{i}].{t.kind.value}"
                            found.append(Dangling(t.kind, t.ref, name, at))
        return found

    async def library(self) -> dict[str, Scheme]:
        return {n: scheme_from_dict(n, r.definition) for n, r in (await self.rows()).items()}

    # --- schemes ---------------------------------------------------------------------------------
    async def save_scheme(
        self, name: str, definition: Any, row: SchemeRow | None, *, check: bool = True
    ) -> SchemeRow:
        scheme = scheme_from_dict(name, definition)
        check_written(scheme, private_routes=self.account.http_route_private)
        rows = await self.rows()
        if name in rows and (row is None or rows[name].id != row.id):
            raise Conflict(
                f"a scheme named {name!r} exists", code="scheme_name_taken", field="name"
            )
        if check:
            library = await self.library()
            if row is not None:
                library.pop(row.name, None)
                if row.name != name:  # a rename: who goes to the old name would go nowhere
                    _refuse_if_used(library, row.name, "renamed")
            library[name] = scheme
            await self.check_library(library)
        canonical = scheme_to_dict(scheme)
        if row is None:
            row = SchemeRow(account_id=self.account_id, name=name, definition=canonical)
            self.session.add(row)
            action = Action.created
        else:
            row.name, row.definition = name, canonical
            action = Action.updated
        await self._flush()
        self.uow.emit(
            SchemeChanged(
                account_id=self.account_id, scheme_id=row.id, scheme_name=name, action=action
            )
        )
        return row

    async def delete_scheme(self, row: SchemeRow, *, check: bool = True) -> None:
        used = await self.session.scalar(
            select(SchemeAssignment.number_id).where(SchemeAssignment.scheme_id == row.id).limit(1)
        )
        if used is not None:
            raise Conflict("a number uses this scheme", code="scheme_in_use")
        if check:
            library = await self.library()
            library.pop(row.name, None)
            _refuse_if_used(library, row.name, "deleted")
            validate_library(library)
        scheme_id, name = row.id, row.name
        await self.session.delete(row)
        await self._flush()
        self.uow.emit(
            SchemeChanged(
                account_id=self.account_id,
                scheme_id=scheme_id,
                scheme_name=name,
                action=Action.deleted,
            )
        )

    # --- assignments -----------------------------------------------------------------------------
    async def assignment(self, number: Number) -> SchemeAssignment | None:
        return await self.session.get(SchemeAssignment, number.id)

    async def assign(self, number: Number, scheme: SchemeRow | None) -> bool:
        """Point ``number`` at ``scheme`` (None: no scheme); returns whether anything changed."""
        current = await self.assignment(number)
        if (current.scheme_id if current else None) == (scheme.id if scheme else None):
            return False
        if current is not None and scheme is None:
            await self.session.delete(current)
        elif current is not None and scheme is not None:
            current.scheme_id = scheme.id
        elif scheme is not None:
            self.session.add(
                SchemeAssignment(
                    number_id=number.id, account_id=self.account_id, scheme_id=scheme.id
                )
            )
        await self._flush()
        self.uow.emit(
            SchemeAssigned(
                account_id=self.account_id,
                number_id=number.id,
                e164=number.e164,
                scheme_id=scheme.id if scheme else None,
            )
        )
        return True

    # --- calendar --------------------------------------------------------------------------------
    def parse_calendar(self, data: Mapping[str, Any]) -> WorkCalendar:
        return calendar_from_dict(
            data, tz=self.account.time_zone, default_country=self.account.country
        )

    async def calendar(self) -> WorkCalendar:
        row = await self.session.get(CalendarRow, self.account_id)
        return self.parse_calendar(row.definition if row else {})

    async def set_calendar(self, data: Mapping[str, Any]) -> tuple[WorkCalendar, bool]:
        cal = self.parse_calendar(data)
        canonical = calendar_to_dict(cal)
        row = await self.session.get(CalendarRow, self.account_id)
        # No row yet is the default calendar (what ``calendar()`` and an export show): setting
        # exactly that is no change, so applying an account's own export changes nothing.
        current = row.definition if row is not None else calendar_to_dict(self.parse_calendar({}))
        if current == canonical:
            return cal, False
        if row is None:
            self.session.add(CalendarRow(account_id=self.account_id, definition=canonical))
        else:
            row.definition = canonical
        await self._flush()
        self.uow.emit(CalendarChanged(account_id=self.account_id))
        return cal, True


def _goes_to(library: Mapping[str, Scheme], name: str) -> dict[str, str]:
    """The schemes of ``library`` other than ``name`` that go to scheme ``name`` (a "go to"
    step, a menu option, a caller rule), each with the path of its first such step."""
    found: dict[str, str] = {}
    for other, scheme in sorted(library.items()):
        if other == name:
            continue
        for path, target, _rang in edges(scheme):
            if target == name:
                found.setdefault(other, path)
    return found


def _refuse_if_used(library: Mapping[str, Scheme], name: str, what: str) -> None:
    """``scheme_in_use`` when another scheme goes to ``name``: ``details.schemes`` names them
    all, ``scheme`` and ``path`` the first one's step (change those schemes first)."""
    users = _goes_to(library, name)
    if users:
        first = next(iter(users))
        raise Conflict(
            f"scheme {name!r} cannot be {what} while other schemes go to it: "
            + ", ".join(map(repr, users)),
            code="scheme_in_use",
            schemes=list(users),
            scheme=first,
            path=users[first],
        )


def _all_steps(scheme: Scheme) -> list[tuple[str, Step]]:
    steps: list[tuple[str, Step]] = [("final", scheme.final)]
    for branch, branch_steps in scheme.branches.items():
        steps += [(path, step) for path, step, _ in walk(branch_steps, f"branches.{branch.value}")]
    return steps


def _prompt_refs(scheme: Scheme) -> Iterator[tuple[str, str]]:
    """``(path, key)`` of every prompt the scheme names."""
    for path, step in _all_steps(scheme):
        if isinstance(step, PlayStep):
            yield f"{path}.prompt", step.prompt
        elif isinstance(step, VoicemailStep) and step.greeting is not None:
            yield f"{path}.greeting", step.greeting
        elif isinstance(step, IvrStep):
            yield f"{path}.prompt", step.prompt
            if step.invalid_prompt is not None:
                yield f"{path}.invalid_prompt", step.invalid_prompt
        elif isinstance(step, RingStep) and step.announce is not None:
            yield f"{path}.announce", step.announce


def check_written(scheme: Scheme, *, private_routes: bool = False) -> None:
    """Rules a scheme being written must meet beyond parsing. Checked on writes only, so a
    scheme stored before a rule existed still loads (and still runs).

    * prompt keys a prompt can have (:func:`check_prompt_keys`);
    * caller rules that can match: tags a contact can carry (contacts' own form, so a rule
      that could never match is refused, not silently skipped), and at least a rule or a
      default;
    * HTTP route URLs that can be called: a valid port, no credentials, and not a loopback,
      private or link-local address or ``localhost`` unless ``private_routes`` (the account's
      ``http_route_private``). A name that resolves to such an address is caught when the call
      asks (integrations/ssrf.py): the DNS answer then may differ from now.
    """
    check_prompt_keys(scheme)
    for path, step in _all_steps(scheme):
        if isinstance(step, CallerRuleStep):
            if not step.rules and not step.default_steps and step.default_scheme is None:
                raise SchemeInvalid("a caller rule needs rules or a default", path=f"{path}.rules")
            for i, rule in enumerate(step.rules):
                bad = sorted(t for t in rule.tags if not _TAG.match(t))
                if bad:
                    raise SchemeInvalid(
                        f"{bad[0]!r} is not a tag a contact can carry: "
                        "1–32 letters, digits, _ or -",
                        path=f"{path}.rules[{i}].tags",
                    )
        elif isinstance(step, HttpRouteStep):
            why = url_refusal(step.url, private=private_routes)
            if why is not None:
                raise SchemeInvalid(why, path=f"{path}.url", code="unsafe_url")


def url_refusal(url: str, *, private: bool) -> str | None:
    """Why an HTTP route URL can never be called, as far as the URL alone tells, or None."""
    try:
        check_static(url, allow_private=private)
    except UnsafeTarget as exc:
        if exc.reason == "invalid_url":
            return str(exc)
        return f"{exc}: the account does not allow private route targets"
    return None


def check_prompt_keys(scheme: Scheme) -> None:
    """A scheme being written may name only keys a prompt can have: one that cannot exist
    would play the default prompt (or nothing) without anyone being told. Checked on writes
    only, so a scheme stored before this rule still loads."""
    for path, key in _prompt_refs(scheme):
        if not PROMPT_KEY.match(key):
            raise SchemeInvalid(
                f"{key!r} is not a prompt key: a–z, 0–9 and _, starting with a letter, at most 40",
                path=path,
            )
