"""Callback requests over the API and the worker's side of the service, on SQLite and
PostgreSQL: validation, tenant scoping, cancel, claiming, retries, crash recovery."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Tenant, make_tenant
from zvonar.accounts.models import Role
from zvonar.callbacks.events import CallbackChanged, CallbackRequested, CallbackStatus, FailedSide
from zvonar.callbacks.service import CallbackService, Retry
from zvonar.core.bus import RecordingBus

BASE = "/api/v1/callback-requests"


async def _setup(api: httpx.AsyncClient, t: Tenant) -> dict[str, str]:
    h = t.headers
    emp = await api.post("/api/v1/employees", json={"name": "Ann", "extension": "101"}, headers=h)
    assert emp.status_code == 201, emp.text
    group = await api.post(
        "/api/v1/groups",
        json={"name": "Sales", "members": [{"employee_id": emp.json()["id"]}]},
        headers=h,
    )
    number = await api.post("/api/v1/numbers", json={"number": "+74951112233"}, headers=h)
    assert group.status_code == 201 and number.status_code == 201, (group.text, number.text)
    return {"employee": emp.json()["id"], "group": group.json()["id"]}


async def _create(api: httpx.AsyncClient, t: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(BASE, json=body, headers=t.headers)
    assert r.status_code == 202, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_create_normalizes_and_lists(
    api: httpx.AsyncClient, tenant_a: Tenant, bus: RecordingBus
) -> None:
    ids = await _setup(api, tenant_a)
    made = await _create(
        api,
        tenant_a,
        {"phone": "8 (916) 123-45-67", "number": "8 495 111-22-33", "params": {"utm_source": "ya"}},
    )
    assert made["phone"] == "+79161234567" and made["status"] == "pending"
    assert made["attempts"] == 0 and made["call_ids"] == [] and made["number_id"]
    assert made["params"] == {"utm_source": "ya"} and made["next_attempt_at"]
    assert [e.request_id for e in bus.of_type(CallbackRequested)] == [uuid.UUID(made["id"])]
    later = datetime.now(UTC) + timedelta(hours=1)
    by_group = await _create(
        api,
        tenant_a,
        {"phone": "+79161234568", "group_id": ids["group"], "not_before": later.isoformat()},
    )
    await _create(api, tenant_a, {"phone": "+79161234569", "employee_id": ids["employee"]})
    got = (await api.get(f"{BASE}/{by_group['id']}", headers=tenant_a.headers)).json()
    assert got["group_id"] == ids["group"]
    assert datetime.fromisoformat(got["next_attempt_at"]) >= later - timedelta(seconds=1)
    page = (await api.get(BASE, params={"limit": 2}, headers=tenant_a.headers)).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    pending = (await api.get(BASE, params={"status": "pending"}, headers=tenant_a.headers)).json()
    assert pending["total"] == 3
    none = (await api.get(BASE, params={"status": "completed"}, headers=tenant_a.headers)).json()
    assert none["total"] == 0


async def test_bad_input_is_a_clear_4xx(api: httpx.AsyncClient, tenant_a: Tenant) -> None:
    ids = await _setup(api, tenant_a)
    h = tenant_a.headers
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"phone": "12", "number": "+74951112233"}, 422, "invalid_phone_number"),
        ({"phone": "+79161234567"}, 422, "validation_error"),
        (
            {"phone": "+79161234567", "number": "+74951112233", "group_id": ids["group"]},
            422,
            "validation_error",
        ),
        ({"phone": "+79161234567", "number": "+74959999999"}, 404, "number_not_found"),
        ({"phone": "+79161234567", "group_id": str(uuid.uuid4())}, 404, "not_found"),
        (
            {
                "phone": "+79161234567",
                "employee_id": ids["employee"],
                "not_before": "2030-01-01T10:00:00",
            },
            422,
            "validation_error",
        ),
        (
            {"phone": "+79161234567", "employee_id": ids["employee"], "params": {"bad key": "x"}},
            422,
            "validation_error",
        ),
        (
            {"phone": "+79161234567", "employee_id": ids["employee"], "extra": 1},
            422,
            "validation_error",
        ),
    ]
    for body, status, code in cases:
        r = await api.post(BASE, json=body, headers=h)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code, (body, r.text)
    r = await api.get(f"{BASE}/{uuid.uuid4()}", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await api.get(f"{BASE}/not-a-uuid", headers=h)
    assert r.status_code == 422
    r = await api.get(BASE, params={"status": "bogus"}, headers=h)
    assert r.status_code == 422


async def test_cancel_and_conflict(
    api: httpx.AsyncClient, tenant_a: Tenant, bus: RecordingBus
) -> None:
    ids = await _setup(api, tenant_a)
    made = await _create(api, tenant_a, {"phone": "+79161234567", "employee_id": ids["employee"]})
    r = await api.post(f"{BASE}/{made['id']}/cancel", headers=tenant_a.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert r.json()["finished_at"] and r.json()["next_attempt_at"] is None
    changed = bus.of_type(CallbackChanged)
    assert changed[-1].status is CallbackStatus.cancelled
    r = await api.post(f"{BASE}/{made['id']}/cancel", headers=tenant_a.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "callback_finished"


async def test_other_accounts_and_roles(
    api: httpx.AsyncClient, container: Any, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    ids = await _setup(api, tenant_a)
    made = await _create(api, tenant_a, {"phone": "+79161234567", "group_id": ids["group"]})
    # B sees nothing of A's, cannot cancel it, cannot point at A's group or number. Every
    # endpoint with an id is walked (from the OpenAPI document, so a new one is not missed).
    paths = (await api.get("/api/openapi.json")).json()["paths"]
    walk = [
        (method.upper(), template.format(callback_request_id=made["id"]))
        for template, operations in paths.items()
        if template.startswith(BASE + "/")
        for method in operations
    ]
    assert len(walk) == 2, walk
    for method, path in walk:
        r = await api.request(method, path, headers=tenant_b.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        assert made["id"] not in r.text
    assert (await api.get(BASE, headers=tenant_b.headers)).json()["total"] == 0
    for body in (
        {"group_id": ids["group"]},
        {"employee_id": ids["employee"]},
        {"number": "+74951112233"},
    ):
        r = await api.post(BASE, json={"phone": "+79161234567", **body}, headers=tenant_b.headers)
        assert r.status_code == 404, r.text
    again = (await api.get(f"{BASE}/{made['id']}", headers=tenant_a.headers)).json()
    assert again["status"] == "pending"
    # A marketer may read but not order calls.
    marketer = await make_tenant(container, "market", Role.marketer)
    r = await api.post(
        BASE, json={"phone": "+79161234567", "number": "+74951112233"}, headers=marketer.headers
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert (await api.get(BASE, headers=marketer.headers)).status_code == 200


async def test_claim_retry_fail_and_recover(
    api: httpx.AsyncClient, callbacks: CallbackService, tenant_a: Tenant
) -> None:
    ids = await _setup(api, tenant_a)
    now = datetime.now(UTC)
    soon = await _create(api, tenant_a, {"phone": "+79161234567", "employee_id": ids["employee"]})
    await _create(
        api,
        tenant_a,
        {
            "phone": "+79161234568",
            "employee_id": ids["employee"],
            "not_before": (now + timedelta(hours=1)).isoformat(),
        },
    )
    retry = Retry(max_attempts=2, interval=60)
    t = now + timedelta(seconds=1)
    (row,) = await callbacks.claim_due(t, 10)
    assert str(row.id) == soon["id"] and row.status is CallbackStatus.calling and row.attempts == 1
    assert await callbacks.claim_due(t, 10) == []  # taken: nobody else gets it
    row2 = await callbacks.record_attempt(row.id, "then_no_answer", "c1", retry, t)
    assert row2 is not None and row2.status is CallbackStatus.pending
    assert await callbacks.claim_due(t + timedelta(seconds=59), 10) == []  # not before 60 s
    (row,) = await callbacks.claim_due(t + timedelta(seconds=61), 10)
    assert row.attempts == 2
    done = await callbacks.record_attempt(row.id, "first_no_answer", "c2", retry, t)
    assert done is not None and done.status is CallbackStatus.failed
    assert done.failed_side is FailedSide.agents and done.call_ids == ["c1", "c2"]
    out = (await api.get(f"{BASE}/{soon['id']}", headers=tenant_a.headers)).json()
    assert out["status"] == "failed" and out["failed_side"] == "agents" and out["attempts"] == 2
    assert out["last_outcome"] == "first_no_answer"
    # A crash mid-call: "calling" goes back to pending, the interrupted attempt not counted.
    later = now + timedelta(hours=2)
    (row,) = await callbacks.claim_due(later, 10)
    assert await callbacks.recover(later) == 1
    (again,) = await callbacks.claim_due(later, 10)
    assert again.id == row.id and again.attempts == 1
    ok = await callbacks.record_attempt(again.id, "connected", "c3", retry, later)
    assert ok is not None and ok.status is CallbackStatus.completed
    # An attempt that ends after the request was cancelled leaves it cancelled.
    third = await _create(api, tenant_a, {"phone": "+79161234569", "group_id": ids["group"]})
    (row,) = await callbacks.claim_due(later, 10)
    await api.post(f"{BASE}/{third['id']}/cancel", headers=tenant_a.headers)
    after = await callbacks.record_attempt(row.id, "cancelled", "c4", retry, later)
    assert after is not None and after.status is CallbackStatus.cancelled
    assert re.fullmatch(r"c\d", after.call_ids[-1])
