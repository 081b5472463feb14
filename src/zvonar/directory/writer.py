"""Every directory write, for one account inside one unit of work.

Both the REST service and ``config.apply_directory`` write through :class:`DirectoryWriter`, so a
rule (a free extension, a real phone number, a trunk still carrying numbers) holds the same way
whichever door the change came in by. Lookups are scoped to the account: another tenant's id is
simply "not found". Events are queued on the unit of work and published after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from zvonar.accounts.models import Account
from zvonar.core.errors import Conflict, InvalidInput, NotFound
from zvonar.directory import phone, rules
from zvonar.directory.events import (
    Action,
    EmployeeCreated,
    EmployeeDeleted,
    EmployeeDndChanged,
    EmployeeUpdated,
    GroupChanged,
    NumberAdded,
    NumberRemoved,
    NumberUpdated,
    TrunkChanged,
)
from zvonar.directory.models import (
    Employee,
    Group,
    GroupMember,
    Number,
    Transport,
    Trunk,
    TrunkAuth,
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
from zvonar.directory.secrets import open_password, seal_password
from zvonar.store.db import UnitOfWork
from zvonar.store.sealed import UnsealError

T = TypeVar("T")
M = TypeVar("M", Employee, Group, Number, Trunk)


def _given(value: T | None, field: str) -> T:
    # Patch schemas already refuse null for these fields; this keeps the types honest.
    if value is None:
        raise InvalidInput(f"{field} cannot be null", field=field)
    return value


class DirectoryWriter:
    def __init__(self, uow: UnitOfWork, account: Account) -> None:
        self.uow = uow
        self.session = uow.session
        self.account = account
        self.account_id: uuid.UUID = account.id
        self.realm = phone.sip_realm(account.slug)

    @classmethod
    async def open(cls, uow: UnitOfWork, account_id: uuid.UUID) -> DirectoryWriter:
        account = await uow.session.get(Account, account_id)
        if account is None:
            raise NotFound("account not found")
        return cls(uow, account)

    # --- scoped lookups ---------------------------------------------------------------------------
    async def _get(self, model: type[M], obj_id: uuid.UUID, what: str, field: str | None) -> M:
        obj = await self.session.scalar(
            select(model).where(model.id == obj_id, model.account_id == self.account_id)
        )
        if obj is None:
            details = {"field": field} if field else {}
            raise NotFound(f"{what} not found", **details)
        return obj

    async def employee(self, employee_id: uuid.UUID) -> Employee:
        return await self._get(Employee, employee_id, "employee", None)

    async def group(self, group_id: uuid.UUID) -> Group:
        return await self._get(Group, group_id, "group", None)

    async def number(self, number_id: uuid.UUID) -> Number:
        return await self._get(Number, number_id, "number", None)

    async def trunk(self, trunk_id: uuid.UUID, *, field: str | None = None) -> Trunk:
        return await self._get(Trunk, trunk_id, "trunk", field)

    async def _taken(
        self, column: InstrumentedAttribute[str], value: str, exclude: uuid.UUID | None
    ) -> bool:
        model = column.class_
        stmt = select(model.id).where(column == value, model.account_id == self.account_id)
        if exclude is not None:
            stmt = stmt.where(model.id != exclude)
        return (await self.session.scalar(stmt.limit(1))) is not None

    async def _flush(self) -> None:
        """Flush; a unique or foreign-key violation the checks could not see (a concurrent
        writer) becomes a Conflict instead of a 500."""
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict("the change conflicts with data written meanwhile") from exc

    def _emit_updated(self, obj: Any, changed: list[str]) -> None:
        if not changed:
            return
        a, c = self.account_id, tuple(changed)
        if isinstance(obj, Employee):
            if "dnd" in c:
                self.uow.emit(
                    EmployeeDndChanged(
                        account_id=a, employee_id=obj.id, extension=obj.extension, dnd=obj.dnd
                    )
                )
                c = tuple(n for n in c if n != "dnd")
            if c:
                self.uow.emit(
                    EmployeeUpdated(
                        account_id=a, employee_id=obj.id, extension=obj.extension, changed=c
                    )
                )
        elif isinstance(obj, Group):
            self._group_changed(obj, Action.updated, c)
        elif isinstance(obj, Number):
            self.uow.emit(NumberUpdated(account_id=a, number_id=obj.id, e164=obj.e164, changed=c))
        elif isinstance(obj, Trunk):
            self._trunk_changed(obj, Action.updated, c)

    def _group_changed(self, group: Group, action: Action, changed: tuple[str, ...] = ()) -> None:
        self.uow.emit(
            GroupChanged(
                account_id=self.account_id,
                group_id=group.id,
                group_name=group.name,
                action=action,
                changed=changed,
            )
        )

    def _trunk_changed(self, trunk: Trunk, action: Action, changed: tuple[str, ...] = ()) -> None:
        self.uow.emit(
            TrunkChanged(
                account_id=self.account_id,
                trunk_id=trunk.id,
                trunk_name=trunk.name,
                action=action,
                changed=changed,
            )
        )

    # --- employees ------------------------------------------------------------------------------
    def mobiles(self, values: Sequence[str]) -> list[str]:
        """E.164 forms of an employee's mobile numbers, in order, without duplicates."""
        out: list[str] = []
        for i, raw in enumerate(values):
            e164 = phone.normalize(raw, self.account.country, field=f"mobile_numbers[{i}]")
            if e164 not in out:
                out.append(e164)
        return out

    def _ha1s(self, username: str, password: str) -> tuple[str, str]:
        return (
            phone.ha1(username, self.realm, password, "MD5"),
            phone.ha1(username, self.realm, password, "SHA-256"),
        )

    async def _check_extension(self, extension: str, exclude: uuid.UUID | None) -> None:
        if await self._taken(Employee.extension, extension, exclude):
            raise Conflict(
                f"extension {extension} is taken", code="extension_taken", field="extension"
            )

    async def _check_username(self, username: str, exclude: uuid.UUID | None) -> None:
        if await self._taken(Employee.sip_username, username, exclude):
            raise Conflict(
                f"SIP username {username!r} is taken",
                code="sip_username_taken",
                field="sip_username",
            )

    @staticmethod
    def _check_ring_mobile(emp: Employee) -> None:
        if emp.ring_mobile and not emp.mobile_numbers:
            raise InvalidInput(
                "ring_mobile needs at least one mobile number",
                code="mobile_number_required",
                field="mobile_numbers",
            )

    async def create_employee(
        self, data: EmployeeIn, *, generate_password: bool
    ) -> tuple[Employee, str | None]:
        """Create; returns the generated SIP password when none was given and ``generate_password``
        (the only time it is ever visible)."""
        username = data.sip_username or data.extension
        await self._check_extension(data.extension, None)
        await self._check_username(username, None)
        password, generated = data.sip_password, None
        if password is None and generate_password:
            password = generated = phone.generate_password()
        md5, sha = self._ha1s(username, password) if password is not None else (None, None)
        emp = Employee(
            account_id=self.account_id,
            name=data.name,
            name_folded=data.name.casefold(),
            extension=data.extension,
            sip_username=username,
            ha1_md5=md5,
            ha1_sha256=sha,
            mobile_numbers=self.mobiles(data.mobile_numbers),
            ring_mobile=data.ring_mobile,
            mobile_confirm=data.mobile_confirm,
            time_zone=rules.time_zone(data.time_zone) if data.time_zone is not None else None,
            email=rules.email(data.email) if data.email is not None else None,
            active=data.active,
        )
        self._check_ring_mobile(emp)
        self.session.add(emp)
        await self._flush()
        self.uow.emit(
            EmployeeCreated(
                account_id=self.account_id,
                employee_id=emp.id,
                extension=emp.extension,
                employee_name=emp.name,
            )
        )
        return emp, generated

    async def update_employee(self, emp: Employee, patch: EmployeePatch) -> list[str]:
        """Apply the fields set in ``patch``; returns the names of fields that really changed."""
        sent = patch.model_fields_set
        new: dict[str, Any] = {}
        if "name" in sent:
            new["name"] = _given(patch.name, "name")
        if "extension" in sent:
            new["extension"] = _given(patch.extension, "extension")
        if "sip_username" in sent:
            new["sip_username"] = _given(patch.sip_username, "sip_username")
        if "mobile_numbers" in sent:
            new["mobile_numbers"] = self.mobiles(_given(patch.mobile_numbers, "mobile_numbers"))
        if "ring_mobile" in sent:
            new["ring_mobile"] = _given(patch.ring_mobile, "ring_mobile")
        if "mobile_confirm" in sent:
            new["mobile_confirm"] = _given(patch.mobile_confirm, "mobile_confirm")
        if "time_zone" in sent:
            new["time_zone"] = rules.time_zone(patch.time_zone) if patch.time_zone else None
        if "email" in sent:
            new["email"] = rules.email(patch.email) if patch.email else None
        if "active" in sent:
            new["active"] = _given(patch.active, "active")
        if "dnd" in sent:
            new["dnd"] = _given(patch.dnd, "dnd")
        changed = [k for k, v in new.items() if getattr(emp, k) != v]
        if "extension" in changed:
            await self._check_extension(new["extension"], emp.id)
        if "sip_username" in changed:
            await self._check_username(new["sip_username"], emp.id)
        for k in changed:
            setattr(emp, k, new[k])
        if "name" in changed:
            emp.name_folded = emp.name.casefold()
        if "sip_password" in sent:
            md5, sha = self._ha1s(emp.sip_username, _given(patch.sip_password, "sip_password"))
            if md5 != emp.ha1_md5:
                emp.ha1_md5, emp.ha1_sha256 = md5, sha
                changed.append("sip_password")
        elif "sip_username" in changed and emp.ha1_md5 is not None:
            # HA1 hashes the username: the stored ones would stop matching.
            raise InvalidInput(
                "a new sip_username needs a new sip_password",
                code="password_required",
                field="sip_password",
            )
        self._check_ring_mobile(emp)
        if changed:
            await self._flush()
            self._emit_updated(emp, changed)
        return changed

    async def reset_sip_password(self, emp: Employee) -> str:
        password = phone.generate_password()
        emp.ha1_md5, emp.ha1_sha256 = self._ha1s(emp.sip_username, password)
        await self._flush()
        self._emit_updated(emp, ["sip_password"])
        return password

    async def delete_employee(self, emp: Employee) -> None:
        groups = list(
            await self.session.scalars(
                select(Group)
                .join(GroupMember, GroupMember.group_id == Group.id)
                .where(GroupMember.employee_id == emp.id)
            )
        )
        await self.session.execute(delete(GroupMember).where(GroupMember.employee_id == emp.id))
        await self.session.delete(emp)
        await self._flush()
        self.uow.emit(
            EmployeeDeleted(account_id=self.account_id, employee_id=emp.id, extension=emp.extension)
        )
        for g in groups:
            self._group_changed(g, Action.members)

    # --- groups -----------------------------------------------------------------------------------
    async def _check_group_name(self, name: str, exclude: uuid.UUID | None) -> None:
        if await self._taken(Group.name, name, exclude):
            raise Conflict(f"group {name!r} already exists", code="group_name_taken", field="name")

    async def create_group(self, data: GroupIn) -> Group:
        await self._check_group_name(data.name, None)
        group = Group(account_id=self.account_id, name=data.name, strategy=data.strategy)
        self.session.add(group)
        await self._flush()
        self._group_changed(group, Action.created)
        if data.members:
            await self.set_members(group, data.members)
        return group

    async def update_group(self, group: Group, patch: GroupPatch) -> list[str]:
        new: dict[str, Any] = {}
        if "name" in patch.model_fields_set:
            new["name"] = _given(patch.name, "name")
        if "strategy" in patch.model_fields_set:
            new["strategy"] = _given(patch.strategy, "strategy")
        changed = [k for k, v in new.items() if getattr(group, k) != v]
        if "name" in changed:
            await self._check_group_name(new["name"], group.id)
        for k in changed:
            setattr(group, k, new[k])
        if changed:
            await self._flush()
            self._emit_updated(group, changed)
        return changed

    async def set_members(self, group: Group, members: Sequence[MemberIn]) -> bool:
        """Replace the member list (order = ringing order); returns whether anything changed."""
        wanted = [m.employee_id for m in members]
        for i, emp_id in enumerate(wanted):
            if emp_id in wanted[:i]:
                raise InvalidInput(
                    "an employee appears twice",
                    code="duplicate_member",
                    field=f"members[{i}].employee_id",
                )
        found = (
            set(
                await self.session.scalars(
                    select(Employee.id).where(
                        Employee.id.in_(wanted), Employee.account_id == self.account_id
                    )
                )
            )
            if wanted
            else set()
        )
        for i, emp_id in enumerate(wanted):
            if emp_id not in found:
                raise NotFound("employee not found", field=f"members[{i}].employee_id")
        rows = list(
            await self.session.scalars(
                select(GroupMember)
                .where(GroupMember.group_id == group.id)
                .order_by(GroupMember.position)
            )
        )
        if [(r.employee_id, r.weight) for r in rows] == [
            (m.employee_id, m.weight) for m in members
        ]:
            return False
        existing = {r.employee_id: r for r in rows}
        for position, m in enumerate(members):
            row = existing.pop(m.employee_id, None)
            if row is None:
                self.session.add(
                    GroupMember(
                        group_id=group.id,
                        employee_id=m.employee_id,
                        position=position,
                        weight=m.weight,
                    )
                )
            else:
                row.position, row.weight = position, m.weight
        for row in existing.values():
            await self.session.delete(row)
        await self._flush()
        self._group_changed(group, Action.members)
        return True

    async def delete_group(self, group: Group) -> None:
        await self.session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
        await self.session.delete(group)
        await self._flush()
        self._group_changed(group, Action.deleted)

    # --- numbers ----------------------------------------------------------------------------------
    async def create_number(self, data: NumberIn) -> Number:
        info = phone.describe(data.number, self.account.country)
        if data.trunk_id is not None:
            await self.trunk(data.trunk_id, field="trunk_id")
        # Checked across all accounts: a DID routes to exactly one tenant. The error says only
        # "taken", never by whom.
        if await self.session.scalar(select(Number.id).where(Number.e164 == info.e164)):
            raise Conflict(f"{info.e164} is already in use", code="number_taken", field="number")
        label = data.label
        number = Number(
            account_id=self.account_id,
            e164=info.e164,
            kind=info.kind,
            country=info.country,
            region=info.region[:100] if info.region else None,
            label=label,
            label_folded=label.casefold() if label else None,
            trunk_id=data.trunk_id,
            active=data.active,
        )
        self.session.add(number)
        await self._flush()
        self.uow.emit(
            NumberAdded(account_id=self.account_id, number_id=number.id, e164=number.e164)
        )
        return number

    async def update_number(self, number: Number, patch: NumberPatch) -> list[str]:
        sent = patch.model_fields_set
        new: dict[str, Any] = {}
        if "label" in sent:
            new["label"] = patch.label
        if "trunk_id" in sent:
            if patch.trunk_id is not None:
                await self.trunk(patch.trunk_id, field="trunk_id")
            new["trunk_id"] = patch.trunk_id
        if "active" in sent:
            new["active"] = _given(patch.active, "active")
        changed = [k for k, v in new.items() if getattr(number, k) != v]
        for k in changed:
            setattr(number, k, new[k])
        if "label" in changed:
            number.label_folded = number.label.casefold() if number.label else None
        if changed:
            await self._flush()
            self._emit_updated(number, changed)
        return changed

    async def delete_number(self, number: Number) -> None:
        await self.session.delete(number)
        await self._flush()
        self.uow.emit(
            NumberRemoved(account_id=self.account_id, number_id=number.id, e164=number.e164)
        )

    # --- trunks -----------------------------------------------------------------------------------
    async def _check_trunk_name(self, name: str, exclude: uuid.UUID | None) -> None:
        if await self._taken(Trunk.name, name, exclude):
            raise Conflict(f"trunk {name!r} already exists", code="trunk_name_taken", field="name")

    def same_password(self, trunk: Trunk, plain: str | None) -> bool:
        """Whether ``plain`` is what the trunk has (sealed values differ on every seal)."""
        try:
            return open_password(self.uow.sealer, trunk) == plain
        except UnsealError:
            return False  # unreadable: whatever is given replaces it

    @staticmethod
    def _check_auth(trunk: Trunk, *, password_required: bool) -> None:
        """Registration needs a username and (when ``password_required``) a password; IP
        authentication needs an allow-list. A password may be missing only where it cannot be
        known: a trunk created from an exported configuration, which never carries secrets."""
        if trunk.auth_mode is TrunkAuth.registration:
            missing = "username" if not trunk.username else None
            if missing is None and password_required and not trunk.password:
                missing = "password"
            if missing is not None:
                raise InvalidInput(
                    "registration needs a username and a password",
                    code="credentials_required",
                    field=missing,
                )
        if trunk.auth_mode is TrunkAuth.ip and not trunk.allowed_sources:
            raise InvalidInput(
                "IP authentication needs at least one allowed source",
                code="allowed_sources_required",
                field="allowed_sources",
            )

    @staticmethod
    def _check_media(trunk: Trunk) -> None:
        """SDES keys travel in the SDP: over UDP or TCP anyone on the path reads them, and the
        SRTP they key protects nothing."""
        if trunk.srtp and trunk.transport is not Transport.tls:
            raise InvalidInput(
                "SRTP on a trunk needs transport tls (its keys travel in the SDP)",
                code="srtp_needs_tls",
                field="srtp",
            )

    def caller_id(self, raw: str | None) -> str | None:
        """A trunk's default caller ID in E.164, read with the account's country."""
        return phone.normalize(raw, self.account.country, field="caller_id") if raw else None

    async def create_trunk(self, data: TrunkIn, *, require_password: bool = True) -> Trunk:
        await self._check_trunk_name(data.name, None)
        trunk = Trunk(
            account_id=self.account_id,
            name=data.name,
            host=rules.host(data.host),
            port=data.port,
            transport=data.transport,
            auth_mode=data.auth_mode,
            username=data.username,
            password=seal_password(self.uow.sealer, data.password),
            registrar=rules.host(data.registrar, field="registrar") if data.registrar else None,
            allowed_sources=rules.networks(data.allowed_sources),
            caller_id=self.caller_id(data.caller_id),
            srtp=data.srtp,
            from_user=data.from_user,
            prefixes=rules.prefixes(data.prefixes),
            priority=data.priority,
            active=data.active,
        )
        self._check_auth(trunk, password_required=require_password)
        self._check_media(trunk)
        self.session.add(trunk)
        await self._flush()
        self._trunk_changed(trunk, Action.created)
        return trunk

    async def update_trunk(self, trunk: Trunk, patch: TrunkPatch) -> list[str]:
        sent = patch.model_fields_set
        new: dict[str, Any] = {}
        for plain in ("name", "transport", "auth_mode", "srtp", "priority", "active"):
            if plain in sent:
                new[plain] = _given(getattr(patch, plain), plain)
        for nullable in ("port", "username", "password", "from_user"):  # port None: by SRV
            if nullable in sent:
                new[nullable] = getattr(patch, nullable)
        if "host" in sent:
            new["host"] = rules.host(_given(patch.host, "host"))
        if "registrar" in sent:
            new["registrar"] = (
                rules.host(patch.registrar, field="registrar") if patch.registrar else None
            )
        if "allowed_sources" in sent:
            new["allowed_sources"] = rules.networks(
                _given(patch.allowed_sources, "allowed_sources")
            )
        if "caller_id" in sent:
            new["caller_id"] = self.caller_id(patch.caller_id)
        if "prefixes" in sent:
            new["prefixes"] = rules.prefixes(_given(patch.prefixes, "prefixes"))
        changed = [k for k, v in new.items() if k != "password" and getattr(trunk, k) != v]
        if "password" in new and not self.same_password(trunk, new["password"]):
            changed.append("password")
            new["password"] = seal_password(self.uow.sealer, new["password"])
        if "name" in changed:
            await self._check_trunk_name(new["name"], trunk.id)
        for k in changed:
            setattr(trunk, k, new[k])
        # Only a change that touches the credentials must leave them complete.
        self._check_auth(trunk, password_required=bool({"password", "auth_mode"} & set(changed)))
        self._check_media(trunk)
        if changed:
            await self._flush()
            self._emit_updated(trunk, changed)
        return changed

    async def delete_trunk(self, trunk: Trunk) -> None:
        in_use = await self.session.scalar(
            select(func.count()).select_from(Number).where(Number.trunk_id == trunk.id)
        )
        if in_use:
            raise Conflict(
                f"trunk {trunk.name!r} still carries {in_use} number(s)", code="trunk_in_use"
            )
        await self.session.delete(trunk)
        await self._flush()
        self._trunk_changed(trunk, Action.deleted)
