"""Bad input gets a 4xx with a stable code, never a 500."""

from __future__ import annotations

import uuid

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


async def test_openapi_declares_how_to_authenticate(client: httpx.AsyncClient) -> None:
    """The contract says how to sign requests (so /api/docs can), and every operation that
    refuses an anonymous request says it needs a token or the session."""
    spec = (await client.get("/api/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["token"]["description"],
    }
    assert (schemes["session"]["type"], schemes["session"]["in"]) == ("apiKey", "cookie")
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert {"token": []} in op.get("security", []), (method, path)
            if method == "get" and "{" not in path:
                r = await client.get(path)  # no credentials
                assert r.status_code == 401, (path, r.status_code)
                assert r.json()["error"]["code"] == "unauthenticated"


# A wall-clock time with no offset names no instant; one beyond what UTC holds cannot be
# compared. Either must come back as a 4xx, never reach a UTC column (it used to: a 500).
NO_OFFSET = "2026-01-01T00:00:00"
OVERFLOWS = (
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    # In range in UTC, out of it on an account's clock or its next day (the calendar: a 500).
    "9999-12-31T23:59:59+00:00",
    "0001-01-01T00:00:00+00:00",
)


def _datetime_inputs(spec: dict[str, object]) -> set[str]:
    """Every ``METHOD path name`` of the API that takes a date-time, from its OpenAPI."""
    found: set[str] = set()
    paths = spec["paths"]
    assert isinstance(paths, dict)
    schemas = spec["components"]["schemas"]  # type: ignore[index]

    def is_datetime(s: dict[str, object]) -> bool:
        alts = s.get("anyOf", [s])
        return any(a.get("format") == "date-time" for a in alts)  # type: ignore[union-attr]

    for path, ops in paths.items():
        for method, op in ops.items():
            for prm in op.get("parameters", []):
                if is_datetime(prm["schema"]):
                    found.add(f"{method.upper()} {path} {prm['name']}")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "$ref" in body["schema"]:
                model = schemas[body["schema"]["$ref"].rsplit("/", 1)[1]]
                for name, s in model.get("properties", {}).items():
                    if is_datetime(s):
                        found.add(f"{method.upper()} {path} {name}")
    return found


async def test_datetime_inputs_need_an_offset_and_a_range(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    group = await client.post("/api/v1/groups", json={"name": "G"}, headers=tenant_a.headers)
    assert group.status_code == 201, group.text
    gid = group.json()["id"]

    async def query(path: str, name: str, value: str) -> httpx.Response:
        # The other bound of a range is valid, so only ``name`` can be refused.
        span = {"since": "2029-12-15T00:00:00Z", "until": "2030-01-15T00:00:00Z"}
        params = {**(span if name in span else {}), name: value}
        return await client.get(path, params=params, headers=tenant_a.headers)

    async def token(value: str) -> httpx.Response:
        body = {"name": "t", "expires_at": value}
        return await client.post("/api/v1/tokens", json=body, headers=tenant_a.headers)

    async def callback(value: str) -> httpx.Response:
        body = {"phone": "+79161234567", "group_id": gid, "not_before": value}
        return await client.post("/api/v1/callback-requests", json=body, headers=tenant_a.headers)

    summary = "/api/v1/queues/sales/summary"
    intervals = f"/api/v1/agents/{uuid.uuid4()}/status-intervals"
    senders = {
        "GET /api/v1/calls from": lambda v: query("/api/v1/calls", "from", v),
        "GET /api/v1/calls to": lambda v: query("/api/v1/calls", "to", v),
        "GET /api/v1/calls.csv from": lambda v: query("/api/v1/calls.csv", "from", v),
        "GET /api/v1/calls.csv to": lambda v: query("/api/v1/calls.csv", "to", v),
        "GET /api/v1/calendar/branch at": lambda v: query("/api/v1/calendar/branch", "at", v),
        "GET /api/v1/queues/{queue_id}/summary since": lambda v: query(summary, "since", v),
        "GET /api/v1/queues/{queue_id}/summary until": lambda v: query(summary, "until", v),
        "GET /api/v1/agents/{employee_id}/status-intervals since": lambda v: query(
            intervals, "since", v
        ),
        "GET /api/v1/agents/{employee_id}/status-intervals until": lambda v: query(
            intervals, "until", v
        ),
        "POST /api/v1/tokens expires_at": token,
        "POST /api/v1/callback-requests not_before": callback,
    }
    # Inputs checked by their handlers kept the stable codes they had before ``Instant``.
    codes = {
        "GET /api/v1/calendar/branch at": "invalid_instant",
        **{k: "invalid_input" for k in senders if "/summary" in k or "/status-intervals" in k},
    }
    # A new date-time input must be added here, so it is proven too.
    assert _datetime_inputs(spec) == set(senders)
    # The bounds of a range may be days too, read on the account's clock.
    ranges = {k for k in senders if k.endswith((" from", " to", " since", " until"))}
    assert len(ranges) == 8
    for where, send in senders.items():
        day = ("2026-01-01",) if where not in ranges else ()
        for value in (NO_OFFSET, *day, *OVERFLOWS):
            r = await send(value)
            assert r.status_code == 422, (where, value, r.status_code, r.text)
            assert r.json()["error"]["code"] == codes.get(where, "validation_error"), r.text
        if where in ranges:
            for value in ("2026-02-30", "9999-12-31", "0001-01-01"):
                r = await send(value)
                assert r.status_code == 422, (where, value, r.status_code, r.text)
                assert r.json()["error"]["code"] == "validation_error", r.text
            r = await send("2030-01-01")
            assert r.status_code in {200, 404}, (where, r.text)
        # A valid instant passes the check (then the handler decides: the summary's queue
        # and the agent do not exist, and this app runs no PBX for the live view).
        r = await send("2030-01-01T00:00:00+03:00")
        assert r.status_code in {200, 201, 202, 404, 503}, (where, r.text)


async def test_a_token_cannot_expire_before_it_is_made(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    body = {"name": "late", "expires_at": "2020-01-01T00:00:00Z"}
    r = await client.post("/api/v1/tokens", json=body, headers=tenant_a.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "expiry_in_past", r.text
    listed = (await client.get("/api/v1/tokens", headers=tenant_a.headers)).json()
    assert all(t["name"] != "late" for t in listed)


async def test_control_characters_are_refused_before_the_database(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    # PostgreSQL refuses NUL in text: these used to reach it and come back as a 500.
    h = tenant_a.headers
    r = await client.post("/api/v1/tokens", json={"name": "a\x00b"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    for user in (
        {"email": "x\x00@y.ru", "name": "X", "role": "operator"},
        {"email": "x@y.ru", "name": "X\x00", "role": "operator"},
        {"email": "x\x01@y.ru", "name": "X", "role": "operator"},
    ):
        r = await client.post("/api/v1/users", json=user, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] in {"validation_error", "invalid_email"}, r.text
    for address in ("a\x00@x.ru", "a\x07@x.ru", "a@x\x7f.ru"):
        scheme = {
            "name": "S",
            "branches": {"working": [{"type": "voicemail", "notify": [address]}]},
        }
        r = await client.post("/api/v1/schemes", json=scheme, headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_scheme", r.text
    assert (await client.get("/api/v1/schemes", headers=h)).json()["items"] == []


async def test_every_text_parameter_has_a_shape(client: httpx.AsyncClient) -> None:
    # A free-text query or path parameter reaches SQL: with no pattern a NUL in it was a 500
    # on PostgreSQL (GET /schemes?q=%00). Each one names its characters (or is an enum, a
    # uuid, a date-time).
    spec = (await client.get("/api/openapi.json")).json()
    loose = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for prm in op.get("parameters", []):
                if prm["in"] not in {"query", "path"}:
                    continue
                schema = prm["schema"]
                alts = schema.get("anyOf", [schema])
                for alt in alts:
                    if alt.get("type") == "array":
                        alt = alt["items"]
                    if alt.get("type") != "string":
                        continue
                    if not ({"pattern", "enum", "format"} & set(alt)):
                        loose.append(f"{method.upper()} {path} {prm['name']}")
    assert loose == []
