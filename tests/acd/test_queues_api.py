"""Queue definitions over HTTP: CRUD by name, pages, error codes with paths, roles, tenants."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Tenant
from zvonar.acd.queues import QueueDefined, QueueDeleted
from zvonar.core.bus import RecordingBus

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


async def employees(client: httpx.AsyncClient, t: Tenant, *extensions: str) -> None:
    for ext in extensions:
        body = {"name": f"Agent {ext}", "extension": ext}
        ok(await call(client, t, "POST", "/employees", body), 201)


SALES = {
    "name": "sales",
    "title": "Sales line",
    "strategy": "in_turn",
    "members": [{"extension": "101"}, {"extension": "102", "level": 2}],
    "escalation": {"2": 30},
    "max_wait": 300,
    "announce_prompt": "queue_announce",
    "announce_interval": 60,
    "announce_position": True,
    "agent_announce": "queue_sales",
    "exit_digit": "0",
    "callback_digit": "5",
}


async def test_queue_crud(client: httpx.AsyncClient, tenant_a: Tenant, bus: RecordingBus) -> None:
    await employees(client, tenant_a, "101", "102", "103")
    created = ok(await call(client, tenant_a, "POST", "/queues", SALES), 201)
    assert created["name"] == "sales" and created["strategy"] == "in_turn"
    assert created["members"] == [
        {"extension": "101", "level": 1},
        {"extension": "102", "level": 2},
    ]
    assert created["escalation"] == {"2": 30.0}
    # Every field is in the answer, defaults included.
    assert created["ring_timeout"] == 15 and created["wrapup_seconds"] == 10
    assert created["vip_tags"] == ["vip"] and created["max_length"] is None
    assert [e.name for e in bus.of_type(QueueDefined)] == ["sales"]

    got = ok(await call(client, tenant_a, "GET", "/queues/sales"))
    assert got == created
    patched = ok(
        await call(
            client,
            tenant_a,
            "PATCH",
            "/queues/sales",
            {"members": [{"extension": "103"}], "max_wait": None, "vip_tags": ["Gold"]},
        )
    )
    assert patched["members"] == [{"extension": "103", "level": 1}]
    assert patched["max_wait"] is None and patched["vip_tags"] == ["gold"]
    assert patched["title"] == "Sales line" and patched["exit_digit"] == "0"
    assert patched["id"] == created["id"]

    ok(await call(client, tenant_a, "POST", "/queues", {"name": "care"}), 201)
    page = ok(await call(client, tenant_a, "GET", "/queues?limit=1"))
    assert page["total"] == 2 and page["limit"] == 1 and page["offset"] == 0
    assert [q["name"] for q in page["items"]] == ["care"]
    page = ok(await call(client, tenant_a, "GET", "/queues?q=SAL"))
    assert [q["name"] for q in page["items"]] == ["sales"]

    ok(await call(client, tenant_a, "DELETE", "/queues/care"), 204)
    assert bus.of_type(QueueDeleted)[-1].name == "care"
    assert error(await call(client, tenant_a, "GET", "/queues/care"), 404)["code"] == "not_found"


async def test_error_codes(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    await employees(client, tenant_a, "101", "102")
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        (
            {**SALES, "members": [{"extension": "999"}]},
            422,
            "unknown_reference",
            "members[0].extension",
        ),
        ({**SALES, "escalation": {"1": 30}}, 422, "invalid_queue", "escalation.1"),
        ({**SALES, "exit_digit": "5"}, 422, "invalid_queue", "callback_digit"),
        (
            {**SALES, "members": [{"extension": "101"}, {"extension": "101"}]},
            422,
            "invalid_queue",
            "members[1].extension",
        ),
        ({**SALES, "name": "no spaces"}, 422, "validation_error", None),
        ({**SALES, "strategy": "weighted_random"}, 422, "validation_error", None),
        ({**SALES, "colour": "red"}, 422, "validation_error", None),
        ({**SALES, "ring_timeout": 0}, 422, "validation_error", None),
        ({**SALES, "escalation": {"x": 1}}, 422, "validation_error", None),
    ]
    for body, status, code, path in cases:
        err = error(await call(client, tenant_a, "POST", "/queues", body), status)
        assert err["code"] == code, (body, err)
        if path is not None:
            assert err["details"]["path"] == path, (body, err)
    assert ok(await call(client, tenant_a, "GET", "/queues"))["total"] == 0

    ok(await call(client, tenant_a, "POST", "/queues", SALES), 201)
    ok(await call(client, tenant_a, "POST", "/queues", {"name": "care"}), 201)
    err = error(await call(client, tenant_a, "POST", "/queues", {"name": "sales"}), 409)
    assert err["code"] == "queue_name_taken"
    err = error(await call(client, tenant_a, "PATCH", "/queues/care", {"name": "sales"}), 409)
    assert err["code"] == "queue_name_taken"
    err = error(await call(client, tenant_a, "PATCH", "/queues/care", {"name": None}), 422)
    assert err["code"] == "validation_error"
    err = error(await call(client, tenant_a, "PATCH", "/queues/nope", {"title": "x"}), 404)
    assert err["code"] == "not_found"
    assert error(await call(client, tenant_a, "GET", "/queues/a%20b"), 422)["code"] == (
        "validation_error"
    )

    scheme = {"name": "Main", "branches": {"working": [{"type": "queue", "queue": "sales"}]}}
    ok(await call(client, tenant_a, "POST", "/schemes", scheme), 201)
    err = error(await call(client, tenant_a, "DELETE", "/queues/sales"), 409)
    assert err["code"] == "queue_in_use"
    assert err["details"] == {"scheme": "Main", "path": "branches.working[0].queue"}


async def test_roles_and_tenants(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await employees(client, tenant_a, "101", "102")
    ok(await call(client, tenant_a, "POST", "/queues", SALES), 201)
    # A's operators read the queues they serve but change none.
    issued = ok(
        await call(client, tenant_a, "POST", "/tokens", {"name": "ops", "role": "operator"}), 201
    )
    operator = Tenant(tenant_a.account_id, "", "", issued["secret"])
    assert ok(await call(client, operator, "GET", "/queues/sales"))["name"] == "sales"
    assert ok(await call(client, operator, "GET", "/queues"))["total"] == 1
    for method, path, body in (
        ("POST", "/queues", {"name": "x"}),
        ("PATCH", "/queues/sales", {"title": "x"}),
        ("DELETE", "/queues/sales", None),
    ):
        err = error(await call(client, operator, method, path, body), 403)
        assert err["code"] == "permission_denied"

    # B cannot see, change or delete A's queue by name, and its own list is empty.
    for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
        err = error(await call(client, tenant_b, method, "/queues/sales", body), 404)
        assert err["code"] == "not_found"
    assert ok(await call(client, tenant_b, "GET", "/queues"))["total"] == 0
    # Nor put A's employees in its own queue.
    err = error(await call(client, tenant_b, "POST", "/queues", SALES), 422)
    assert err["code"] == "unknown_reference"
    assert ok(await call(client, tenant_a, "GET", "/queues/sales"))["title"] == "Sales line"


async def test_a_queue_keeps_its_members_extensions(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await employees(client, tenant_a, "101", "102", "103")
    ok(await call(client, tenant_a, "POST", "/queues", SALES), 201)
    staff = ok(await call(client, tenant_a, "GET", "/employees"))["items"]
    by_ext = {e["extension"]: e["id"] for e in staff}
    for method, body in (("PATCH", {"extension": "111"}), ("DELETE", None)):
        r = await call(client, tenant_a, method, f"/employees/{by_ext['102']}", body)
        err = error(r, 409)
        assert (err["code"], err["details"]["queue"]) == ("employee_in_use", "sales"), err
    assert (
        ok(await call(client, tenant_a, "GET", f"/employees/{by_ext['102']}"))["extension"] == "102"
    )
    # Not a member: free to change and to go.
    r = await call(client, tenant_a, "PATCH", f"/employees/{by_ext['103']}", {"extension": "113"})
    ok(r)
    ok(await call(client, tenant_a, "DELETE", f"/employees/{by_ext['103']}"), 204)
    # Off the queue, the member may go.
    ok(await call(client, tenant_a, "PATCH", "/queues/sales", {"members": [{"extension": "101"}]}))
    ok(await call(client, tenant_a, "DELETE", f"/employees/{by_ext['102']}"), 204)
