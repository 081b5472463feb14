"""The directory over HTTP: CRUD, validation codes, normalization, pagination, permissions,
events after commit, and the 404 rule for another account's ids."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.core.events import Event
from zvonar.directory.events import (
    Action,
    EmployeeCreated,
    EmployeeDeleted,
    EmployeeDndChanged,
    EmployeeUpdated,
    GroupChanged,
    NumberAdded,
    NumberRemoved,
    TrunkChanged,
)
from zvonar.directory.models import Employee, Trunk

API = "/api/v1"


async def post(client: httpx.AsyncClient, t: Tenant, path: str, body: Any) -> httpx.Response:
    return await client.post(f"{API}{path}", json=body, headers=t.headers)


async def created(client: httpx.AsyncClient, t: Tenant, path: str, body: Any) -> dict[str, Any]:
    r = await post(client, t, path, body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    code: str = r.json()["error"]["code"]
    return code


# --- employees ------------------------------------------------------------------------------------


async def test_do_not_disturb_by_an_admin_and_by_the_employee_themselves(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    """``PUT /employees/{id}/dnd``: an admin's for anybody; a user (an operator, without
    ``directory.write``) for their own employee only — the one whose email is theirs."""
    ann = await created(
        client, tenant_a, "/employees", {"name": "Ann", "extension": "101", "email": "a@x.example"}
    )
    bob = await created(client, tenant_a, "/employees", {"name": "Bob", "extension": "102"})

    async def put(t: Tenant, emp_id: str, body: Any) -> httpx.Response:
        return await client.put(f"{API}/employees/{emp_id}/dnd", json=body, headers=t.headers)

    r = await put(tenant_a, bob["id"], {"dnd": True})
    assert r.status_code == 200 and r.json() == {"employee_id": bob["id"], "dnd": True}
    got = await client.get(f"{API}/employees/{bob['id']}", headers=tenant_a.headers)
    assert got.json()["dnd"] is True
    user = await container.accounts.create_user(
        tenant_a.account_id, email="A@x.example", name="Ann", role=Role.operator,
        password="correct horse battery",
    )  # fmt: skip
    issued = await container.accounts.create_token(
        tenant_a.account_id, name="ann", role=Role.operator, created_by=user.id
    )
    operator = Tenant(tenant_a.account_id, "a@x.example", "", issued.secret)
    r = await put(operator, ann["id"], {"dnd": True})
    assert r.status_code == 200 and r.json()["dnd"] is True
    assert error(await put(operator, bob["id"], {"dnd": False}), 403) == "permission_denied"
    assert error(await put(operator, str(uuid.uuid4()), {"dnd": False}), 404) == "not_found"
    for bad in ({}, {"dnd": None}, {"dnd": True, "x": 1}):
        assert error(await put(tenant_a, bob["id"], bad), 422) == "validation_error"
    async with container.db.read() as s:
        flags = dict((await s.execute(select(Employee.extension, Employee.dnd))).all())
    assert flags == {"101": True, "102": True}  # the refused ones changed nothing


async def test_employee_crud_and_sip_credentials(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    emp = await created(
        client,
        tenant_a,
        "/employees",
        {
            "name": "Иван Петров",
            "extension": "101",
            "mobile_numbers": ["8 916 123-45-67"],
            "ring_mobile": True,
            "time_zone": "Europe/Moscow",
            "email": "Ivan@Example.COM",
        },
    )
    assert emp["sip_username"] == "101" and emp["has_sip_password"] is True
    assert emp["mobile_confirm"] is False  # their mobile's answer counts, unless they say
    r = await client.patch(
        f"{API}/employees/{emp['id']}", json={"mobile_confirm": True}, headers=tenant_a.headers
    )
    assert r.status_code == 200 and r.json()["mobile_confirm"] is True
    r = await client.patch(
        f"{API}/employees/{emp['id']}", json={"mobile_confirm": None}, headers=tenant_a.headers
    )
    assert error(r, 422) == "validation_error"
    assert emp["dnd"] is False  # do not disturb: an admin may set it, as the phone's *78 does
    for value, code in ((True, 200), (False, 200), (None, 422), ([1], 422)):
        r = await client.patch(
            f"{API}/employees/{emp['id']}", json={"dnd": value}, headers=tenant_a.headers
        )
        assert r.status_code == code, r.text
        if code == 200:
            assert r.json()["dnd"] is value
    assert emp["mobile_numbers"] == ["+79161234567"]
    assert emp["email"] == "ivan@example.com" and emp["group_ids"] == []
    generated = emp["sip_password"]
    assert isinstance(generated, str) and len(generated) >= 16

    # Only the HA1s are kept, for realm "<slug>.zvonar".
    async with container.db.read() as s:
        row = await s.scalar(select(Employee).where(Employee.id == uuid.UUID(emp["id"])))
    assert row is not None
    assert row.ha1_md5 == hashlib.md5(f"101:alpha.zvonar:{generated}".encode()).hexdigest()
    assert row.ha1_sha256 == hashlib.sha256(f"101:alpha.zvonar:{generated}".encode()).hexdigest()

    r = await client.get(f"{API}/employees/{emp['id']}", headers=tenant_a.headers)
    assert r.status_code == 200 and "sip_password" not in r.json()
    assert r.json()["name"] == "Иван Петров"

    # A password chosen by the admin is never echoed back.
    other = await created(
        client,
        tenant_a,
        "/employees",
        {
            "name": "Anna",
            "extension": "102",
            "sip_username": "anna",
            "sip_password": "s3cret-pass",
        },
    )
    assert other["sip_password"] is None and other["sip_username"] == "anna"

    r = await client.patch(
        f"{API}/employees/{emp['id']}",
        json={"name": "Иван П.", "active": False},
        headers=tenant_a.headers,
    )
    assert r.status_code == 200 and r.json()["name"] == "Иван П." and r.json()["active"] is False
    # The HA1 covers the username: renaming the SIP user needs a new password.
    r = await client.patch(
        f"{API}/employees/{emp['id']}", json={"sip_username": "ivan"}, headers=tenant_a.headers
    )
    assert error(r, 422) == "password_required"
    r = await client.patch(
        f"{API}/employees/{emp['id']}",
        json={"sip_username": "ivan", "sip_password": "another-pass"},
        headers=tenant_a.headers,
    )
    assert r.status_code == 200 and r.json()["sip_username"] == "ivan"
    async with container.db.read() as s:
        row = await s.scalar(select(Employee).where(Employee.id == uuid.UUID(emp["id"])))
    assert row is not None
    assert row.ha1_md5 == hashlib.md5(b"ivan:alpha.zvonar:another-pass").hexdigest()

    r = await client.post(f"{API}/employees/{emp['id']}/sip-password", headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["sip_username"] == "ivan"
    assert r.json()["sip_password"] != "another-pass"

    r = await client.delete(f"{API}/employees/{emp['id']}", headers=tenant_a.headers)
    assert r.status_code == 204
    r = await client.get(f"{API}/employees/{emp['id']}", headers=tenant_a.headers)
    assert error(r, 404) == "not_found"


EMPLOYEE_ERRORS: list[tuple[dict[str, Any], int, str]] = [
    (
        {"name": "A", "extension": "101", "mobile_numbers": ["12345"]},
        422,
        "invalid_phone_number",
    ),
    ({"name": "A", "extension": "101", "time_zone": "Mars/Base"}, 422, "invalid_time_zone"),
    ({"name": "A", "extension": "101", "email": "nope"}, 422, "invalid_email"),
    ({"name": "A", "extension": "101", "ring_mobile": True}, 422, "mobile_number_required"),
    ({"name": "A", "extension": "101", "colour": "red"}, 422, "validation_error"),
    ({"name": "A", "extension": "1"}, 422, "validation_error"),
    ({"name": "A", "extension": "1234567"}, 422, "validation_error"),
    ({"name": "A", "extension": "10a"}, 422, "validation_error"),
    ({"name": "A", "extension": "101", "sip_password": "short"}, 422, "validation_error"),
    ({"name": "A\x00", "extension": "101"}, 422, "validation_error"),
    ({"name": "A", "extension": "100"}, 409, "extension_taken"),
    ({"name": "A", "extension": "101", "sip_username": "100"}, 409, "sip_username_taken"),
]


async def test_employee_validation_codes(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    await created(client, tenant_a, "/employees", {"name": "First", "extension": "100"})
    for body, status, code in EMPLOYEE_ERRORS:
        r = await post(client, tenant_a, "/employees", body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
    listing = (await client.get(f"{API}/employees", headers=tenant_a.headers)).json()
    assert listing["total"] == 1


async def test_patch_rules(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    a = await created(client, tenant_a, "/employees", {"name": "A", "extension": "100"})
    await created(client, tenant_a, "/employees", {"name": "B", "extension": "200"})
    url = f"{API}/employees/{a['id']}"
    r = await client.patch(url, json={"name": None}, headers=tenant_a.headers)
    assert error(r, 422) == "validation_error"
    r = await client.patch(url, json={"extension": "200"}, headers=tenant_a.headers)
    assert error(r, 409) == "extension_taken"
    r = await client.patch(
        url, json={"time_zone": "Europe/Kyiv", "email": "a@b.example"}, headers=tenant_a.headers
    )
    assert r.status_code == 200 and r.json()["time_zone"] == "Europe/Kyiv"
    r = await client.patch(url, json={"time_zone": None, "email": None}, headers=tenant_a.headers)
    assert r.json()["time_zone"] is None and r.json()["email"] is None
    r = await client.patch(url, json={"extension": "300"}, headers=tenant_a.headers)
    assert r.json()["extension"] == "300" and r.json()["sip_username"] == "100"


async def test_list_employees_pagination_and_filters(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    names = ["Ольга Смирнова", "Oleg Ivanov", "Anna Smith", "Boris Orlov", "Вера Ольшанская"]
    ids = []
    for i, name in enumerate(names):
        emp = await created(
            client,
            tenant_a,
            "/employees",
            {"name": name, "extension": str(100 + i * 10 + (i == 4) * 900), "active": i != 3},
        )
        ids.append(emp["id"])

    async def get(**params: Any) -> dict[str, Any]:
        r = await client.get(f"{API}/employees", params=params, headers=tenant_a.headers)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    everyone = await get()
    # Numeric order of extensions: "1040" comes after "130".
    assert [e["extension"] for e in everyone["items"]] == ["100", "110", "120", "130", "1040"]
    page = await get(limit=2, offset=2)
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 2
    assert [e["extension"] for e in page["items"]] == ["120", "130"]
    assert (await get(limit=2, offset=4))["items"][0]["extension"] == "1040"
    # Case-insensitive on both backends, Cyrillic included.
    assert {e["name"] for e in (await get(q="ольг"))["items"]} == {"Ольга Смирнова"}
    assert {e["name"] for e in (await get(q="ОЛЬ"))["items"]} == {
        "Ольга Смирнова",
        "Вера Ольшанская",
    }
    assert {e["name"] for e in (await get(q="ole"))["items"]} == {"Oleg Ivanov"}
    assert [e["extension"] for e in (await get(q="104"))["items"]] == ["1040"]
    assert (await get(q="100%"))["total"] == 0  # LIKE wildcards are escaped
    assert [e["name"] for e in (await get(active=False))["items"]] == ["Boris Orlov"]
    assert (await get(active=True))["total"] == 4

    group = await created(
        client,
        tenant_a,
        "/groups",
        {
            "name": "Sales",
            "members": [{"employee_id": ids[2]}, {"employee_id": ids[0]}],
        },
    )
    in_group = await get(group_id=group["id"])
    assert {e["id"] for e in in_group["items"]} == {ids[0], ids[2]}
    assert in_group["items"][0]["group_ids"] == [group["id"]]

    r = await client.get(f"{API}/employees", params={"limit": 0}, headers=tenant_a.headers)
    assert error(r, 422) == "validation_error"


# --- groups ---------------------------------------------------------------------------------------


async def test_groups_and_members(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    e = [
        (await created(client, tenant_a, "/employees", {"name": f"E{i}", "extension": f"1{i}"}))
        for i in range(10, 14)
    ]
    group = await created(client, tenant_a, "/groups", {"name": "Support", "strategy": "in_turn"})
    assert group["members"] == [] and group["strategy"] == "in_turn"
    url = f"{API}/groups/{group['id']}/members"
    body = {
        "members": [
            {"employee_id": e[2]["id"], "weight": 5},
            {"employee_id": e[0]["id"]},
            {"employee_id": e[1]["id"]},
        ]
    }
    r = await client.put(url, json=body, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    assert [(m["extension"], m["position"], m["weight"]) for m in r.json()] == [
        ("112", 1, 5),
        ("110", 2, 1),
        ("111", 3, 1),
    ]
    # Reorder, drop one, add one.
    body = {"members": [{"employee_id": e[3]["id"]}, {"employee_id": e[2]["id"], "weight": 2}]}
    r = await client.put(url, json=body, headers=tenant_a.headers)
    assert [(m["extension"], m["position"], m["weight"]) for m in r.json()] == [
        ("113", 1, 1),
        ("112", 2, 2),
    ]
    r = await client.get(url, headers=tenant_a.headers)
    assert [m["extension"] for m in r.json()] == ["113", "112"]

    dup = {"members": [{"employee_id": e[0]["id"]}, {"employee_id": e[0]["id"]}]}
    assert error(await client.put(url, json=dup, headers=tenant_a.headers), 422) == (
        "duplicate_member"
    )
    ghost = {"members": [{"employee_id": str(uuid.uuid4())}]}
    assert error(await client.put(url, json=ghost, headers=tenant_a.headers), 404) == "not_found"
    heavy = {"members": [{"employee_id": e[0]["id"], "weight": 0}]}
    assert error(await client.put(url, json=heavy, headers=tenant_a.headers), 422) == (
        "validation_error"
    )

    r = await client.patch(
        f"{API}/groups/{group['id']}",
        json={"strategy": "weighted_random"},
        headers=tenant_a.headers,
    )
    assert r.status_code == 200 and r.json()["strategy"] == "weighted_random"
    r = await client.patch(
        f"{API}/groups/{group['id']}", json={"strategy": "loudest"}, headers=tenant_a.headers
    )
    assert error(r, 422) == "validation_error"
    r = await post(client, tenant_a, "/groups", {"name": "Support"})
    assert error(r, 409) == "group_name_taken"

    # Deleting an employee takes them out of their groups.
    await client.delete(f"{API}/employees/{e[3]['id']}", headers=tenant_a.headers)
    r = await client.get(f"{API}/groups/{group['id']}", headers=tenant_a.headers)
    assert [(m["extension"], m["position"]) for m in r.json()["members"]] == [("112", 1)]
    r = await client.get(f"{API}/employees/{e[2]['id']}", headers=tenant_a.headers)
    assert r.json()["group_ids"] == [group["id"]]

    listing = (await client.get(f"{API}/groups", headers=tenant_a.headers)).json()
    assert listing["total"] == 1 and listing["items"][0]["members"][0]["extension"] == "112"
    assert (
        await client.delete(f"{API}/groups/{group['id']}", headers=tenant_a.headers)
    ).status_code == 204
    r = await client.get(f"{API}/employees/{e[2]['id']}", headers=tenant_a.headers)
    assert r.json()["group_ids"] == []


# --- numbers and trunks ---------------------------------------------------------------------------


async def test_numbers_normalized_and_classified(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    local = await created(
        client, tenant_a, "/numbers", {"number": "8 (495) 123-45-67", "label": "Resorts"}
    )
    assert (local["e164"], local["kind"], local["country"], local["region"]) == (
        "+74951234567",
        "local",
        "RU",
        "Moscow",
    )
    free = await created(client, tenant_a, "/numbers", {"number": "8-800-555-35-35"})
    assert (free["e164"], free["kind"]) == ("+78005553535", "toll_free")
    mobile = await created(client, tenant_a, "/numbers", {"number": "+7 916 123 45 67"})
    assert mobile["kind"] == "mobile"

    r = await post(client, tenant_a, "/numbers", {"number": "+7 495 123-45-67"})
    assert error(r, 409) == "number_taken"
    r = await post(client, tenant_a, "/numbers", {"number": "123"})
    assert error(r, 422) == "invalid_phone_number"
    r = await post(client, tenant_a, "/numbers", {"number": "+74951234568", "e164": "x"})
    assert error(r, 422) == "validation_error"

    # A Ukrainian account reads national numbers as Ukrainian; a DID is globally unique.
    account = await container.accounts.create_account("Kyiv", "kyiv", country="UA")
    issued = await container.accounts.create_token(account.id, name="t", role=Role.admin)
    ua = Tenant(account.id, "", "", issued.secret)
    kyiv = await created(client, ua, "/numbers", {"number": "044 123 4567"})
    assert (kyiv["e164"], kyiv["country"], kyiv["region"]) == ("+380441234567", "UA", "Kyiv city")
    r = await post(client, ua, "/numbers", {"number": "+7 495 123 45 67"})
    assert error(r, 409) == "number_taken"

    async def listing(**params: Any) -> list[str]:
        r = await client.get(f"{API}/numbers", params=params, headers=tenant_a.headers)
        assert r.status_code == 200, r.text
        return [n["e164"] for n in r.json()["items"]]

    assert await listing() == ["+74951234567", "+78005553535", "+79161234567"]
    assert await listing(kind="toll_free") == ["+78005553535"]
    assert await listing(q="resort") == ["+74951234567"]
    assert await listing(q="800 555") == ["+78005553535"]
    assert await listing(limit=1, offset=1) == ["+78005553535"]
    r = await client.get(f"{API}/numbers", params={"kind": "premium"}, headers=tenant_a.headers)
    assert error(r, 422) == "validation_error"

    r = await client.patch(
        f"{API}/numbers/{local['id']}",
        json={"label": "Tours", "active": False},
        headers=tenant_a.headers,
    )
    assert r.status_code == 200 and r.json()["label"] == "Tours" and r.json()["active"] is False
    r = await client.delete(f"{API}/numbers/{mobile['id']}", headers=tenant_a.headers)
    assert r.status_code == 204
    assert await listing() == ["+74951234567", "+78005553535"]


async def test_trunks(client: httpx.AsyncClient, tenant_a: Tenant, container: Container) -> None:
    reg = await created(
        client,
        tenant_a,
        "/trunks",
        {
            "name": "carrier",
            "host": "SIP.Carrier.Example",
            "username": "acc1",
            "password": "pa55word",
            "caller_id": "8 495 123-45-67",
            "transport": "tcp",
        },
    )
    # No port given: the carrier is located by DNS SRV (RFC 3263), so none is stored.
    assert reg["host"] == "sip.carrier.example" and reg["port"] is None
    assert reg["caller_id"] == "+74951234567" and reg["has_password"] is True
    assert "password" not in reg and reg["from_user"] is None
    async with container.db.read() as s:
        stored = await s.scalar(select(Trunk.password).where(Trunk.id == uuid.UUID(reg["id"])))
    assert stored is not None and "pa55word" not in stored  # sealed at rest
    assert container.db.sealer is not None
    assert container.db.sealer.open(stored, "trunk.password") == "pa55word"

    ip = await created(
        client,
        tenant_a,
        "/trunks",
        {
            "name": "by-ip",
            "host": "192.0.2.1",
            "auth_mode": "ip",
            "allowed_sources": ["192.0.2.1", "198.51.100.0/24"],
        },
    )
    assert ip["allowed_sources"] == ["192.0.2.1/32", "198.51.100.0/24"]
    assert ip["has_password"] is False

    bad = [
        ({"name": "x", "host": "h.example"}, 422, "credentials_required"),
        ({"name": "x", "host": "h.example", "username": "u"}, 422, "credentials_required"),
        ({"name": "x", "host": "h.example", "auth_mode": "ip"}, 422, "allowed_sources_required"),
        (
            {
                "name": "x",
                "host": "h.example",
                "auth_mode": "ip",
                "allowed_sources": ["10.0.0.1/8"],
            },
            422,
            "invalid_ip_network",
        ),
        (
            {"name": "x", "host": "bad host", "auth_mode": "ip", "allowed_sources": ["10.0.0.1"]},
            422,
            "invalid_host",
        ),
        ({"name": "x", "host": "h.example", "port": 70000}, 422, "validation_error"),
        (  # SDES keys would cross the network in clear
            {
                "name": "x",
                "host": "h",
                "auth_mode": "ip",
                "allowed_sources": ["10.0.0.1"],
                "srtp": True,
            },
            422,
            "srtp_needs_tls",
        ),
        ({"name": "x", "host": "h.example", "transport": "sctp"}, 422, "validation_error"),
        ({"name": "x", "host": "h.example", "from_user": "a@b"}, 422, "validation_error"),
        (
            {
                "name": "x",
                "host": "h",
                "auth_mode": "ip",
                "allowed_sources": ["10.0.0.1"],
                "caller_id": "12",
            },
            422,
            "invalid_phone_number",
        ),
        (
            {"name": "by-ip", "host": "h", "auth_mode": "ip", "allowed_sources": ["10.0.0.1"]},
            409,
            "trunk_name_taken",
        ),
    ]
    for body, status, code in bad:
        assert error(await post(client, tenant_a, "/trunks", body), status) == code, body

    url = f"{API}/trunks/{reg['id']}"
    r = await client.patch(url, json={"password": None}, headers=tenant_a.headers)
    assert error(r, 422) == "credentials_required"
    r = await client.patch(url, json={"port": 5080, "transport": "tls"}, headers=tenant_a.headers)
    assert r.status_code == 200 and (r.json()["port"], r.json()["transport"]) == (5080, "tls")
    r = await client.patch(url, json={"port": None}, headers=tenant_a.headers)  # back to SRV
    assert r.status_code == 200 and r.json()["port"] is None
    assert r.json()["srtp"] is False
    r = await client.patch(url, json={"srtp": True}, headers=tenant_a.headers)  # over TLS now
    assert r.status_code == 200 and r.json()["srtp"] is True
    r = await client.patch(url, json={"transport": "udp"}, headers=tenant_a.headers)
    assert error(r, 422) == "srtp_needs_tls"
    # The From user the carrier requires (its login), and back to the caller ID in From.
    r = await client.patch(url, json={"from_user": "acc1"}, headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["from_user"] == "acc1"
    r = await client.patch(url, json={"from_user": None}, headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["from_user"] is None
    r = await client.patch(url, json={"srtp": False}, headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["srtp"] is False
    r = await client.patch(url, json={"transport": None}, headers=tenant_a.headers)
    assert error(r, 422) == "validation_error"  # a transport is always set

    number = await created(
        client, tenant_a, "/numbers", {"number": "+74951112233", "trunk_id": reg["id"]}
    )
    assert number["trunk_id"] == reg["id"]
    r = await client.get(f"{API}/numbers", params={"trunk_id": reg["id"]}, headers=tenant_a.headers)
    assert [n["id"] for n in r.json()["items"]] == [number["id"]]
    assert error(await client.delete(url, headers=tenant_a.headers), 409) == "trunk_in_use"
    r = await client.patch(
        f"{API}/numbers/{number['id']}", json={"trunk_id": ip["id"]}, headers=tenant_a.headers
    )
    assert r.json()["trunk_id"] == ip["id"]
    assert (await client.delete(url, headers=tenant_a.headers)).status_code == 204
    r = await client.get(f"{API}/trunks", params={"q": "IP"}, headers=tenant_a.headers)
    assert [t["name"] for t in r.json()["items"]] == ["by-ip"]


async def test_a_trunks_prefixes_and_priority(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    """Outbound routing (outbound/trunks.py): the E.164 prefixes a trunk may dial and its
    priority among the trunks that can; stored, answered, patched, checked."""
    ip = {"host": "192.0.2.1", "auth_mode": "ip", "allowed_sources": ["192.0.2.1"]}
    plain = await created(client, tenant_a, "/trunks", {"name": "any", **ip})
    assert (plain["prefixes"], plain["priority"]) == ([], 100)  # any number, the default rank
    body = {"name": "ru", **ip, "prefixes": ["+7", " +380", "+7"], "priority": 10}
    ru = await created(client, tenant_a, "/trunks", body)
    assert (ru["prefixes"], ru["priority"]) == (["+7", "+380"], 10)  # duplicates dropped
    url = f"{API}/trunks/{ru['id']}"
    r = await client.patch(
        url, json={"prefixes": ["+7383"], "priority": 0}, headers=tenant_a.headers
    )
    assert r.status_code == 200 and (r.json()["prefixes"], r.json()["priority"]) == (["+7383"], 0)
    r = await client.patch(url, json={"prefixes": []}, headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["prefixes"] == []
    bad = [
        ({"prefixes": ["7"]}, "validation_error"),  # E.164: with its +
        ({"prefixes": ["+7 383"]}, "validation_error"),
        ({"prefixes": ["+3"]}, "invalid_prefix"),  # a zone, no country calling code
        ({"prefixes": ["+999"]}, "invalid_prefix"),  # no country has it
        ({"priority": -1}, "validation_error"),
        ({"priority": None}, "validation_error"),
        ({"prefixes": None}, "validation_error"),
    ]
    for patch, code in bad:
        r = await client.patch(url, json=patch, headers=tenant_a.headers)
        assert error(r, 422) == code, patch
    r = await post(client, tenant_a, "/trunks", {"name": "x", **ip, "prefixes": ["+7", "+0"]})
    assert (
        error(r, 422) == "invalid_prefix" and r.json()["error"]["details"]["field"] == "prefixes[1]"
    )


# --- permissions, events, tenants -----------------------------------------------------------------


async def test_operator_reads_but_cannot_write(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    emp = await created(client, tenant_a, "/employees", {"name": "A", "extension": "100"})
    issued = await container.accounts.create_token(
        tenant_a.account_id, name="op", role=Role.operator
    )
    op = {"Authorization": f"Bearer {issued.secret}"}
    assert (await client.get(f"{API}/employees", headers=op)).status_code == 200
    assert (await client.get(f"{API}/employees/{emp['id']}", headers=op)).status_code == 200
    writes = [
        client.post(f"{API}/employees", json={"name": "B", "extension": "200"}, headers=op),
        client.patch(f"{API}/employees/{emp['id']}", json={"name": "X"}, headers=op),
        client.delete(f"{API}/employees/{emp['id']}", headers=op),
        client.post(f"{API}/groups", json={"name": "G"}, headers=op),
        client.post(f"{API}/numbers", json={"number": "+74951234567"}, headers=op),
        client.post(f"{API}/trunks", json={"name": "t", "host": "h"}, headers=op),
    ]
    for call in writes:
        assert error(await call, 403) == "permission_denied"
    r = await client.get(f"{API}/employees/{emp['id']}", headers=tenant_a.headers)
    assert r.json()["name"] == "A"
    assert (await client.get(f"{API}/employees")).status_code == 401


async def test_events_published_after_commit(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container, bus: RecordingBus
) -> None:
    seen_in_db: list[bool] = []

    async def check_committed(event: Event) -> None:
        # A fresh session sees the row only if the transaction already committed.
        assert isinstance(event, EmployeeCreated)
        async with container.db.read() as s:
            row = await s.scalar(select(Employee.id).where(Employee.id == event.employee_id))
        seen_in_db.append(row is not None)

    bus.subscribe(EmployeeCreated, check_committed)
    emp = await created(client, tenant_a, "/employees", {"name": "A", "extension": "100"})
    assert seen_in_db == [True]
    [ev] = bus.of_type(EmployeeCreated)
    assert (ev.account_id, str(ev.employee_id), ev.extension) == (
        tenant_a.account_id,
        emp["id"],
        "100",
    )

    before = len(bus.events)
    r = await post(client, tenant_a, "/employees", {"name": "B", "extension": "100"})
    assert error(r, 409) == "extension_taken"
    assert len(bus.events) == before  # a failed write publishes nothing

    url = f"{API}/employees/{emp['id']}"
    await client.patch(
        url, json={"name": "A2", "sip_password": "new-password"}, headers=tenant_a.headers
    )
    [upd] = bus.of_type(EmployeeUpdated)
    assert upd.changed == ("name", "sip_password")
    await client.patch(url, json={"name": "A2"}, headers=tenant_a.headers)
    assert len(bus.of_type(EmployeeUpdated)) == 1  # no change, no event
    # Do not disturb has an event of its own, with the new value (the queues follow it).
    await client.patch(url, json={"dnd": True, "name": "A3"}, headers=tenant_a.headers)
    [dnd] = bus.of_type(EmployeeDndChanged)
    assert (dnd.dnd, str(dnd.employee_id), dnd.extension) == (True, emp["id"], "100")
    assert bus.of_type(EmployeeUpdated)[-1].changed == ("name",)

    group = await created(
        client, tenant_a, "/groups", {"name": "G", "members": [{"employee_id": emp["id"]}]}
    )
    assert [(g.action, str(g.group_id)) for g in bus.of_type(GroupChanged)] == [
        (Action.created, group["id"]),
        (Action.members, group["id"]),
    ]
    trunk = await created(
        client,
        tenant_a,
        "/trunks",
        {"name": "t", "host": "h.example", "auth_mode": "ip", "allowed_sources": ["192.0.2.1"]},
    )
    number = await created(
        client, tenant_a, "/numbers", {"number": "+74951234567", "trunk_id": trunk["id"]}
    )
    await client.delete(f"{API}/numbers/{number['id']}", headers=tenant_a.headers)
    await client.delete(f"{API}/trunks/{trunk['id']}", headers=tenant_a.headers)
    await client.delete(url, headers=tenant_a.headers)
    assert [e.e164 for e in bus.of_type(NumberAdded)] == ["+74951234567"]
    assert [e.e164 for e in bus.of_type(NumberRemoved)] == ["+74951234567"]
    assert [e.action for e in bus.of_type(TrunkChanged)] == [Action.created, Action.deleted]
    assert [e.extension for e in bus.of_type(EmployeeDeleted)] == ["100"]
    assert bus.of_type(GroupChanged)[-1].action is Action.members  # lost its member
    assert all(
        e.account_id == tenant_a.account_id
        for e in bus.events
        if isinstance(
            e, EmployeeCreated | EmployeeUpdated | GroupChanged | NumberAdded | TrunkChanged
        )
    )


async def test_other_accounts_ids_are_not_found(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    emp = await created(client, tenant_a, "/employees", {"name": "A", "extension": "100"})
    group = await created(client, tenant_a, "/groups", {"name": "G"})
    trunk = await created(
        client,
        tenant_a,
        "/trunks",
        {"name": "t", "host": "h.example", "auth_mode": "ip", "allowed_sources": ["192.0.2.1"]},
    )
    number = await created(client, tenant_a, "/numbers", {"number": "+74951234567"})
    h = tenant_b.headers
    calls = [
        client.get(f"{API}/employees/{emp['id']}", headers=h),
        client.patch(f"{API}/employees/{emp['id']}", json={"name": "X"}, headers=h),
        client.delete(f"{API}/employees/{emp['id']}", headers=h),
        client.post(f"{API}/employees/{emp['id']}/sip-password", headers=h),
        client.get(f"{API}/employees", params={"group_id": group["id"]}, headers=h),
        client.get(f"{API}/groups/{group['id']}", headers=h),
        client.get(f"{API}/groups/{group['id']}/members", headers=h),
        client.put(f"{API}/groups/{group['id']}/members", json={"members": []}, headers=h),
        client.patch(f"{API}/groups/{group['id']}", json={"name": "X"}, headers=h),
        client.delete(f"{API}/groups/{group['id']}", headers=h),
        client.get(f"{API}/numbers/{number['id']}", headers=h),
        client.patch(f"{API}/numbers/{number['id']}", json={"label": "X"}, headers=h),
        client.delete(f"{API}/numbers/{number['id']}", headers=h),
        client.get(f"{API}/numbers", params={"trunk_id": trunk["id"]}, headers=h),
        client.post(
            f"{API}/numbers", json={"number": "+74957654321", "trunk_id": trunk["id"]}, headers=h
        ),
        client.get(f"{API}/trunks/{trunk['id']}", headers=h),
        client.patch(f"{API}/trunks/{trunk['id']}", json={"name": "X"}, headers=h),
        client.delete(f"{API}/trunks/{trunk['id']}", headers=h),
    ]
    for call in calls:
        assert error(await call, 404) == "not_found"
    # B's own group cannot take A's employee either.
    own = await created(client, tenant_b, "/groups", {"name": "G"})
    r = await client.put(
        f"{API}/groups/{own['id']}/members",
        json={"members": [{"employee_id": emp["id"]}]},
        headers=h,
    )
    assert error(r, 404) == "not_found"
    for path in ("/employees", "/groups", "/numbers", "/trunks"):
        listing = (await client.get(f"{API}{path}", headers=h)).json()
        assert all(
            item["id"] not in {emp["id"], trunk["id"], number["id"], group["id"]}
            for item in listing["items"]
        )
    # Nothing of A's changed.
    r = await client.get(f"{API}/employees/{emp['id']}", headers=tenant_a.headers)
    assert r.json()["name"] == "A"


async def test_second_tenant_same_extension(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    other = await make_tenant(container, "delta")
    await created(client, tenant_a, "/employees", {"name": "A", "extension": "100"})
    await created(client, other, "/employees", {"name": "A", "extension": "100"})
    await created(client, tenant_a, "/groups", {"name": "Sales"})
    await created(client, other, "/groups", {"name": "Sales"})


async def test_a_scheme_keeps_the_employees_and_groups_it_rings(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """Renaming or deleting a group, or changing or deleting an extension, that a scheme rings
    would leave the scheme ringing nobody (and refuse every later scheme write of the account
    as naming an unknown reference): it is a 409 naming the scheme, and nothing changes."""
    h = tenant_a.headers
    anna = await created(client, tenant_a, "/employees", {"name": "Анна", "extension": "101"})
    boris = await created(client, tenant_a, "/employees", {"name": "Борис", "extension": "102"})
    sales = await created(client, tenant_a, "/groups", {"name": "Sales", "members": []})
    spare = await created(client, tenant_a, "/groups", {"name": "Spare", "members": []})
    scheme = {
        "name": "Main",
        "branches": {
            "working": [
                {"type": "ring", "targets": [{"employee": "101"}], "timeout": 10},
                {"type": "ring", "targets": [{"group": "Sales"}]},
            ]
        },
    }
    assert (await post(client, tenant_a, "/schemes", scheme)).status_code == 201
    refused = [
        ("PATCH", f"/groups/{sales['id']}", {"name": "Retail"}, "group_in_use"),
        ("DELETE", f"/groups/{sales['id']}", None, "group_in_use"),
        ("PATCH", f"/employees/{anna['id']}", {"extension": "111"}, "employee_in_use"),
        ("DELETE", f"/employees/{anna['id']}", None, "employee_in_use"),
    ]
    for method, path, body, code in refused:
        r = await client.request(method, f"{API}{path}", json=body, headers=h)
        assert error(r, 409) == code, (method, path)
        assert r.json()["error"]["details"]["scheme"] == "Main"
    group = (await client.get(f"{API}/groups/{sales['id']}", headers=h)).json()
    assert group["name"] == "Sales"
    employee = (await client.get(f"{API}/employees/{anna['id']}", headers=h)).json()
    assert employee["extension"] == "101"
    # What no scheme rings changes freely, and so does a name the scheme does not use.
    r = await client.patch(f"{API}/groups/{spare['id']}", json={"name": "Reserve"}, headers=h)
    assert r.status_code == 200, r.text
    r = await client.patch(f"{API}/employees/{anna['id']}", json={"name": "Анна П."}, headers=h)
    assert r.status_code == 200, r.text
    r = await client.patch(f"{API}/employees/{boris['id']}", json={"extension": "112"}, headers=h)
    assert r.status_code == 200, r.text
    assert (await client.delete(f"{API}/groups/{spare['id']}", headers=h)).status_code == 204
    # Once the scheme no longer rings them, they can go.
    scheme["branches"]["working"] = [{"type": "hangup"}]  # type: ignore[index]
    main = (await client.get(f"{API}/schemes", headers=h)).json()["items"][0]
    r = await client.put(f"{API}/schemes/{main['id']}", json=scheme, headers=h)
    assert r.status_code == 200, r.text
    assert (await client.delete(f"{API}/groups/{sales['id']}", headers=h)).status_code == 204
    assert (await client.delete(f"{API}/employees/{anna['id']}", headers=h)).status_code == 204
