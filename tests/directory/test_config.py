"""Directory configuration as code: export, apply, idempotency, dry runs, validation paths."""

from __future__ import annotations

import copy
import hashlib
import uuid
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import Conflict, InvalidInput, NotFound
from zvonar.directory.config import Change, apply_directory, export_directory
from zvonar.directory.events import EmployeeCreated, NumberAdded
from zvonar.directory.models import Employee
from zvonar.directory.schemas import EmployeeIn, GroupIn, MemberIn, NumberIn, TrunkIn
from zvonar.directory.secrets import open_password

SECTION: dict[str, Any] = {
    "trunks": {
        "main": {
            "host": "sip.carrier.example",
            "username": "acc1",
            "password": "trunk-secret",
            "caller_id": "8 495 123-45-67",
        },
        "office": {
            "host": "192.0.2.7",
            "auth_mode": "ip",
            "allowed_sources": ["192.0.2.0/28"],
            "transport": "tcp",
            "port": 5080,
        },
    },
    "employees": {
        "101": {
            "name": "Ольга",
            "sip_password": "olga-password",
            "mobile_numbers": ["89161234567"],
            "ring_mobile": True,
            "mobile_confirm": True,
            "time_zone": "Europe/Moscow",
        },
        102: {"name": "Oleg", "sip_username": "oleg", "email": "Oleg@Example.com"},
        "103": {"name": "Anna", "active": False},
    },
    "groups": {
        "Sales": {"strategy": "in_turn", "members": ["102", {"extension": "101", "weight": 3}]},
        "Empty": {},
    },
    "numbers": {
        "8 (495) 123-45-67": {"label": "Resorts", "trunk": "main"},
        "+78005553535": {"trunk": "office"},
    },
}


def summary(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.kind.value, c.object_type, c.key) for c in changes]


async def test_apply_creates_everything_then_export_round_trips(
    container: Container, tenant_a: Tenant, bus: RecordingBus
) -> None:
    db, a = container.db, tenant_a.account_id
    changes = await apply_directory(db, a, copy.deepcopy(SECTION), dry_run=False)
    assert summary(changes) == [
        ("create", "trunk", "main"),
        ("create", "trunk", "office"),
        ("create", "employee", "101"),
        ("create", "employee", "102"),
        ("create", "employee", "103"),
        ("create", "group", "Sales"),
        ("create", "group", "Empty"),
        ("create", "number", "+74951234567"),
        ("create", "number", "+78005553535"),
    ]
    created_101 = changes[2]
    assert {f.field: f.new for f in created_101.fields}["sip_password"] == "***"
    assert "olga-password" not in repr(changes) and "trunk-secret" not in repr(changes)
    assert len(bus.of_type(EmployeeCreated)) == 3 and len(bus.of_type(NumberAdded)) == 2

    exported = await export_directory(db, a)
    assert exported == {
        "trunks": {
            "main": {
                "host": "sip.carrier.example",
                "port": None,  # located by DNS SRV
                "transport": "udp",
                "auth_mode": "registration",
                "username": "acc1",
                "registrar": None,
                "allowed_sources": [],
                "caller_id": "+74951234567",
                "srtp": False,
                "from_user": None,
                "prefixes": [],  # dials any number
                "priority": 100,
                "active": True,
            },
            "office": {
                "host": "192.0.2.7",
                "port": 5080,
                "transport": "tcp",
                "auth_mode": "ip",
                "username": None,
                "registrar": None,
                "allowed_sources": ["192.0.2.0/28"],
                "caller_id": None,
                "srtp": False,
                "from_user": None,
                "prefixes": [],  # dials any number
                "priority": 100,
                "active": True,
            },
        },
        "employees": {
            "101": {
                "name": "Ольга",
                "sip_username": "101",
                "mobile_numbers": ["+79161234567"],
                "ring_mobile": True,
                "mobile_confirm": True,
                "time_zone": "Europe/Moscow",
                "email": None,
                "active": True,
            },
            "102": {
                "name": "Oleg",
                "sip_username": "oleg",
                "mobile_numbers": [],
                "ring_mobile": False,
                "mobile_confirm": False,
                "time_zone": None,
                "email": "oleg@example.com",
                "active": True,
            },
            "103": {
                "name": "Anna",
                "sip_username": "103",
                "mobile_numbers": [],
                "ring_mobile": False,
                "mobile_confirm": False,
                "time_zone": None,
                "email": None,
                "active": False,
            },
        },
        "groups": {
            "Empty": {"strategy": "all_at_once", "members": []},
            "Sales": {
                "strategy": "in_turn",
                "members": [{"extension": "102", "weight": 1}, {"extension": "101", "weight": 3}],
            },
        },
        "numbers": {
            "+74951234567": {"label": "Resorts", "trunk": "main", "active": True},
            "+78005553535": {"label": None, "trunk": "office", "active": True},
        },
    }
    # Plain YAML, no secrets, no ids.
    text = yaml.safe_dump(exported, allow_unicode=True, sort_keys=False)
    assert "secret" not in text and "password" not in text
    assert str(a) not in text

    # Applying the export to the same account changes nothing; so does re-applying the input.
    assert await apply_directory(db, a, yaml.safe_load(text), dry_run=False) == []
    assert await apply_directory(db, a, copy.deepcopy(SECTION), dry_run=False) == []

    # The SIP password went in as HA1 for the account's realm.
    async with db.read() as s:
        olga = await s.scalar(
            select(Employee).where(Employee.account_id == a, Employee.extension == "101")
        )
    assert olga is not None
    assert olga.ha1_md5 == hashlib.md5(b"101:alpha.zvonar:olga-password").hexdigest()

    # A fresh account fed the export reproduces it. DIDs are globally unique, so A lets go of
    # its numbers first (through apply, which also checks deletion).
    removed = await apply_directory(db, a, {"numbers": {}}, dry_run=False)
    assert summary(removed) == [
        ("delete", "number", "+74951234567"),
        ("delete", "number", "+78005553535"),
    ]
    b = (await make_tenant(container, "fresh")).account_id
    await apply_directory(db, b, yaml.safe_load(text), dry_run=False)
    assert await export_directory(db, b) == exported
    assert await apply_directory(db, b, yaml.safe_load(text), dry_run=False) == []


async def test_dry_run_writes_and_publishes_nothing(
    container: Container, tenant_a: Tenant, bus: RecordingBus
) -> None:
    db, a = container.db, tenant_a.account_id
    empty = await export_directory(db, a)
    assert empty == {"trunks": {}, "employees": {}, "groups": {}, "numbers": {}}
    before = len(bus.events)
    planned = await apply_directory(db, a, copy.deepcopy(SECTION), dry_run=True)
    assert len(planned) == 9
    assert await export_directory(db, a) == empty
    assert len(bus.events) == before
    # The real run reports exactly what the dry run announced.
    assert await apply_directory(db, a, copy.deepcopy(SECTION), dry_run=False) == planned


async def test_updates_deletes_and_secrets(container: Container, tenant_a: Tenant) -> None:
    db, a = container.db, tenant_a.account_id
    await apply_directory(db, a, copy.deepcopy(SECTION), dry_run=False)
    section = copy.deepcopy(SECTION)
    section["employees"]["101"]["name"] = "Ольга С."
    section["employees"]["101"]["sip_password"] = "changed-password"
    del section["employees"]["103"]
    del section["employees"][102]["email"]  # absent → default (none)
    section["employees"]["104"] = {"name": "Вера", "sip_username": "oleg"}  # freed below
    section["employees"][102]["sip_username"] = "oleg2"
    section["employees"][102]["sip_password"] = "oleg2-password"
    del section["trunks"]["main"]["password"]  # absent secret → keep
    section["trunks"]["main"]["port"] = 5070
    # Rename trunk "office" to "backup": numbers move, then the old trunk goes.
    section["trunks"]["backup"] = section["trunks"].pop("office")
    section["numbers"]["+78005553535"]["trunk"] = "backup"
    section["groups"]["Sales"]["members"] = ["101", "104"]
    del section["groups"]["Empty"]

    dry = await apply_directory(db, a, copy.deepcopy(section), dry_run=True)
    changes = await apply_directory(db, a, section, dry_run=False)
    assert changes == dry
    assert summary(changes) == [
        ("update", "trunk", "main"),
        ("create", "trunk", "backup"),
        ("delete", "employee", "103"),
        ("update", "employee", "101"),
        ("update", "employee", "102"),
        ("create", "employee", "104"),
        ("delete", "group", "Empty"),
        ("update", "group", "Sales"),
        ("update", "number", "+78005553535"),
        ("delete", "trunk", "office"),
    ]
    by_key = {(c.object_type, c.key): c for c in changes}
    fields = {f.field: (f.old, f.new) for f in by_key["employee", "101"].fields}
    assert fields == {"name": ("Ольга", "Ольга С."), "sip_password": ("***", "***")}
    fields = {f.field: (f.old, f.new) for f in by_key["trunk", "main"].fields}
    assert fields == {"port": (None, 5070)}
    fields = {f.field: (f.old, f.new) for f in by_key["number", "+78005553535"].fields}
    assert fields == {"trunk": ("office", "backup")}
    assert by_key["employee", "101"].describe() == (
        "~ employee 101: name: 'Ольга' -> 'Ольга С.', sip_password: '***' -> '***'"
    )
    assert by_key["trunk", "office"].describe() == "- trunk office"

    exported = await export_directory(db, a)
    assert exported["trunks"]["main"]["port"] == 5070
    assert set(exported["trunks"]) == {"main", "backup"}
    assert exported["employees"]["102"]["email"] is None
    assert exported["employees"]["104"]["sip_username"] == "oleg"
    assert exported["groups"] == {
        "Sales": {
            "strategy": "in_turn",
            "members": [{"extension": "101", "weight": 1}, {"extension": "104", "weight": 1}],
        }
    }
    assert await apply_directory(db, a, section, dry_run=False) == []

    # The trunk password was kept: a registration trunk without one would have been refused.
    p = Principal(account_id=a, role=Role.admin)
    [main] = [t for t in (await container.directory.list_trunks(p)).items if t.name == "main"]
    assert open_password(container.db.sealer, main) == "trunk-secret"


async def test_absent_section_is_left_alone(container: Container, tenant_a: Tenant) -> None:
    db, a = container.db, tenant_a.account_id
    await apply_directory(db, a, copy.deepcopy(SECTION), dry_run=False)
    before = await export_directory(db, a)
    changes = await apply_directory(db, a, {"groups": {}}, dry_run=False)
    assert summary(changes) == [("delete", "group", "Empty"), ("delete", "group", "Sales")]
    after = await export_directory(db, a)
    assert after == {**before, "groups": {}}
    # Groups may name employees the section does not manage, as long as they exist.
    changes = await apply_directory(db, a, {"groups": {"G": {"members": [101]}}}, dry_run=False)
    assert summary(changes) == [("create", "group", "G")]
    with pytest.raises(InvalidInput) as err:
        await apply_directory(db, a, {"groups": {"G": {"members": ["999"]}}}, dry_run=False)
    assert err.value.code == "unknown_reference"
    assert err.value.details["path"] == "groups.G.members[0].extension"


BAD_SECTIONS: list[tuple[dict[str, Any], type[Exception], str, str]] = [
    ({"employes": {}}, InvalidInput, "invalid_config", "employes"),
    (
        {"employees": {"101": {"name": "A", "colour": "red"}}},
        InvalidInput,
        "invalid_config",
        "employees.101.colour",
    ),
    ({"employees": {"1": {"name": "A"}}}, InvalidInput, "invalid_config", "employees.1.[key]"),
    (
        {"employees": {"101": {"name": "A", "time_zone": "Mars/Base"}}},
        InvalidInput,
        "invalid_time_zone",
        "employees.101.time_zone",
    ),
    (
        {"employees": {"101": {"name": "A", "mobile_numbers": ["+7", "123"]}}},
        InvalidInput,
        "invalid_phone_number",
        "employees.101.mobile_numbers[0]",
    ),
    (
        {"employees": {"101": {"name": "A", "ring_mobile": True}}},
        InvalidInput,
        "mobile_number_required",
        "employees.101.mobile_numbers",
    ),
    (
        {"employees": {"101": {"name": "A"}, "102": {"name": "B", "sip_username": "101"}}},
        Conflict,
        "sip_username_taken",
        "employees.102.sip_username",
    ),
    (
        {"trunks": {"t": {"host": "h.example", "password": "x" * 8}}},
        InvalidInput,
        "credentials_required",
        "trunks.t.username",
    ),
    (
        {"trunks": {"t": {"host": "h", "auth_mode": "ip", "allowed_sources": ["1.2.3.4/8"]}}},
        InvalidInput,
        "invalid_ip_network",
        "trunks.t.allowed_sources[0]",
    ),
    ({"numbers": {"12345": {}}}, InvalidInput, "invalid_phone_number", "numbers.12345"),
    (
        {"numbers": {"+74951234567": {}, "8 495 123-45-67": {}}},
        InvalidInput,
        "duplicate_key",
        "numbers.8 495 123-45-67",
    ),
    (
        {"trunks": {}, "numbers": {"+74951234567": {"trunk": "nope"}}},
        InvalidInput,
        "unknown_reference",
        "numbers.+74951234567.trunk",
    ),
    (  # trunks unmanaged here: the reference is checked against the database
        {"trunks": None, "numbers": {"+74951234567": {"trunk": "nope"}}},
        InvalidInput,
        "unknown_reference",
        "numbers.+74951234567.trunk",
    ),
    (
        {"employees": {"101": {"name": "A"}}, "groups": {"G": {"members": ["101", "101"]}}},
        InvalidInput,
        "duplicate_member",
        "groups.G.members[1].extension",
    ),
    (
        {"employees": {}, "groups": {"G": {"members": ["101"]}}},
        InvalidInput,
        "unknown_reference",
        "groups.G.members[0].extension",
    ),
    (
        {"groups": {"G": {"strategy": "loudest"}}},
        InvalidInput,
        "invalid_config",
        "groups.G.strategy",
    ),
]


async def test_invalid_sections_change_nothing(container: Container, tenant_a: Tenant) -> None:
    db, a = container.db, tenant_a.account_id
    for section, exc, code, path in BAD_SECTIONS:
        # Valid objects before the bad one must not be written either.
        full = {
            "trunks": {
                "ok": {"host": "ok.example", "auth_mode": "ip", "allowed_sources": ["192.0.2.1"]}
            },
            **section,
        }
        with pytest.raises(exc) as err:
            await apply_directory(db, a, full, dry_run=False)
        assert isinstance(err.value, InvalidInput | Conflict)
        assert (err.value.code, err.value.details["path"]) == (code, path), section
    assert await export_directory(db, a) == {
        "trunks": {},
        "employees": {},
        "groups": {},
        "numbers": {},
    }


async def test_number_taken_by_another_account(
    container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    p = Principal(account_id=tenant_b.account_id, role=Role.admin)
    await container.directory.add_number(p, NumberIn(number="+74951234567"))
    with pytest.raises(Conflict) as err:
        await apply_directory(
            container.db, tenant_a.account_id, {"numbers": {"+74951234567": {}}}, dry_run=False
        )
    assert err.value.code == "number_taken"
    assert err.value.details["path"] == "numbers.+74951234567"


async def test_unknown_account(container: Container) -> None:
    with pytest.raises(NotFound):
        await export_directory(container.db, uuid.uuid4())
    with pytest.raises(NotFound):
        await apply_directory(container.db, uuid.uuid4(), {}, dry_run=True)


async def test_export_of_objects_made_through_the_service(
    container: Container, tenant_a: Tenant
) -> None:
    p = Principal(account_id=tenant_a.account_id, role=Role.admin)
    d = container.directory
    trunk = await d.create_trunk(
        p, TrunkIn(name="t", host="h.example", auth_mode="ip", allowed_sources=["192.0.2.1"])
    )
    emp = await d.create_employee(p, EmployeeIn(name="A", extension="100"))
    await d.create_group(p, GroupIn(name="G", members=[MemberIn(employee_id=emp.view.employee.id)]))
    await d.add_number(p, NumberIn(number="8 800 555 35 35", trunk_id=trunk.id, label="Free"))
    out = await export_directory(container.db, tenant_a.account_id)
    assert out["numbers"] == {"+78005553535": {"label": "Free", "trunk": "t", "active": True}}
    assert out["groups"]["G"]["members"] == [{"extension": "100", "weight": 1}]
    assert await apply_directory(container.db, tenant_a.account_id, out, dry_run=False) == []
    # The generated SIP password is kept when the section says nothing about it.
    async with container.db.read() as s:
        row = await s.scalar(select(Employee).where(Employee.id == emp.view.employee.id))
    assert row is not None and row.ha1_md5 is not None


async def test_a_trunk_requiring_srtp_round_trips_and_needs_tls(
    container: Container, tenant_a: Tenant
) -> None:
    db, a = container.db, tenant_a.account_id
    trunk = {"host": "sbc.example", "auth_mode": "ip", "allowed_sources": ["192.0.2.9"]}
    with pytest.raises(InvalidInput) as caught:
        await apply_directory(db, a, {"trunks": {"sec": {**trunk, "srtp": True}}}, dry_run=False)
    assert caught.value.code == "srtp_needs_tls"
    secure = {**trunk, "transport": "tls", "srtp": True}
    await apply_directory(db, a, {"trunks": {"sec": secure}}, dry_run=False)
    exported = await export_directory(db, a)
    assert exported["trunks"]["sec"]["srtp"] is True
    assert await apply_directory(db, a, {"trunks": exported["trunks"]}, dry_run=False) == []


async def test_a_trunks_from_user_round_trips(container: Container, tenant_a: Tenant) -> None:
    db, a = container.db, tenant_a.account_id
    trunk = {"host": "sip.carrier.example", "auth_mode": "ip", "allowed_sources": ["192.0.2.9"]}
    with pytest.raises(InvalidInput) as caught:
        await apply_directory(
            db, a, {"trunks": {"c": {**trunk, "from_user": "a b"}}}, dry_run=False
        )
    assert caught.value.code == "invalid_config"
    await apply_directory(
        db, a, {"trunks": {"c": {**trunk, "from_user": "7001234"}}}, dry_run=False
    )
    exported = await export_directory(db, a)
    assert exported["trunks"]["c"]["from_user"] == "7001234"
    assert await apply_directory(db, a, {"trunks": exported["trunks"]}, dry_run=False) == []
    changes = await apply_directory(db, a, {"trunks": {"c": trunk}}, dry_run=False)
    assert [c.kind.value for c in changes] == ["update"]
    assert (await export_directory(db, a))["trunks"]["c"]["from_user"] is None


async def test_a_trunks_prefixes_and_priority_round_trip(
    container: Container, tenant_a: Tenant
) -> None:
    db, a = container.db, tenant_a.account_id
    trunk = {"host": "sip.carrier.example", "auth_mode": "ip", "allowed_sources": ["192.0.2.9"]}
    routed = {**trunk, "prefixes": ["+7", "+380", "+7"], "priority": 10}
    await apply_directory(db, a, {"trunks": {"c": routed}}, dry_run=False)
    exported = await export_directory(db, a)
    assert exported["trunks"]["c"]["prefixes"] == ["+7", "+380"]
    assert exported["trunks"]["c"]["priority"] == 10
    assert await apply_directory(db, a, {"trunks": exported["trunks"]}, dry_run=False) == []
    changes = await apply_directory(db, a, {"trunks": {"c": trunk}}, dry_run=False)  # defaults
    assert [(f.field, f.new) for c in changes for f in c.fields] == [
        ("prefixes", []),
        ("priority", 100),
    ]
    for prefixes, code, path in (
        (["+7", "+999"], "invalid_prefix", "trunks.c.prefixes[1]"),
        ([7], "invalid_config", "trunks.c.prefixes[0]"),  # YAML's unquoted +7 is a number
    ):
        with pytest.raises(InvalidInput) as caught:
            await apply_directory(
                db, a, {"trunks": {"c": {**trunk, "prefixes": prefixes}}}, dry_run=False
            )
        assert (caught.value.code, caught.value.details["path"]) == (code, path)
