"""GET /api/v1/calendar/days: what a year holds besides the plain week — public holidays,
weekend days worked by decree, the account's own days off, working days and custom hours —
each with the hours in force that day, so an admin can check a season before it comes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from tests.conftest import Tenant

API = "/api/v1"
WEEK = {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": ["10:00-14:00"]}


async def test_a_years_special_days_with_their_hours(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    calendar = {
        "country": "RU",
        "hours": WEEK,
        "extra_days_off": ["2025-12-30"],
        "working_days": ["2025-06-12"],
        "custom_hours": {"2025-12-31": ["09:00-13:00"]},
    }
    r = await client.put(f"{API}/calendar", json=calendar, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    r = await client.get(f"{API}/calendar/days", params={"year": 2025}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["year"], body["country"]) == (2025, "RU")
    days = {d["day"]: d for d in body["days"]}
    assert days["2025-01-07"]["kind"] == "holiday" and days["2025-01-07"]["source"] == "country"
    # Named in the account's language (Russian here; English for an English account).
    assert days["2025-01-07"]["name"] == "Рождество Христово" and days["2025-01-07"]["hours"] == []
    r = await client.patch(f"{API}/account", json={"language": "en"}, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    r = await client.get(f"{API}/calendar/days", params={"year": 2025}, headers=tenant_a.headers)
    assert {d["day"]: d["name"] for d in r.json()["days"]}["2025-01-07"] == "Christmas Day"
    # Worked by decree: a Saturday with the weekday's hours, not the week's own Saturday's.
    assert days["2025-11-01"] == {
        "day": "2025-11-01",
        "kind": "working",
        "source": "country",
        "name": None,
        "hours": ["09:00-18:00"],
    }
    # The account's own: Russia Day worked, a day off added, New Year's Eve short.
    assert days["2025-06-12"]["kind"] == "working" and days["2025-06-12"]["source"] == "account"
    assert days["2025-06-12"]["name"] and days["2025-06-12"]["hours"] == ["09:00-18:00"]
    assert days["2025-12-30"]["kind"] == "holiday" and days["2025-12-30"]["hours"] == []
    assert days["2025-12-31"]["kind"] == "custom" and days["2025-12-31"]["hours"] == ["09:00-13:00"]
    assert list(days) == sorted(days)
    assert all(d.startswith("2025-") for d in days)


async def test_this_year_by_default_and_a_year_out_of_range(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    r = await client.get(f"{API}/calendar/days", headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    # A new account's calendar follows its country and zone (UTC unless set).
    assert r.json()["year"] == datetime.now(ZoneInfo("UTC")).year
    for bad in ("0", "10000", "next"):
        r = await client.get(f"{API}/calendar/days", params={"year": bad}, headers=tenant_a.headers)
        assert r.status_code == 422, bad


async def test_a_calendar_with_no_country_lists_only_its_own_days(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    calendar = {"country": None, "extra_days_off": ["2026-01-02"]}
    r = await client.put(f"{API}/calendar", json=calendar, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    r = await client.get(f"{API}/calendar/days", params={"year": 2026}, headers=tenant_a.headers)
    body = r.json()
    assert body["country"] is None
    assert [(d["day"], d["kind"], d["source"]) for d in body["days"]] == [
        ("2026-01-02", "holiday", "account")
    ]
