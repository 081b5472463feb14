"""Routing over HTTP: scheme CRUD, validation codes with paths, number assignment, calendar,
events after commit, and the 404 rule for another account's ids."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Tenant
from zvonar.core.bus import RecordingBus
from zvonar.routing.events import CalendarChanged, SchemeAssigned, SchemeChanged

API = "/api/v1"


async def call(
    client: httpx.AsyncClient, t: Tenant, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"{API}{path}", json=body, headers=t.headers)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


async def setup_directory(client: httpx.AsyncClient, t: Tenant, e164: str = "+74951234567") -> str:
    ok(await call(client, t, "POST", "/employees", {"name": "Office", "extension": "100"}), 201)
    ok(await call(client, t, "POST", "/groups", {"name": "Managers"}), 201)
    n = ok(await call(client, t, "POST", "/numbers", {"number": e164}), 201)
    number_id: str = n["id"]
    return number_id


MAIN = {
    "name": "Main",
    "branches": {
        "working": [
            {"type": "ring", "label": "Office", "targets": [{"employee": 100}], "timeout": 20},
            {"type": "ring", "targets": [{"group": "Managers"}]},
            {"type": "goto", "scheme": "Shop"},
        ]
    },
}
SHOP = {
    "name": "Shop",
    "branches": {"working": [{"type": "ring", "targets": [{"sip": "sip:shop@pbx.example"}]}]},
}


async def test_scheme_crud_assignment_and_events(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, bus: RecordingBus
) -> None:
    number_id = await setup_directory(client, tenant_a)
    # Main goes to Shop, which does not exist yet.
    err = error(await call(client, tenant_a, "POST", "/schemes", MAIN), 422)
    assert err["code"] == "unknown_scheme" and err["details"]["path"] == "branches.working[2]"
    shop = ok(await call(client, tenant_a, "POST", "/schemes", SHOP), 201)
    main = ok(await call(client, tenant_a, "POST", "/schemes", MAIN), 201)
    assert main["branches"]["working"][0]["targets"] == [{"employee": "100"}]
    assert main["final"] is None
    assert [e.scheme_name for e in bus.of_type(SchemeChanged)] == ["Shop", "Main"]

    page = ok(await call(client, tenant_a, "GET", "/schemes?q=ma"))
    assert page["total"] == 1 and page["items"][0]["name"] == "Main"
    assert error(await call(client, tenant_a, "POST", "/schemes", SHOP), 409)["code"] == (
        "scheme_name_taken"
    )

    # Assign and read back; Shop cannot go while Main jumps to it, Main not while assigned.
    out = ok(
        await call(
            client, tenant_a, "PUT", f"/numbers/{number_id}/scheme", {"scheme_id": main["id"]}
        )
    )
    assert out == {"number_id": number_id, "e164": "+74951234567", "scheme_id": main["id"]}
    assert bus.of_type(SchemeAssigned)[-1].scheme_id is not None
    got = ok(await call(client, tenant_a, "GET", f"/numbers/{number_id}/scheme"))
    assert got["scheme_id"] == main["id"]
    assert (
        error(await call(client, tenant_a, "DELETE", f"/schemes/{shop['id']}"), 409)["code"]
        == "scheme_in_use"
    )
    assert (
        error(await call(client, tenant_a, "DELETE", f"/schemes/{main['id']}"), 409)["code"]
        == "scheme_in_use"
    )

    # Replace: a loop Main → Shop → Main that rings nobody on the way is refused.
    loop = {"name": "Shop", "branches": {"working": [{"type": "goto", "scheme": "Main"}]}}
    main_silent = {"name": "Main", "branches": {"working": [{"type": "goto", "scheme": "Shop"}]}}
    ok(await call(client, tenant_a, "PUT", f"/schemes/{main['id']}", main_silent))
    err = error(await call(client, tenant_a, "PUT", f"/schemes/{shop['id']}", loop), 422)
    assert err["code"] == "goto_cycle"

    # Another tenant sees none of it.
    for method, path, body in [
        ("GET", f"/schemes/{main['id']}", None),
        ("PUT", f"/schemes/{main['id']}", SHOP),
        ("DELETE", f"/schemes/{shop['id']}", None),
        ("GET", f"/numbers/{number_id}/scheme", None),
        ("PUT", f"/numbers/{number_id}/scheme", {"scheme_id": None}),
    ]:
        assert error(await call(client, tenant_b, method, path, body), 404)["code"] == "not_found"
    assert ok(await call(client, tenant_b, "GET", "/schemes"))["total"] == 0
    b_number = await setup_directory(client, tenant_b, "+74957654321")
    err = error(
        await call(
            client, tenant_b, "PUT", f"/numbers/{b_number}/scheme", {"scheme_id": main["id"]}
        ),
        404,
    )
    assert err["code"] == "not_found"

    # Unassign, then both schemes can go.
    ok(await call(client, tenant_a, "PUT", f"/numbers/{number_id}/scheme", {"scheme_id": None}))
    ok(await call(client, tenant_a, "DELETE", f"/schemes/{main['id']}"), 204)
    ok(await call(client, tenant_a, "DELETE", f"/schemes/{shop['id']}"), 204)
    assert bus.of_type(SchemeChanged)[-1].action.value == "deleted"


async def test_scheme_validation_codes(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    await setup_directory(client, tenant_a)
    cases = [
        (
            {
                "name": "X",
                "branches": {"working": [{"type": "ring", "targets": [{"employee": "999"}]}]},
            },
            "unknown_reference",
            "branches.working[0].targets[0].employee",
        ),
        (
            {
                "name": "X",
                "branches": {"working": [{"type": "ring", "targets": [{"group": "Nope"}]}]},
            },
            "unknown_reference",
            "branches.working[0].targets[0].group",
        ),
        (
            {"name": "X", "branches": {"working": [{"type": "jump"}]}},
            "invalid_scheme",
            "branches.working[0]",
        ),
        ({"name": "X", "branches": {"working": []}}, "empty_scheme", "branches"),
        # A prompt key no prompt can have (it would play the default without a word).
        (
            {"name": "X", "branches": {"working": [{"type": "play", "prompt": "after-hours"}]}},
            "invalid_scheme",
            "branches.working[0].prompt",
        ),
        (
            {
                "name": "X",
                "branches": {"working": [{"type": "play", "prompt": "greeting"}]},
                "final": {"type": "voicemail", "greeting": "Off Hours"},
            },
            "invalid_scheme",
            "final.greeting",
        ),
        (
            {
                "name": "X",
                "branches": {
                    "off": [
                        {
                            "type": "ivr",
                            "prompt": "menu",
                            "invalid_prompt": "bad-choice",
                            "options": [{"digit": "1", "steps": [{"type": "hangup"}]}],
                        }
                    ]
                },
            },
            "invalid_scheme",
            "branches.off[0].invalid_prompt",
        ),
        (
            {
                "name": "X",
                "branches": {
                    "working": [
                        {"type": "ring", "targets": [{"group": "Managers"}], "announce": "Line1"}
                    ]
                },
            },
            "invalid_scheme",
            "branches.working[0].announce",
        ),
    ]
    for body, code, path in cases:
        err = error(await call(client, tenant_a, "POST", "/schemes", body), 422)
        assert (err["code"], err["details"]["path"]) == (code, path), body
    err = error(
        await call(client, tenant_a, "POST", "/schemes", {"name": "X", "extra": 1, "branches": {}}),
        422,
    )
    assert err["code"] == "validation_error"


async def test_calendar(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, bus: RecordingBus
) -> None:
    default = ok(await call(client, tenant_a, "GET", "/calendar"))
    assert default["hours"]["mon"] == ["09:00-18:00"] and default["hours"]["sat"] == []
    assert default["country"] == "RU" and default["time_zone"] == "UTC"
    body = {"hours": {"sat": ["10:00-14:00"]}, "working_days": ["2024-06-12"]}
    cal = ok(await call(client, tenant_a, "PUT", "/calendar", body))
    assert cal["hours"]["mon"] == [] and cal["working_days"] == ["2024-06-12"]
    assert len(bus.of_type(CalendarChanged)) == 1
    # Saturday 11:00 UTC: open under the new hours; the default tenant is off.
    at = "2024-03-16T11:00:00%2B00:00"
    assert (
        ok(await call(client, tenant_a, "GET", f"/calendar/branch?at={at}"))["branch"] == "working"
    )
    assert ok(await call(client, tenant_b, "GET", f"/calendar/branch?at={at}"))["branch"] == "off"
    err = error(
        await call(client, tenant_a, "PUT", "/calendar", {"hours": {"mon": ["9 to 5"]}}), 422
    )
    assert err["code"] == "invalid_calendar" and err["details"]["path"] == "hours.mon[0]"
    err = error(await call(client, tenant_a, "PUT", "/calendar", {"country": "ZZ"}), 422)
    assert err["code"] == "invalid_country"
