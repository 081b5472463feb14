"""The account's routing version (routing/version.py): every write that changes what routing
reads bumps it once, in its own transaction; other writes, dry runs and failed writes do not.
Another process's routing cache (pbx/snapshot.py) trusts it, so a write that forgot it would
be served stale for good."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import pytest

from tests.conftest import Tenant
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.configfile import apply_config
from zvonar.contacts.schemas import ContactIn
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import InvalidInput
from zvonar.directory.models import Transport, TrunkAuth
from zvonar.directory.schemas import EmployeeIn, GroupIn, MemberIn, NumberIn, NumberPatch, TrunkIn
from zvonar.routing.version import routing_version

SCHEME = {
    "branches": {"working": [{"type": "ring", "targets": [{"employee": "101"}]}]},
    "final": {"type": "hangup"},
}


async def version(container: Container, account_id: uuid.UUID) -> int:
    found = await routing_version(container.db, account_id)
    assert found is not None
    return found


async def bumps(container: Container, account_id: uuid.UUID, write: Awaitable[Any]) -> int:
    """By how much ``write`` moved the account's routing version."""
    before = await version(container, account_id)
    await write
    return await version(container, account_id) - before


async def test_every_routing_write_bumps_the_version_once(
    container: Container, bus: RecordingBus, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    acc, d, r = tenant_a.account_id, container.directory, container.routing
    p = Principal(account_id=acc, role=Role.admin)
    untouched = await version(container, tenant_b.account_id)

    emp = await d.create_employee(p, EmployeeIn(name="Anna", extension="101"))
    anna = emp.view.employee.id
    assert await version(container, acc) == 1
    assert await bumps(container, acc, d.set_dnd(acc, True, employee_id=anna)) == 1
    group = GroupIn(name="Sales", members=[MemberIn(employee_id=anna)])
    assert await bumps(container, acc, d.create_group(p, group)) == 1
    number = await d.add_number(p, NumberIn(number="+74951234567", label="Sales"))
    assert (
        await bumps(container, acc, d.update_number(p, number.id, NumberPatch(label="Shop"))) == 1
    )
    trunk = TrunkIn(
        name="Carrier", host="192.0.2.10", transport=Transport.udp, auth_mode=TrunkAuth.ip,
        allowed_sources=["192.0.2.10"],
    )  # fmt: skip
    assert await bumps(container, acc, d.create_trunk(p, trunk)) == 1
    scheme = await r.create_scheme(p, "Main", SCHEME)
    assert await bumps(container, acc, r.assign(p, number.id, scheme.id)) == 1
    calendar = {"hours": {"mon": ["09:00-18:00"]}, "country": None}
    assert await bumps(container, acc, r.set_calendar(p, calendar)) == 1
    settings = {"account": {"time_zone": "Asia/Novosibirsk", "recording_enabled": False}}
    assert await bumps(container, acc, apply_config(container, acc, settings, dry_run=False)) == 1
    # One document, many changes (several events), one transaction: one bump.
    doc = {
        "directory": {
            "employees": {"101": {"name": "Anna"}, "102": {"name": "Boris"}},
            "groups": {"Sales": {"members": ["101", "102"]}},
        },
        "routing": {"schemes": {"Main": SCHEME, "Shop": SCHEME}},
    }
    published = len(bus.events)
    assert await bumps(container, acc, apply_config(container, acc, doc, dry_run=False)) == 1
    assert len(bus.events) - published >= 3  # employee 102, the group's members, scheme Shop
    assert await version(container, tenant_b.account_id) == untouched


async def test_other_writes_leave_the_version_alone(container: Container, tenant_a: Tenant) -> None:
    acc = tenant_a.account_id
    p = Principal(account_id=acc, role=Role.admin)
    before = await version(container, acc)
    await container.accounts.create_user(
        acc, email="op@alpha.example", name="Op", role=Role.operator
    )
    await container.contacts.create_contact(p, ContactIn(name="Supplier", numbers=["+74950001122"]))
    assert await version(container, acc) == before


async def test_a_dry_run_leaves_the_version_alone(container: Container, tenant_a: Tenant) -> None:
    acc = tenant_a.account_id
    doc = {"account": {"recording_enabled": False}}
    assert await bumps(container, acc, apply_config(container, acc, doc, dry_run=True)) == 0
    assert (await container.accounts.get_account(acc)).recording_enabled is True


async def test_a_failed_write_leaves_the_version_alone(
    container: Container, tenant_a: Tenant
) -> None:
    acc = tenant_a.account_id
    before = await version(container, acc)
    # The settings are written first; the scheme rings an employee the account does not have,
    # so the whole document is rolled back.
    doc = {"account": {"recording_enabled": False}, "routing": {"schemes": {"Main": SCHEME}}}
    with pytest.raises(InvalidInput, match="no employee '101'"):
        await apply_config(container, acc, doc, dry_run=False)
    assert await version(container, acc) == before
    assert (await container.accounts.get_account(acc)).recording_enabled is True
