"""CSV import (text/csv and multipart, upsert by number, per-row errors, limits) and the
in-memory caller index kept current by events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.contacts import csvimport
from zvonar.contacts.events import ContactsImported
from zvonar.contacts.schemas import ContactIn, ContactPatch
from zvonar.contacts.service import ContactService
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import InvalidInput, LimitExceeded

IMPORT = "/api/v1/contacts/import"

CSV = """name,company,phones,tags,city,email
Иван Поставщиков,ООО Альфа,8 383 212-34-56; +7 916 123-45-67,supplier;VIP,Новосибирск,ivan@alfa.ru
Пустой телефон,,,supplier,,
Плохой номер,,12345,,,
Мария,,+7 495 111-22-33,partner,Москва,not-an-email
Иван (обновление),ООО Альфа-2,+79161234567,,,
Пётр,,84951112244,vip,,
Двое,,"+73832123456,+74951112244",,,
"""


async def post_csv(api: httpx.AsyncClient, t: Tenant, text: str | bytes) -> httpx.Response:
    data = text.encode() if isinstance(text, str) else text
    return await api.post(IMPORT, content=data, headers={**t.headers, "Content-Type": "text/csv"})


def principal(t: Tenant) -> Principal:
    return Principal(account_id=t.account_id, role=Role.admin)


async def test_import_upserts_by_number_and_reports_bad_rows(
    api: httpx.AsyncClient, tenant_a: Tenant, bus: RecordingBus, contacts: ContactService
) -> None:
    r = await post_csv(api, tenant_a, CSV)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    # Row 6 updates the contact row 2 created; row 8 names numbers of two contacts.
    assert (body["created"], body["updated"], body["merged"], body["failed"]) == (2, 0, 1, 4)
    assert body["merged_rows"] == [{"row": 6, "into_row": 2}]
    assert [(e["row"], e["code"]) for e in body["errors"]] == [
        (3, "phone_required"),
        (4, "invalid_phone_number"),
        (5, "invalid_email"),
        (8, "numbers_of_different_contacts"),
    ]
    assert body["errors_truncated"] is False
    assert bus.of_type(ContactsImported)[0].created == 2

    listing = await contacts.list_contacts(principal(tenant_a))
    by_name = {v.contact.name: v for v in listing.items}
    ivan = by_name["Иван (обновление)"]
    assert ivan.numbers == ("+73832123456", "+79161234567")
    # Empty cells keep what was stored; non-empty ones overwrite.
    assert ivan.contact.company == "ООО Альфа-2" and ivan.contact.city == "Новосибирск"
    assert ivan.contact.tags == ["supplier", "vip"]

    # A second import of the same file updates instead of duplicating.
    again = (await post_csv(api, tenant_a, CSV)).json()
    assert (again["created"], again["updated"], again["merged"]) == (0, 2, 1)
    assert (await contacts.list_contacts(principal(tenant_a))).total == 2


async def test_row_updating_a_contact_created_earlier_in_the_same_file(
    api: httpx.AsyncClient, tenant_a: Tenant, contacts: ContactService
) -> None:
    text = "name;phones;tags\nA;+79161234567;x\nA2;+79161234567|+79161234568;y\n"
    body = (await post_csv(api, tenant_a, text)).json()
    assert (body["created"], body["updated"], body["merged"], body["failed"]) == (1, 0, 1, 0)
    (v,) = (await contacts.list_contacts(principal(tenant_a))).items
    assert v.contact.name == "A2" and v.numbers == ("+79161234567", "+79161234568")
    assert v.contact.tags == ["y"]


async def test_every_data_row_is_accounted_for(api: httpx.AsyncClient, tenant_a: Tenant) -> None:
    """Rows of one file that name the same contact merge into it (the later row's cells win);
    each such row is counted as merged with the line it merged into, so an admin sees it."""
    r = await api.post(
        "/api/v1/contacts",
        json={"name": "Old", "numbers": ["+74951112233"]},
        headers=tenant_a.headers,
    )
    assert r.status_code == 201, r.text
    text = (
        "name,phones\n"
        "Анна,+79161234567\n"  # 2: created
        "Борис,+79161234568\n"  # 3: created
        "Анна Петровна,89161234567\n"  # 4: the same number as line 2
        "Плохой,12\n"  # 5: failed
        "Виктор,+79161234569\n"  # 6: created
        "Old 2,+74951112233\n"  # 7: updates the stored contact
        "\n"
        "Old 3,+74951112233;+74951112234\n"  # 9: the same stored contact again
        "Борис 2,+79161234568\n"  # 10: the same as line 3
    )
    body = (await post_csv(api, tenant_a, text)).json()
    assert (body["created"], body["updated"], body["merged"], body["failed"]) == (3, 1, 3, 1)
    assert body["merged_rows"] == [
        {"row": 4, "into_row": 2},
        {"row": 9, "into_row": 7},
        {"row": 10, "into_row": 3},
    ]
    assert body["merged_rows_truncated"] is False
    data_rows = sum(1 for line in text.splitlines()[1:] if line)
    assert body["created"] + body["updated"] + body["merged"] + body["failed"] == data_rows


async def test_multipart_and_encodings(
    api: httpx.AsyncClient, tenant_a: Tenant, contacts: ContactService
) -> None:
    cp1251 = "name,phones,city\nСветлана,+79161234567,Омск\n".encode("cp1251")
    r = await api.post(
        IMPORT, files={"file": ("c.csv", cp1251, "text/csv")}, headers=tenant_a.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1
    hit = await contacts.lookup(tenant_a.account_id, "+79161234567")
    assert hit is not None and hit.name == "Светлана" and hit.city == "Омск"
    r = await api.post(IMPORT, files={"other": ("c.csv", cp1251)}, headers=tenant_a.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_csv"
    broken = {**tenant_a.headers, "Content-Type": "multipart/form-data; boundary=zz"}
    r = await api.post(IMPORT, content=b"--zz\r\nnot a part", headers=broken)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = await api.post(IMPORT, json={"a": 1}, headers=tenant_a.headers)
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"


async def test_bad_files_are_refused_whole(api: httpx.AsyncClient, tenant_a: Tenant) -> None:
    r = await post_csv(api, tenant_a, "nom,tel\nA,1\n")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_csv_header"
    r = await post_csv(api, tenant_a, "")
    assert r.json()["error"]["code"] == "invalid_csv"
    r = await post_csv(api, tenant_a, b"name,phones\n\x98\xff,1\n")
    # 0x98 is unassigned in Windows-1251 and the bytes are not UTF-8 either.
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_csv"


def test_parse_limits_and_garbage_rows() -> None:
    with pytest.raises(LimitExceeded):
        csvimport.parse_csv(b"x" * (csvimport.MAX_IMPORT_BYTES + 1), "RU")
    with pytest.raises(InvalidInput):
        csvimport.parse_csv(b"name,phones,name\n", "RU")
    rows, errors = csvimport.parse_csv(
        b'name,phones\nA,+79161234567,extra\n"B,+79161234568\n', "RU"
    )
    # An unterminated quote swallows the rest of the file into one cell.
    assert rows == []
    assert [(e.line, e.code) for e in errors] == [
        (2, "wrong_column_count"),
        (3, "wrong_column_count"),
    ]


async def test_index_is_lazy_o1_and_follows_events(
    contacts: ContactService, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    p = principal(tenant_a)
    created = await contacts.create_contact(
        p, ContactIn(name="VIP", tags=["vip"], numbers=["+79161234567"], city="Москва")
    )
    index = contacts.index
    assert not index.loaded(tenant_a.account_id)
    hit = await contacts.lookup(tenant_a.account_id, "+79161234567")
    assert hit is not None and hit.tags == frozenset({"vip"}) and hit.city == "Москва"
    assert index.loaded(tenant_a.account_id)
    assert await contacts.lookup(tenant_b.account_id, "+79161234567") is None

    await contacts.update_contact(
        p, created.contact.id, ContactPatch(numbers=["+74951112233"], tags=["supplier"])
    )
    assert index.peek(tenant_a.account_id, "+79161234567") is None
    moved = index.peek(tenant_a.account_id, "+74951112233")
    assert moved is not None and moved.tags == frozenset({"supplier"})

    other = await contacts.create_contact(p, ContactIn(name="New", numbers=["+79160000001"]))
    assert index.peek(tenant_a.account_id, "+79160000001") is not None
    await contacts.delete_contact(p, other.contact.id)
    assert index.peek(tenant_a.account_id, "+79160000001") is None

    # A bulk import is read again in the background (tests/contacts/test_index_reload.py).
    await contacts.import_csv(p, b"name,phones,tags\nBulk,+79160000002,partner\n")
    await index.reloaded(tenant_a.account_id)
    bulk = await contacts.lookup(tenant_a.account_id, "+79160000002")
    assert bulk is not None and bulk.tags == frozenset({"partner"})
    assert await contacts.lookup(tenant_a.account_id, "+74951112233") == moved


async def test_import_names_managers_by_extension(
    api: httpx.AsyncClient, tenant_a: Tenant, contacts: ContactService
) -> None:
    r = await api.post(
        "/api/v1/employees", json={"name": "Boris", "extension": "102"}, headers=tenant_a.headers
    )
    assert r.status_code == 201, r.text
    boris = r.json()["id"]
    text = (
        "name,phones,manager\n"
        "Bolts,+79161234567,102\n"
        "Nuts,+79161234568,\n"  # no manager
        "Screws,+79161234569,109\n"  # nobody has 109
        "Washers,+79161234560,boss\n"
    )
    body = (await post_csv(api, tenant_a, text)).json()
    assert (body["created"], body["failed"]) == (2, 2)
    assert [(e["row"], e["code"]) for e in body["errors"]] == [
        (4, "unknown_manager"),
        (5, "validation_error"),
    ]
    listing = await contacts.list_contacts(principal(tenant_a))
    managers = {v.contact.name: v.contact.manager_id for v in listing.items}
    assert {k: str(v) if v else None for k, v in managers.items()} == {
        "Bolts": boris,
        "Nuts": None,
    }
    # an empty cell keeps the stored manager on a re-import
    await post_csv(api, tenant_a, "name,phones,manager\nBolts,+79161234567,\n")
    again = await contacts.list_contacts(principal(tenant_a))
    assert (
        str(next(v for v in again.items if v.contact.name == "Bolts").contact.manager_id) == boris
    )
