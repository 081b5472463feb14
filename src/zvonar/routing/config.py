"""Routing as code: the ``routing`` section of ``zvonar config`` (same contract as directory's).

``await export_routing(db, account_id) -> dict``::

    calendar: {hours: {mon: ["09:00-18:00"], ...}, country?, extra_days_off, working_days,
               custom_hours}                            # no country: the account's
    schemes:  {name: {branches: {...}, final?: {...}}}      # scheme_codec's canonical form
    numbers:  {e164: scheme name}                           # numbers that have a scheme

``await apply_routing(db, account_id, section, *, dry_run) -> list[Change]``

* An absent top-level key is left alone; a present one is the complete desired set (schemes
  missing from it are deleted, numbers missing from it lose their scheme).
* The whole section is validated before writing: each scheme parses, the desired set of schemes
  has no silent goto loop or dangling jump, ring targets exist, numbers belong to the account.
  Errors are ``InvalidInput``/``Conflict``/``NotFound`` with ``details["path"]`` such as
  ``routing.schemes.Main.branches.working[0].targets[0].group`` or ``routing.numbers.+7495…``.
* One unit of work; order: calendar, schemes (create/update), numbers, scheme deletions.
* ``dry_run`` reports the same changes and rolls back. Applying the same section twice yields
  ``[]`` the second time. Numbers must already exist (the directory section is applied first).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from zvonar.core.errors import InvalidInput, NotFound, ZvonarError
from zvonar.directory import phone
from zvonar.directory.config import Change, ChangeKind, FieldChange
from zvonar.directory.models import Number
from zvonar.routing.models import CalendarRow, SchemeAssignment, SchemeRow
from zvonar.routing.schedule import calendar_to_dict
from zvonar.routing.scheme_codec import scheme_from_dict, scheme_to_dict
from zvonar.routing.writer import RoutingWriter
from zvonar.store.db import Database, UnitOfWork, dry_runnable

_KEYS = {"calendar", "schemes", "numbers"}


@contextmanager
def _at(prefix: str) -> Iterator[None]:
    try:
        yield
    except ZvonarError as exc:
        inner = exc.details.get("path")
        exc.details["path"] = f"{prefix}.{inner}" if inner else prefix
        raise


async def _assignments(w: RoutingWriter) -> dict[str, str]:
    rows = await w.session.execute(
        select(Number.e164, SchemeRow.name)
        .join(SchemeAssignment, SchemeAssignment.number_id == Number.id)
        .join(SchemeRow, SchemeRow.id == SchemeAssignment.scheme_id)
        .where(Number.account_id == w.account_id)
        .order_by(Number.e164)
    )
    return {e164: name for e164, name in rows}


async def export_routing(db: Database, account_id: uuid.UUID) -> dict[str, Any]:
    async with db.unit_of_work() as uow:  # nothing is written; the writer scopes the reads
        w = await RoutingWriter.open(uow, account_id)
        calendar = calendar_to_dict(await w.calendar())
        schemes = {name: dict(r.definition) for name, r in (await w.rows()).items()}
        numbers = await _assignments(w)
    return {"calendar": calendar, "schemes": schemes, "numbers": numbers}


async def apply_routing(
    db: Database, account_id: uuid.UUID, section: dict[str, Any], *, dry_run: bool
) -> list[Change]:
    return await dry_runnable(
        db, lambda uow: apply_routing_in(uow, account_id, section), dry_run=dry_run
    )


async def apply_routing_in(
    uow: UnitOfWork, account_id: uuid.UUID, section: dict[str, Any]
) -> list[Change]:
    """The same inside the caller's unit of work (see ``zvonar.configfile``)."""
    if not isinstance(section, dict) or set(section) - _KEYS:
        raise InvalidInput(
            f"routing: only {', '.join(sorted(_KEYS))} may be set",
            code="invalid_config",
            path="routing",
        )
    changes: list[Change] = []
    w = await RoutingWriter.open(uow, account_id)
    await _apply(w, section, changes)
    return changes


async def _apply(w: RoutingWriter, section: dict[str, Any], changes: list[Change]) -> None:
    # --- validate everything first --------------------------------------------------------------
    raw_schemes = section.get("schemes")
    wanted: dict[str, dict[str, Any]] | None = None
    if raw_schemes is not None:
        if not isinstance(raw_schemes, dict):
            raise InvalidInput("expected a mapping", code="invalid_config", path="routing.schemes")
        parsed = {}
        for name, data in raw_schemes.items():
            with _at(f"routing.schemes.{name}"):
                parsed[str(name)] = scheme_from_dict(str(name), data)
        try:
            await w.check_library(parsed)
        except ZvonarError as exc:
            scheme = exc.details.get("scheme")
            where = exc.details.get("path")
            exc.details["path"] = f"routing.schemes.{scheme}.{where}" if scheme else where
            raise
        wanted = {name: scheme_to_dict(s) for name, s in parsed.items()}
    numbers: dict[str, str] | None = None
    if section.get("numbers") is not None:
        raw_numbers = section["numbers"]
        if not isinstance(raw_numbers, dict):
            raise InvalidInput("expected a mapping", code="invalid_config", path="routing.numbers")
        names = set(wanted) if wanted is not None else set(await w.rows())
        numbers = {}
        for raw, scheme_name in raw_numbers.items():
            path = f"routing.numbers.{raw}"
            with _at(path):
                e164 = phone.normalize(str(raw), w.account.country)
            if scheme_name not in names:
                raise InvalidInput(
                    f"no scheme named {scheme_name!r}", code="unknown_reference", path=path
                )
            numbers[e164] = str(scheme_name)

    # --- calendar --------------------------------------------------------------------------------
    if section.get("calendar") is not None:
        cal_row = await w.session.get(CalendarRow, w.account_id)
        old = dict(cal_row.definition) if cal_row else None
        with _at("routing.calendar"):
            cal, changed = await w.set_calendar(section["calendar"])
        if changed:
            new, was = calendar_to_dict(cal), old or {}
            diff = tuple(  # a key left out now (the account's country) is a change too
                FieldChange(k, was.get(k), new.get(k))
                for k in [*new, *(k for k in was if k not in new)]
                if (k in was) != (k in new) or was.get(k) != new.get(k)
            )
            changes.append(Change(ChangeKind.update, "calendar", "calendar", diff))

    # --- schemes: create and update (deletions wait until numbers moved off) ----------------------
    rows = await w.rows()
    if wanted is not None:
        for name, definition in wanted.items():
            row = rows.get(name)
            if row is None:
                rows[name] = await w.save_scheme(name, definition, None, check=False)
                changes.append(Change(ChangeKind.create, "scheme", name))
            elif row.definition != definition:
                old_def = row.definition
                await w.save_scheme(name, definition, row, check=False)
                changes.append(
                    Change(
                        ChangeKind.update,
                        "scheme",
                        name,
                        tuple(
                            FieldChange(k, old_def.get(k), definition.get(k))
                            for k in ("branches", "final", "rating")
                            if old_def.get(k) != definition.get(k)
                        ),
                    )
                )

    # --- numbers --------------------------------------------------------------------------------
    if numbers is not None:
        current = await _assignments(w)
        owned = {
            n.e164: n
            for n in await w.session.scalars(
                select(Number).where(Number.account_id == w.account_id)
            )
        }
        for e164 in sorted(set(current) | set(numbers)):
            want = numbers.get(e164)
            if current.get(e164) == want:
                continue
            number = owned.get(e164)
            if number is None:
                raise NotFound(
                    f"{e164} is not a number of this account", path=f"routing.numbers.{e164}"
                )
            await w.assign(number, rows[want] if want is not None else None)
            changes.append(
                Change(
                    ChangeKind.update,
                    "number",
                    e164,
                    (FieldChange("scheme", current.get(e164), want),),
                )
            )

    # --- scheme deletions -----------------------------------------------------------------------
    if wanted is not None:
        for name, gone in rows.items():
            if name not in wanted:
                with _at(f"routing.schemes.{name}"):
                    await w.delete_scheme(gone, check=False)
                changes.append(Change(ChangeKind.delete, "scheme", name))
