"""Contacts over HTTP: CRUD, normalization, unique numbers, filters, pagination, permissions,
tenant isolation and events after commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.models import Role
from zvonar.contacts.events import ContactAction, ContactDeleted, ContactSaved
from zvonar.container import Container
from zvonar.core.bus import RecordingBus

API = "/api/v1/contacts"


async def create(api: httpx.AsyncClient, t: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(API, json=body, headers=t.headers)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    c: str = r.json()["error"]["code"]
    return c


async def test_crud_normalizes_numbers_and_tags(
    api: httpx.AsyncClient, tenant_a: Tenant, bus: RecordingBus
) -> None:
    c = await create(
        api,
        tenant_a,
        {
            "name": "ООО Ромашка",
            "company": "Ромашка",
            "tags": ["Supplier", "VIP", "supplier"],
            "city": "Новосибирск",
            "numbers": ["8 (383) 212-34-56", "+7 916 123-45-67", "83832123456"],
            "email": "Sales@Romashka.RU",
            "notes": "звонить\nпосле обеда",
            "external_id": "crm-1",
        },
    )
    assert c["numbers"] == ["+73832123456", "+79161234567"]
    assert c["tags"] == ["supplier", "vip"] and c["email"] == "sales@romashka.ru"
    (saved,) = bus.of_type(ContactSaved)
    assert saved.action is ContactAction.created and saved.numbers == tuple(c["numbers"])

    r = await api.get(f"{API}/{c['id']}", headers=tenant_a.headers)
    assert r.status_code == 200 and r.json() == c

    r = await api.patch(
        f"{API}/{c['id']}",
        json={"numbers": ["+74951112233"], "city": None, "tags": ["partner"]},
        headers=tenant_a.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["numbers"] == ["+74951112233"] and r.json()["city"] is None
    assert r.json()["tags"] == ["partner"] and r.json()["name"] == "ООО Ромашка"
    assert code(
        await api.patch(f"{API}/{c['id']}", json={"name": None}, headers=tenant_a.headers), 422
    )

    r = await api.delete(f"{API}/{c['id']}", headers=tenant_a.headers)
    assert r.status_code == 204
    assert bus.of_type(ContactDeleted)[0].numbers == ("+74951112233",)
    assert code(await api.get(f"{API}/{c['id']}", headers=tenant_a.headers), 404) == "not_found"


async def test_a_number_belongs_to_one_contact_per_account(
    api: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    first = await create(api, tenant_a, {"name": "A", "numbers": ["+79161234567"]})
    r = await api.post(
        API, json={"name": "B", "numbers": ["89161234567"]}, headers=tenant_a.headers
    )
    assert code(r, 409) == "number_taken"
    other = await create(api, tenant_a, {"name": "C", "numbers": ["+79161112233"]})
    r = await api.patch(
        f"{API}/{other['id']}", json={"numbers": ["+79161234567"]}, headers=tenant_a.headers
    )
    assert code(r, 409) == "number_taken"
    # Another account may hold the same number; ids do not cross accounts.
    await create(api, tenant_b, {"name": "B", "numbers": ["+79161234567"]})
    assert code(await api.get(f"{API}/{first['id']}", headers=tenant_b.headers), 404)
    r = await api.delete(f"{API}/{first['id']}", headers=tenant_b.headers)
    assert code(r, 404) == "not_found"


async def test_validation_codes(api: httpx.AsyncClient, tenant_a: Tenant) -> None:
    r = await api.post(API, json={"name": "X", "numbers": ["12"]}, headers=tenant_a.headers)
    assert code(r, 422) == "invalid_phone_number"
    r = await api.post(API, json={"name": "X", "email": "nope@"}, headers=tenant_a.headers)
    assert code(r, 422) == "invalid_email"
    r = await api.post(API, json={"name": "X", "tags": ["a b"]}, headers=tenant_a.headers)
    assert code(r, 422) == "validation_error"
    r = await api.post(API, json={"name": "X", "extra": 1}, headers=tenant_a.headers)
    assert code(r, 422) == "validation_error"
    await create(api, tenant_a, {"name": "X", "external_id": "e1"})
    r = await api.post(API, json={"name": "Y", "external_id": "e1"}, headers=tenant_a.headers)
    assert code(r, 409) == "external_id_taken"
    # Taking another contact's external_id by PATCH is the same conflict, and changes nothing.
    y = await create(api, tenant_a, {"name": "Y", "external_id": "e2"})
    r = await api.patch(
        f"{API}/{y['id']}", json={"external_id": "e1", "city": "Omsk"}, headers=tenant_a.headers
    )
    assert code(r, 409) == "external_id_taken"
    after = (await api.get(f"{API}/{y['id']}", headers=tenant_a.headers)).json()
    assert (after["external_id"], after["city"]) == ("e2", None)
    r = await api.patch(f"{API}/{y['id']}", json={"external_id": "e2"}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text  # its own id is no conflict


async def test_filters_and_pagination(api: httpx.AsyncClient, tenant_a: Tenant) -> None:
    for i in range(5):
        await create(
            api,
            tenant_a,
            {
                "name": f"Поставщик {i}",
                "tags": ["supplier"] + (["vip"] if i % 2 == 0 else []),
                "numbers": [f"+7916123450{i}"],
            },
        )
    await create(api, tenant_a, {"name": "Partner", "company": "Acme", "tags": ["partner"]})
    h = tenant_a.headers
    r = await api.get(API, params={"tag": "VIP"}, headers=h)
    assert [c["name"] for c in r.json()["items"]] == ["Поставщик 0", "Поставщик 2", "Поставщик 4"]
    r = await api.get(API, params={"tag": "supplier", "limit": 2, "offset": 2}, headers=h)
    body = r.json()
    assert body["total"] == 5 and [c["name"] for c in body["items"]] == [
        "Поставщик 2",
        "Поставщик 3",
    ]
    r = await api.get(API, params={"q": "ПОСТАВЩИК 3"}, headers=h)
    assert [c["name"] for c in r.json()["items"]] == ["Поставщик 3"]
    r = await api.get(API, params={"q": "12345 04"}, headers=h)
    assert [c["name"] for c in r.json()["items"]] == ["Поставщик 4"]
    r = await api.get(API, params={"q": "acme"}, headers=h)
    assert [c["name"] for c in r.json()["items"]] == ["Partner"]
    r = await api.get(API, params={"q": "%"}, headers=h)
    assert r.json()["total"] == 0


async def test_operators_keep_contacts_marketers_only_read(
    api: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    # Operators add and fix callers' cards while on the phone; marketers only look.
    operator = await make_tenant(container, "ops", role=Role.operator)
    assert (await api.get(API, headers=operator.headers)).status_code == 200
    r = await api.post(API, json={"name": "X"}, headers=operator.headers)
    assert r.status_code == 201, r.text
    marketer = await make_tenant(container, "mkt", role=Role.marketer)
    assert (await api.get(API, headers=marketer.headers)).status_code == 200
    r = await api.post(API, json={"name": "Y"}, headers=marketer.headers)
    assert code(r, 403) == "permission_denied"
    assert code(await api.get(API), 401) == "unauthenticated"


async def test_a_contact_names_its_manager_in_the_same_account(
    api: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, bus: RecordingBus
) -> None:
    async def employee(t: Tenant, ext: str) -> str:
        r = await api.post(
            "/api/v1/employees", json={"name": f"E{ext}", "extension": ext}, headers=t.headers
        )
        assert r.status_code == 201, r.text
        emp_id: str = r.json()["id"]
        return emp_id

    ours, theirs = await employee(tenant_a, "102"), await employee(tenant_b, "102")
    c = await create(api, tenant_a, {"name": "Bolts", "numbers": ["+79161234567"]})
    assert c["manager_id"] is None
    r = await api.patch(f"{API}/{c['id']}", json={"manager_id": ours}, headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["manager_id"] == ours
    assert str(bus.of_type(ContactSaved)[-1].manager_id) == ours  # the caller index learns it
    # another account's employee, or none at all: a stable 422, nothing changed
    for wrong in (theirs, "00000000-0000-4000-8000-000000000000"):
        body = {"name": "Nuts", "manager_id": wrong}
        assert code(await api.post(API, json=body, headers=tenant_a.headers), 422) == (
            "unknown_manager"
        )
        r = await api.patch(
            f"{API}/{c['id']}", json={"manager_id": wrong}, headers=tenant_a.headers
        )
        assert code(r, 422) == "unknown_manager"
    assert (await api.get(f"{API}/{c['id']}", headers=tenant_a.headers)).json()[
        "manager_id"
    ] == ours
    r = await api.patch(f"{API}/{c['id']}", json={"manager_id": None}, headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["manager_id"] is None


async def test_changing_only_the_numbers_moves_updated_at(
    api: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    # The numbers live in their own table: a PATCH of them alone left the contact's row (and
    # its updated_at) as it was, so a CRM syncing "changed since" never saw the new number.
    c = await create(api, tenant_a, {"name": "A", "numbers": ["+79161234567"]})
    url, h = f"{API}/{c['id']}", tenant_a.headers
    r = await api.patch(url, json={"numbers": ["+79161234568"]}, headers=h)
    assert r.status_code == 200, r.text
    moved = r.json()["updated_at"]
    assert datetime.fromisoformat(moved) > datetime.fromisoformat(c["updated_at"])
    assert (await api.get(url, headers=h)).json()["updated_at"] == moved
    # the same numbers again change nothing, as the same name would not
    r = await api.patch(url, json={"numbers": ["8 916 123-45-68"]}, headers=h)
    assert r.json()["updated_at"] == moved
