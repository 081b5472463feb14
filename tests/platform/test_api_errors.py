"""Bad input gets a 4xx with a stable code, never a 500."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant


async def test_malformed_json_is_400(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    r = await client.post(
        "/api/v1/tokens",
        content=b'{"name": "x",',
        headers={**tenant_a.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"


async def test_unknown_field_and_wrong_type_are_422(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    r = await client.post(
        "/api/v1/tokens", json={"name": "x", "colour": "red"}, headers=tenant_a.headers
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert any(d["loc"][-1] == "colour" for d in r.json()["error"]["details"])
    r = await client.post("/api/v1/tokens", json={"name": 5}, headers=tenant_a.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await client.post("/api/v1/tokens", json=[1, 2], headers=tenant_a.headers)
    assert r.status_code == 422


async def test_oversize_body_is_413(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    big = b'{"name": "' + b"x" * 2_000_000 + b'"}'
    r = await client.post(
        "/api/v1/tokens",
        content=big,
        headers={**tenant_a.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


async def test_unknown_route_and_method(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    r = await client.get("/api/v1/nope", headers=tenant_a.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found"
    r = await client.put("/api/v1/me", headers=tenant_a.headers)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_bad_uuid_in_path_is_422(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    r = await client.delete("/api/v1/tokens/not-a-uuid", headers=tenant_a.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "Zvonar"
    assert "/api/v1/tokens" in r.json()["paths"]
