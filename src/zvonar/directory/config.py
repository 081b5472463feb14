"""The directory of an account as code: export it as plain data, apply plain data back.

Contract (``zvonar config export|apply`` builds on these two functions):

``await export_directory(db, account_id) -> dict``
    A YAML/JSON-friendly dict (only str, int, bool, None, lists and dicts) with four sections in
    dependency order, each keyed by a natural key, never by database id::

        trunks:    {name: {host, port, transport, auth_mode, username, registrar,
                           allowed_sources, caller_id, srtp, from_user, prefixes, priority,
                           active}}
        employees: {extension: {name, sip_username, mobile_numbers, ring_mobile, mobile_confirm,
                                time_zone, email, active}}
        groups:    {name: {strategy, members: [{extension, weight}, ...]}}   # ringing order
        numbers:   {e164: {label, trunk (a trunk name or null), active}}

    Secrets are never exported: trunk ``password`` and employee ``sip_password`` are absent.
    Derived number facts (kind, country, region) are not exported either. Raises ``NotFound``
    for an unknown account.

``await apply_directory(db, account_id, section, *, dry_run) -> list[Change]``
    Makes the account match ``section`` (same shape as the export) and returns what changed.

    * A top-level section that is absent is left alone; a present one (even ``{}``) is the
      complete desired set: objects missing from it are deleted.
    * Inside an object, absent fields take their defaults (as on creation) — except secrets,
      where absent means "keep the current one". A secret given is compared with the stored one
      (the SIP password through its HA1), so re-applying the same file changes nothing. A new
      employee with no ``sip_password`` has no SIP credentials until one is set.
    * ``sip_username`` defaults to the extension. Numbers may be written in national format
      (read with the account's country) and are keyed by their E.164 form. Group members may be
      written as plain extensions or as ``{extension, weight}``.
    * The whole section is validated first (schema: ``InvalidInput(code="invalid_config")``;
      phone numbers, zones, hosts, networks and cross references: their own codes). Every error
      is an ``InvalidInput``/``Conflict``/``NotFound`` whose ``details["path"]`` names the place,
      e.g. ``employees.101.time_zone`` or ``groups.Sales.members[2].extension``.
    * Everything runs in ONE unit of work: on any error nothing is written. Order: trunks,
      employees, groups, numbers — within each kind deletions first (so a freed SIP username can
      be reused), except trunk deletions, which run last, after numbers have moved off them.
    * ``dry_run=True`` does the same work, reports the same changes and rolls back: nothing is
      written and no event is published. Otherwise the usual events are published after commit.
    * The result is idempotent: applying the same section twice returns ``[]`` the second time.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zvonar.accounts.models import Account
from zvonar.core.errors import InvalidInput, NotFound, ZvonarError
from zvonar.directory import phone, rules
from zvonar.directory.config_spec import DirectorySection, MemberSpec, parse_section
from zvonar.directory.models import (
    Employee,
    Group,
    GroupStrategy,
    Number,
    Trunk,
)
from zvonar.directory.schemas import (
    EmployeeIn,
    EmployeePatch,
    GroupIn,
    GroupPatch,
    MemberIn,
    NumberIn,
    NumberPatch,
    TrunkIn,
    TrunkPatch,
)
from zvonar.directory.service import members_of
from zvonar.directory.writer import DirectoryWriter
from zvonar.store.db import Database, UnitOfWork, dry_runnable

MASK = "***"


class ChangeKind(enum.StrEnum):
    create = "create"
    update = "update"
    delete = "delete"


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """One object created, updated or deleted by ``apply_directory``. Secrets show as ``***``."""

    kind: ChangeKind
    object_type: str  # "trunk" | "employee" | "group" | "number"
    key: str
    fields: tuple[FieldChange, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "object": self.object_type,
            "key": self.key,
            "fields": {f.field: {"old": f.old, "new": f.new} for f in self.fields},
        }

    def describe(self) -> str:
        """One diff line, e.g. ``~ employee 101: name: 'Ann' -> 'Anna'``."""
        head = f"{_SIGN[self.kind]} {self.object_type} {self.key}"
        if self.kind is ChangeKind.delete:
            return head
        if self.kind is ChangeKind.create:
            shown = [f"{f.field}={f.new!r}" for f in self.fields if f.new not in (None, [], False)]
            return f"{head}: {', '.join(shown)}" if shown else head
        return f"{head}: " + ", ".join(f"{f.field}: {f.old!r} -> {f.new!r}" for f in self.fields)


_SIGN = {ChangeKind.create: "+", ChangeKind.update: "~", ChangeKind.delete: "-"}


@contextmanager
def _at(path: str, *, key_field: str | None = None) -> Iterator[None]:
    """Tag a domain error raised inside with where in the section it happened. ``key_field`` is
    the error field that *is* the object's key (it adds nothing to the path)."""
    try:
        yield
    except ZvonarError as exc:
        if "path" not in exc.details:
            name = exc.details.get("field")
            exc.details["path"] = f"{path}.{name}" if name and name != key_field else path
        raise


# --- export ---------------------------------------------------------------------------------------


def _trunk_spec(t: Trunk) -> dict[str, Any]:
    return {
        "host": t.host,
        "port": t.port,
        "transport": t.transport.value,
        "auth_mode": t.auth_mode.value,
        "username": t.username,
        "registrar": t.registrar,
        "allowed_sources": list(t.allowed_sources),
        "caller_id": t.caller_id,
        "srtp": t.srtp,
        "from_user": t.from_user,
        "prefixes": list(t.prefixes),
        "priority": t.priority,
        "active": t.active,
    }


def _employee_spec(e: Employee) -> dict[str, Any]:
    return {
        "name": e.name,
        "sip_username": e.sip_username,
        "mobile_numbers": list(e.mobile_numbers),
        "ring_mobile": e.ring_mobile,
        "mobile_confirm": e.mobile_confirm,
        "time_zone": e.time_zone,
        "email": e.email,
        "active": e.active,
    }


def _number_spec(n: Number, trunk_names: dict[uuid.UUID, str]) -> dict[str, Any]:
    trunk = trunk_names[n.trunk_id] if n.trunk_id is not None else None
    return {"label": n.label, "trunk": trunk, "active": n.active}


async def _trunks(s: AsyncSession, account_id: uuid.UUID) -> dict[str, Trunk]:
    rows = await s.scalars(select(Trunk).where(Trunk.account_id == account_id).order_by(Trunk.name))
    return {t.name: t for t in rows}


async def _employees(s: AsyncSession, account_id: uuid.UUID) -> dict[str, Employee]:
    rows = await s.scalars(
        select(Employee)
        .where(Employee.account_id == account_id)
        .order_by(func.length(Employee.extension), Employee.extension)
    )
    return {e.extension: e for e in rows}


async def _groups(
    s: AsyncSession, account_id: uuid.UUID
) -> tuple[dict[str, Group], dict[str, dict[str, Any]]]:
    groups = {
        g.name: g
        for g in await s.scalars(
            select(Group).where(Group.account_id == account_id).order_by(Group.name)
        )
    }
    members = await members_of(s, [g.id for g in groups.values()])
    specs = {
        name: {
            "strategy": g.strategy.value,
            "members": [
                {"extension": m.extension, "weight": m.weight} for m in members.get(g.id, ())
            ],
        }
        for name, g in groups.items()
    }
    return groups, specs


async def _numbers(s: AsyncSession, account_id: uuid.UUID) -> dict[str, Number]:
    rows = await s.scalars(
        select(Number).where(Number.account_id == account_id).order_by(Number.e164)
    )
    return {n.e164: n for n in rows}


async def export_directory(db: Database, account_id: uuid.UUID) -> dict[str, Any]:
    """The account's directory as plain data; see the module docstring for the shape."""
    async with db.read() as s:
        if await s.get(Account, account_id) is None:
            raise NotFound("account not found")
        trunks = await _trunks(s, account_id)
        employees = await _employees(s, account_id)
        _, groups = await _groups(s, account_id)
        numbers = await _numbers(s, account_id)
    names = {t.id: name for name, t in trunks.items()}
    return {
        "trunks": {name: _trunk_spec(t) for name, t in trunks.items()},
        "employees": {ext: _employee_spec(e) for ext, e in employees.items()},
        "groups": groups,
        "numbers": {e164: _number_spec(n, names) for e164, n in numbers.items()},
    }


# --- apply: normalize the whole section before writing anything -----------------------------------


@dataclass
class _Want:
    trunks: dict[str, dict[str, Any]] | None = None
    trunk_secrets: dict[str, str] = field(default_factory=dict)
    employees: dict[str, dict[str, Any]] | None = None
    employee_secrets: dict[str, str] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] | None = None
    numbers: dict[str, dict[str, Any]] | None = None


def _normalize(section: DirectorySection, w: DirectoryWriter) -> _Want:
    want = _Want()
    if section.trunks is not None:
        want.trunks = {}
        for name, t in section.trunks.items():
            with _at(f"trunks.{name}"):
                want.trunks[name] = {
                    "host": rules.host(t.host),
                    "port": t.port,
                    "transport": t.transport.value,
                    "auth_mode": t.auth_mode.value,
                    "username": t.username,
                    "registrar": rules.host(t.registrar, field="registrar")
                    if t.registrar
                    else None,
                    "allowed_sources": rules.networks(t.allowed_sources),
                    "caller_id": w.caller_id(t.caller_id),
                    "srtp": t.srtp,
                    "from_user": t.from_user,
                    "prefixes": rules.prefixes(t.prefixes),
                    "priority": t.priority,
                    "active": t.active,
                }
            if t.password is not None:
                want.trunk_secrets[name] = t.password
    if section.employees is not None:
        want.employees = {}
        for ext, e in section.employees.items():
            with _at(f"employees.{ext}"):
                want.employees[ext] = {
                    "name": e.name,
                    "sip_username": e.sip_username or ext,
                    "mobile_numbers": w.mobiles(e.mobile_numbers),
                    "ring_mobile": e.ring_mobile,
                    "mobile_confirm": e.mobile_confirm,
                    "time_zone": rules.time_zone(e.time_zone) if e.time_zone else None,
                    "email": rules.email(e.email) if e.email else None,
                    "active": e.active,
                }
            if e.sip_password is not None:
                want.employee_secrets[ext] = e.sip_password
    if section.groups is not None:
        want.groups = {}
        for name, g in section.groups.items():
            members: list[dict[str, Any]] = []
            for i, m in enumerate(g.members):
                spec = MemberSpec(extension=m) if isinstance(m, str) else m
                path = f"groups.{name}.members[{i}].extension"
                if want.employees is not None and spec.extension not in want.employees:
                    raise InvalidInput(
                        f"no employee with extension {spec.extension}",
                        code="unknown_reference",
                        path=path,
                    )
                if any(x["extension"] == spec.extension for x in members):
                    raise InvalidInput(
                        "an employee appears twice", code="duplicate_member", path=path
                    )
                members.append({"extension": spec.extension, "weight": spec.weight})
            want.groups[name] = {"strategy": g.strategy.value, "members": members}
    if section.numbers is not None:
        want.numbers = {}
        for raw, n in section.numbers.items():
            path = f"numbers.{raw}"
            with _at(path, key_field="number"):
                e164 = phone.normalize(raw, w.account.country)
            if e164 in want.numbers:
                raise InvalidInput(f"{e164} is listed twice", code="duplicate_key", path=path)
            if want.trunks is not None and n.trunk is not None and n.trunk not in want.trunks:
                raise InvalidInput(
                    f"no trunk named {n.trunk!r}", code="unknown_reference", path=f"{path}.trunk"
                )
            want.numbers[e164] = {"label": n.label, "trunk": n.trunk, "active": n.active}
    return want


# --- apply: write --------------------------------------------------------------------------------


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}


def _fields(diff: dict[str, tuple[Any, Any]]) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(k, old, new) for k, (old, new) in diff.items())


def _created(
    spec: dict[str, Any], secret: str | None, secret_field: str
) -> tuple[FieldChange, ...]:
    diff = {k: (None, v) for k, v in spec.items()}
    if secret is not None:
        diff[secret_field] = (None, MASK)
    return _fields(diff)


def _deleted(spec: dict[str, Any]) -> tuple[FieldChange, ...]:
    return _fields({k: (v, None) for k, v in spec.items()})


class _Applier:
    def __init__(self, w: DirectoryWriter, want: _Want) -> None:
        self.w = w
        self.s = w.session
        self.want = want
        self.changes: list[Change] = []

    def _record(
        self, kind: ChangeKind, obj: str, key: str, fields: tuple[FieldChange, ...]
    ) -> None:
        self.changes.append(Change(kind, obj, key, fields))

    async def trunks(self) -> None:
        if self.want.trunks is None:
            return
        current = await _trunks(self.s, self.w.account_id)
        for name, d in self.want.trunks.items():
            secret = self.want.trunk_secrets.get(name)
            with _at(f"trunks.{name}"):
                t = current.get(name)
                if t is None:
                    await self.w.create_trunk(
                        TrunkIn(name=name, password=secret, **d), require_password=False
                    )
                    self._record(ChangeKind.create, "trunk", name, _created(d, secret, "password"))
                    continue
                diff = _diff(_trunk_spec(t), d)
                patch = {k: d[k] for k in diff}
                if secret is not None and not self.w.same_password(t, secret):
                    diff["password"] = (MASK if t.password else None, MASK)
                    patch["password"] = secret
                if diff:
                    await self.w.update_trunk(t, TrunkPatch(**patch))
                    self._record(ChangeKind.update, "trunk", name, _fields(diff))

    async def delete_trunks(self) -> None:
        if self.want.trunks is None:
            return
        for name, t in (await _trunks(self.s, self.w.account_id)).items():
            if name not in self.want.trunks:
                with _at(f"trunks.{name}"):
                    spec = _trunk_spec(t)
                    await self.w.delete_trunk(t)
                    self._record(ChangeKind.delete, "trunk", name, _deleted(spec))

    async def employees(self) -> None:
        if self.want.employees is None:
            return
        current = await _employees(self.s, self.w.account_id)
        for ext, gone in current.items():
            if ext not in self.want.employees:
                spec = _employee_spec(gone)
                await self.w.delete_employee(gone)
                self._record(ChangeKind.delete, "employee", ext, _deleted(spec))
        for ext, d in self.want.employees.items():
            secret = self.want.employee_secrets.get(ext)
            with _at(f"employees.{ext}"):
                e = current.get(ext)
                if e is None:
                    data = EmployeeIn(extension=ext, sip_password=secret, **d)
                    await self.w.create_employee(data, generate_password=False)
                    self._record(
                        ChangeKind.create, "employee", ext, _created(d, secret, "sip_password")
                    )
                    continue
                diff = _diff(_employee_spec(e), d)
                patch = {k: d[k] for k in diff}
                if secret is not None and (
                    phone.ha1(d["sip_username"], self.w.realm, secret, "MD5") != e.ha1_md5
                ):
                    diff["sip_password"] = (MASK if e.ha1_md5 else None, MASK)
                    patch["sip_password"] = secret
                if diff:
                    await self.w.update_employee(e, EmployeePatch(**patch))
                    self._record(ChangeKind.update, "employee", ext, _fields(diff))

    async def groups(self) -> None:
        if self.want.groups is None:
            return
        groups, specs = await _groups(self.s, self.w.account_id)
        for name, gone in groups.items():
            if name not in self.want.groups:
                await self.w.delete_group(gone)
                self._record(ChangeKind.delete, "group", name, _deleted(specs[name]))
        ids = {ext: e.id for ext, e in (await _employees(self.s, self.w.account_id)).items()}
        for name, d in self.want.groups.items():
            path = f"groups.{name}"
            members = []
            for i, m in enumerate(d["members"]):
                if m["extension"] not in ids:
                    raise InvalidInput(
                        f"no employee with extension {m['extension']}",
                        code="unknown_reference",
                        path=f"{path}.members[{i}].extension",
                    )
                members.append(MemberIn(employee_id=ids[m["extension"]], weight=m["weight"]))
            with _at(path):
                g = groups.get(name)
                if g is None:
                    await self.w.create_group(
                        GroupIn(name=name, strategy=GroupStrategy(d["strategy"]), members=members)
                    )
                    self._record(ChangeKind.create, "group", name, _created(d, None, ""))
                    continue
                diff = _diff(specs[name], d)
                if "strategy" in diff:
                    await self.w.update_group(g, GroupPatch(strategy=GroupStrategy(d["strategy"])))
                if "members" in diff:
                    await self.w.set_members(g, members)
                if diff:
                    self._record(ChangeKind.update, "group", name, _fields(diff))

    async def numbers(self) -> None:
        if self.want.numbers is None:
            return
        current = await _numbers(self.s, self.w.account_id)
        trunks = await _trunks(self.s, self.w.account_id)
        names = {t.id: k for k, t in trunks.items()}
        for e164, gone in current.items():
            if e164 not in self.want.numbers:
                spec = _number_spec(gone, names)
                await self.w.delete_number(gone)
                self._record(ChangeKind.delete, "number", e164, _deleted(spec))
        for e164, d in self.want.numbers.items():
            path = f"numbers.{e164}"
            trunk_id = None
            if d["trunk"] is not None:
                if d["trunk"] not in trunks:
                    raise InvalidInput(
                        f"no trunk named {d['trunk']!r}",
                        code="unknown_reference",
                        path=f"{path}.trunk",
                    )
                trunk_id = trunks[d["trunk"]].id
            with _at(path, key_field="number"):
                n = current.get(e164)
                if n is None:
                    await self.w.create_number(
                        NumberIn(
                            number=e164, label=d["label"], trunk_id=trunk_id, active=d["active"]
                        )
                    )
                    self._record(ChangeKind.create, "number", e164, _created(d, None, ""))
                    continue
                diff = _diff(_number_spec(n, names), d)
                if diff:
                    patch: dict[str, Any] = {k: d[k] for k in diff if k != "trunk"}
                    if "trunk" in diff:
                        patch["trunk_id"] = trunk_id
                    await self.w.update_number(n, NumberPatch(**patch))
                    self._record(ChangeKind.update, "number", e164, _fields(diff))


async def apply_directory(
    db: Database, account_id: uuid.UUID, section: dict[str, Any], *, dry_run: bool
) -> list[Change]:
    """Make the account's directory match ``section``; see the module docstring for the rules."""
    return await dry_runnable(
        db, lambda uow: apply_directory_in(uow, account_id, section), dry_run=dry_run
    )


async def apply_directory_in(
    uow: UnitOfWork, account_id: uuid.UUID, section: dict[str, Any]
) -> list[Change]:
    """The same inside the caller's unit of work (``zvonar config apply`` runs every section in
    one transaction, so a later section may refer to what an earlier one creates)."""
    parsed = parse_section(section)
    w = await DirectoryWriter.open(uow, account_id)
    applier = _Applier(w, _normalize(parsed, w))
    await applier.trunks()
    await applier.employees()
    await applier.groups()
    await applier.numbers()
    await applier.delete_trunks()
    return applier.changes
