"""Searching contacts (``GET /api/v1/contacts?q=``) as people type: a company in any case of
any script, a number as it is written in the account's country, words that hold digits."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update

from tests.conftest import Tenant
from zvonar.accounts.models import Account
from zvonar.contacts import search
from zvonar.container import Container

API = "/api/v1/contacts"


async def names(api: httpx.AsyncClient, t: Tenant, q: str) -> list[str]:
    r = await api.get(API, params={"q": q}, headers=t.headers)
    assert r.status_code == 200, r.text
    return [c["name"] for c in r.json()["items"]]


async def add(api: httpx.AsyncClient, t: Tenant, name: str, *numbers: str, **more: str) -> None:
    body = {"name": name, "numbers": list(numbers), **more}
    r = await api.post(API, json=body, headers=t.headers)
    assert r.status_code == 201, r.text


async def test_a_number_is_found_as_people_write_it(
    api: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await add(api, tenant_a, "Moscow", "+74951234567")
    await add(api, tenant_a, "Mobile", "+79161234567")
    await add(api, tenant_a, "Kyiv", "+380441234567")
    # the whole number, as dialled here or written anyhow: that number only
    for q in ("84951234567", "8 (495) 123-45-67", "4951234567", "+7 495 123 45 67"):
        assert await names(api, tenant_a, q) == ["Moscow"], q
    # a start written with the national prefix 8 (the country code, 7, in E.164)
    assert await names(api, tenant_a, "8 495 123") == ["Moscow"]
    assert await names(api, tenant_a, "8916") == ["Mobile"]
    assert await names(api, tenant_a, "+7 495") == ["Moscow"]
    # digits anywhere, as before
    assert await names(api, tenant_a, "1234567") == ["Kyiv", "Mobile", "Moscow"]
    assert await names(api, tenant_a, "380 44") == ["Kyiv"]
    assert await names(api, tenant_a, "+380441234567") == ["Kyiv"]


async def test_the_national_prefix_is_the_accounts_countrys(
    api: httpx.AsyncClient, container: Container, tenant_a: Tenant
) -> None:
    async with container.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Account).where(Account.id == tenant_a.account_id).values(country="UA")
        )
    await add(api, tenant_a, "Kyiv", "+380441234567")
    await add(api, tenant_a, "Ends in 0441", "+380671230441")
    assert await names(api, tenant_a, "044 123 45 67") == ["Kyiv"]
    assert await names(api, tenant_a, "044 123") == ["Kyiv"]
    # a number's start in Ukraine's way (0 for 380), or its end: both are meant
    assert await names(api, tenant_a, "0441") == ["Ends in 0441", "Kyiv"]


async def test_words_with_digits_are_text_not_numbers(
    api: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await add(api, tenant_a, "Фирма", "+74957770000", company="ООО Фирма 4999")
    await add(api, tenant_a, "Unrelated", "+74951234999")
    assert await names(api, tenant_a, "ООО Фирма 4999") == ["Фирма"]
    assert await names(api, tenant_a, "Фирма 4999") == ["Фирма"]
    # digits alone are a number as well as text
    assert await names(api, tenant_a, "4999") == ["Unrelated", "Фирма"]
    assert await names(api, tenant_a, "77") == []  # too few digits for a number


@pytest.mark.parametrize(
    ("q", "country", "expected"),
    [
        ("84951234567", "RU", search.NumberSearch(exact="+74951234567")),
        ("8 495 123", "RU", search.NumberSearch(contains="8495123", prefix="+7495123")),
        ("+7 495 12", "RU", search.NumberSearch(prefix="+749512")),
        ("067 12", "UA", search.NumberSearch(contains="06712", prefix="+3806712")),
        ("1234567", None, search.NumberSearch(contains="1234567")),
        ("8 495", "IT", search.NumberSearch(contains="8495")),  # Italy has no national prefix
        ("ООО Фирма 4999", "RU", None),
        ("12", "RU", None),
        ("00380441234567", "RU", search.NumberSearch(exact="+380441234567")),
        ("00 380 44", "RU", search.NumberSearch(contains="0038044", prefix="+38044")),
        ("0441234567", "UA", search.NumberSearch(exact="+380441234567")),  # national first
    ],
)
def test_what_a_query_asks_for(
    q: str, country: str | None, expected: search.NumberSearch | None
) -> None:
    assert search.parse(q, country).number == expected


async def test_a_company_is_found_in_any_case_of_any_script(
    api: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    # SQLite's lower() folds ASCII only; PostgreSQL's follows the database's locale.
    await add(api, tenant_a, "Z", company="Завод «Ромашка»")
    await add(api, tenant_a, "S", company="Straße GmbH")
    await add(api, tenant_a, "U", company="ЗАВОД Їжак")
    assert await names(api, tenant_a, "завод") == ["U", "Z"]
    assert await names(api, tenant_a, "РОМАШКА") == ["Z"]
    assert await names(api, tenant_a, "їжак") == ["U"]
    assert await names(api, tenant_a, "STRASSE") == ["S"]
    # a changed company is found by its new name only; an emptied one not at all
    r = await api.get(API, params={"q": "ромашка"}, headers=tenant_a.headers)
    z = r.json()["items"][0]["id"]
    r = await api.patch(f"{API}/{z}", json={"company": "Фабрика"}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    assert await names(api, tenant_a, "ФАБРИКА") == ["Z"]
    assert await names(api, tenant_a, "ромашка") == []
    await api.patch(f"{API}/{z}", json={"company": None}, headers=tenant_a.headers)
    assert await names(api, tenant_a, "фабрика") == []


async def test_an_imported_company_is_found_in_any_case(
    api: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    text = "Имя;Компания;Телефон\nA;Завод;+79161234567\nB;;+79161234568\n"
    r = await api.post(
        f"{API}/import",
        content=text.encode(),
        headers={**tenant_a.headers, "Content-Type": "text/csv"},
    )
    assert r.json()["created"] == 2, r.text
    assert await names(api, tenant_a, "завод") == ["A"]
    # an update by import folds the new company; an empty cell keeps the stored one
    text = "Имя;Компания;Телефон\nA;Фабрика;+79161234567\nB;;+79161234568\n"
    r = await api.post(
        f"{API}/import",
        content=text.encode(),
        headers={**tenant_a.headers, "Content-Type": "text/csv"},
    )
    assert r.json()["updated"] == 2, r.text
    assert await names(api, tenant_a, "фабрика") == ["A"]
