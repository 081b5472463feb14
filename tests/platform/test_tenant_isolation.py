"""Account B's token walks every endpoint against account A's objects: 404, never data.

The walk is driven by the app's own OpenAPI document, so a new endpoint with an id in its path fails
this test until the test knows how to make an object for that id.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Tenant
from zvonar.app import create_app
from zvonar.container import Container

# Minimal valid bodies, so a 404 cannot hide behind a 422.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/v1/employees/{employee_id}"): {"name": "Mallory"},
    ("PATCH", "/api/v1/groups/{group_id}"): {"name": "Mallory"},
    ("PATCH", "/api/v1/numbers/{number_id}"): {"label": "Mallory"},
    ("PATCH", "/api/v1/trunks/{trunk_id}"): {"name": "Mallory"},
    ("PUT", "/api/v1/groups/{group_id}/members"): {"members": []},
}


async def _make_objects(client: httpx.AsyncClient, a: Tenant) -> dict[str, str]:
    h = a.headers

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await client.post(path, json=body, headers=h)
        assert r.status_code == 201, (path, r.text)
        data: dict[str, Any] = r.json()
        return data

    trunk = await post(
        "/api/v1/trunks",
        {
            "name": "A trunk",
            "host": "sip.a.example",
            "auth_mode": "ip",
            "allowed_sources": ["192.0.2.0/24"],
        },
    )
    employee = await post("/api/v1/employees", {"name": "Alice", "extension": "101"})
    group = await post(
        "/api/v1/groups", {"name": "A sales", "members": [{"employee_id": employee["id"]}]}
    )
    number = await post(
        "/api/v1/numbers", {"number": "+74951112233", "label": "A line", "trunk_id": trunk["id"]}
    )
    token = await post("/api/v1/tokens", {"name": "A crm", "role": "operator"})
    return {
        "trunk_id": trunk["id"],
        "employee_id": employee["id"],
        "group_id": group["id"],
        "number_id": number["id"],
        "token_id": token["id"],
    }


async def test_every_endpoint_hides_other_accounts_objects(
    container: Container, client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ids = await _make_objects(client, tenant_a)
    before = {
        k: (await client.get(f"/api/v1/{k[:-3]}s/{v}", headers=tenant_a.headers)).json()
        for k, v in ids.items()
        if k != "token_id"
    }
    paths = create_app(container).openapi()["paths"]
    walked = 0
    uncovered = []
    for template, operations in paths.items():
        if not template.startswith("/api/v1"):
            continue
        params = re.findall(r"{(\w+)}", template)
        if not params:
            continue
        if any(p not in ids for p in params):
            uncovered.append(template)
            continue
        path = template.format(**ids)
        for method in sorted(m.upper() for m in operations):
            body = BODIES.get((method, template))
            r = await client.request(method, path, json=body, headers=tenant_b.headers)
            assert r.status_code == 404, f"{method} {template}: {r.status_code} {r.text}"
            assert r.json()["error"]["code"] == "not_found"
            for value in ids.values():
                assert value not in r.text
            walked += 1
    assert not uncovered, f"teach this test to make objects for: {uncovered}"
    assert walked >= 15

    # Nothing of A changed, and A's token still works.
    for k, v in ids.items():
        if k == "token_id":
            continue
        now = (await client.get(f"/api/v1/{k[:-3]}s/{v}", headers=tenant_a.headers)).json()
        assert now == before[k]
    assert (await client.get("/api/v1/me", headers=tenant_a.headers)).status_code == 200


async def test_lists_and_references_stay_in_the_account(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ids = await _make_objects(client, tenant_a)
    for path in ("employees", "groups", "numbers", "trunks"):
        r = await client.get(f"/api/v1/{path}", headers=tenant_b.headers)
        assert r.status_code == 200 and r.json()["total"] == 0, r.text
    listed = (await client.get("/api/v1/tokens", headers=tenant_b.headers)).json()
    assert ids["token_id"] not in {t["id"] for t in listed}
    users = (await client.get("/api/v1/users", headers=tenant_b.headers)).json()
    assert {u["email"] for u in users} == {tenant_b.admin_email}

    # B cannot point its own objects at A's.
    r = await client.post(
        "/api/v1/groups",
        json={"name": "B group", "members": [{"employee_id": ids["employee_id"]}]},
        headers=tenant_b.headers,
    )
    assert r.status_code in (404, 422), r.text
    r = await client.post(
        "/api/v1/numbers",
        json={"number": "+74951112244", "trunk_id": ids["trunk_id"]},
        headers=tenant_b.headers,
    )
    assert r.status_code in (404, 422), r.text
    # A DID belongs to one account only.
    r = await client.post(
        "/api/v1/numbers", json={"number": "+74951112233"}, headers=tenant_b.headers
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "number_taken"
