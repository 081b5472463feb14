"""The account's settings over HTTP: read, changed field by field under the rules config files
follow, announced to the PBX, each tenant its own."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Tenant
from zvonar.accounts.events import AccountSettingsChanged
from zvonar.accounts.models import Role
from zvonar.configfile import export_config
from zvonar.container import Container
from zvonar.core.bus import RecordingBus

URL = "/api/v1/account"


async def patch(client: httpx.AsyncClient, t: Tenant, body: Any) -> httpx.Response:
    return await client.patch(URL, json=body, headers=t.headers)


async def test_read_and_change_the_accounts_settings(
    client: httpx.AsyncClient,
    tenant_a: Tenant,
    tenant_b: Tenant,
    container: Container,
    bus: RecordingBus,
) -> None:
    r = await client.get(URL, headers=tenant_a.headers)
    assert r.status_code == 200, r.text
    before = r.json()
    assert before["slug"] == "alpha" and before["recording_enabled"] is True
    assert before["international_calls"] is False and before["outbound_max_concurrent"] == 10

    change = {
        "time_zone": "Asia/Novosibirsk",
        "recording_enabled": False,
        "missed_call_emails": ["boss@shop.example"],
        "park_seconds": 300,
        "international_calls": True,
    }
    r = await patch(client, tenant_a, change)
    assert r.status_code == 200, r.text
    after = r.json()
    assert {k: after[k] for k in change} == change
    assert after["language"] == before["language"]  # not sent: unchanged
    (announced,) = bus.of_type(AccountSettingsChanged)
    assert announced.account_id == tenant_a.account_id
    assert set(announced.changed) == set(change)
    # The same values are what config export shows: one setting, two doors.
    exported = (await export_config(container, tenant_a.account_id))["account"]
    assert {k: exported[k] for k in change} == change
    # The other tenant is untouched.
    other = (await client.get(URL, headers=tenant_b.headers)).json()
    assert other["time_zone"] == before["time_zone"] and other["recording_enabled"] is True

    # Sending what is stored changes nothing and announces nothing.
    r = await patch(client, tenant_a, {"park_seconds": 300})
    assert r.status_code == 200 and len(bus.of_type(AccountSettingsChanged)) == 1


async def test_values_that_would_break_the_account_are_refused(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    cases = [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"country": "ZZ"}, "country"),
        ({"country": "ru"}, "country"),
        ({"language": "fr"}, "language"),
        ({"name": "   "}, "name"),
        ({"missed_call_emails": ["not an email"]}, "missed_call_emails"),
        ({"park_seconds": 5}, "park_seconds"),
        ({"outbound_max_per_hour": 0}, "outbound_max_per_hour"),
    ]
    for body, field in cases:
        r = await patch(client, tenant_a, body)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert (error["code"], error["details"]["field"]) == ("invalid_setting", field), body
    for body in ({"recording_enabled": "yes"}, {"park_seconds": "300"}, {"name": None}, {"x": 1}):
        r = await patch(client, tenant_a, body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", body
    unchanged = (await client.get(URL, headers=tenant_a.headers)).json()
    assert unchanged["time_zone"] == "UTC" and unchanged["park_seconds"] == 120


async def test_who_may_read_and_change(
    client: httpx.AsyncClient, tenant_a: Tenant, container: Container
) -> None:
    operator = await container.accounts.create_token(
        tenant_a.account_id, name="desk", role=Role.operator
    )
    headers = {"Authorization": f"Bearer {operator.secret}"}
    r = await client.get(URL, headers=headers)
    assert r.status_code == 200 and r.json()["time_zone"] == "UTC"  # operators read the zone
    r = await client.patch(URL, json={"recording_enabled": False}, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    r = await client.get(URL)
    assert r.status_code == 401
