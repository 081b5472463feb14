"""Account B's token walks every endpoint against account A's objects: 404, never data.

The walk is driven by the app's own OpenAPI document, so a new endpoint with an id in its path fails
this test until the test knows how to make an object for that id.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx

from tests.conftest import Tenant
from zvonar.acd.facts import FactKind, QueueFact
from zvonar.app import create_app
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallRecorded,
    CallRinging,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    Target,
    TargetKind,
)
from zvonar.container import Container
from zvonar.media.wav import encode_wav
from zvonar.pbx.queues import queue_runtime

# Minimal valid bodies, so a 404 cannot hide behind a 422.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/v1/employees/{employee_id}"): {"name": "Mallory"},
    ("PATCH", "/api/v1/groups/{group_id}"): {"name": "Mallory"},
    ("PATCH", "/api/v1/numbers/{number_id}"): {"label": "Mallory"},
    ("PATCH", "/api/v1/trunks/{trunk_id}"): {"name": "Mallory"},
    ("PUT", "/api/v1/groups/{group_id}/members"): {"members": []},
    ("PUT", "/api/v1/schemes/{scheme_id}"): {
        "name": "Mallory",
        "branches": {"working": [{"type": "hangup"}]},
    },
    ("PUT", "/api/v1/numbers/{number_id}/scheme"): {"scheme_id": None},
    ("PATCH", "/api/v1/contacts/{contact_id}"): {"name": "Mallory"},
    ("PUT", "/api/v1/agents/{employee_id}/status"): {"status": "dnd"},
    ("PUT", "/api/v1/employees/{employee_id}/dnd"): {"dnd": True},
    ("POST", "/api/v1/acd/calls/{call_id}/move"): {"queue": "sales"},
    ("POST", "/api/v1/acd/calls/{call_id}/intercept"): {},
    ("POST", "/api/v1/acd/calls/{call_id}/listen"): {},
    ("POST", "/api/v1/acd/calls/{call_id}/transfer"): {"to": "102"},
}
# Query strings an endpoint requires, for the same reason.
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/v1/agents/{employee_id}/status-intervals"): {
        "since": "2026-01-01T00:00:00Z",
        "until": "2026-01-02T00:00:00Z",
    },
}


async def _make_queue_facts(container: Container, a: Tenant) -> None:
    at = datetime(2026, 1, 15, 10, 0, tzinfo=UTC).timestamp()
    await container.acd.record(
        a.account_id,
        [
            QueueFact(kind=FactKind.entered, queue_id="sales", call_id="q1", at=at),
            QueueFact(kind=FactKind.abandoned, queue_id="sales", call_id="q1", at=at + 9, wait=9),
        ],
    )


async def _make_call(container: Container, a: Tenant) -> None:
    """One finished, recorded call in A's journal, made the way the B2BUA makes it: by events."""
    start = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    path = container.journal.recording_path_for(a.account_id, "iso-call-1", start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_wav(b"\x00\x00" * 800))
    common = {"account_id": a.account_id, "call_id": "iso-call-1"}
    for event in (
        CallStarted(
            **common,
            direction=Direction.inbound,
            caller="+74951110000",
            dialed="+74951112233",
            number_label="A line",
            started_at=start,
        ),
        CallRinging(
            **common,
            leg_id="l1",
            target=Target(TargetKind.employee, "Alice", None),
            at=start + timedelta(seconds=1),
        ),
        CallAnswered(**common, leg_id="l1", at=start + timedelta(seconds=3)),
        CallRecorded(
            **common, path=str(path.relative_to(container.settings.data_dir)), duration=0.1
        ),
        CallEnded(
            **common,
            disposition=Disposition.answered,
            ended_at=start + timedelta(seconds=30),
            hangup=HangupSide.caller,
            scheme_path=("working",),
        ),
    ):
        await container.bus.publish(event)


async def _walk_live_call(
    container: Container, template: str, methods: list[str], a: Tenant, b: Tenant
) -> int:
    """Live ACD calls exist only in a process running the PBX: A's caller waits in a runtime of
    the test's own, and B acting on that call id finds nothing."""
    runtime = queue_runtime(container.db, container.bus, container.acd)
    await runtime.start()
    try:
        opened = await runtime.open(
            a.account_id,
            "sales",
            "iso-wait-1",
            caller_tags=frozenset(),
            language="en",
            prompts_dir=None,
            targets=lambda _agent: (),
        )
        assert opened is not None
        session, _music = opened
        assert await session.enter(lambda _signal: None)
        app = create_app(container)
        app.state.acd = runtime
        # Listening looks the call up in the B2BUA: there A's call is answered.
        answered = SimpleNamespace(
            account_id=a.account_id,
            done=False,
            was_answered=True,
            caller=SimpleNamespace(media_id="iso-wait-1.a"),
            facts=SimpleNamespace(caller="+74951110000"),
        )
        b2bua = SimpleNamespace(calls={"iso-wait-1": answered}, originated={})
        app.state.pbx = SimpleNamespace(b2bua=b2bua, credentials=None, lookup=None)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for method in methods:
                body = BODIES.get((method, template))
                path = template.format(call_id="iso-wait-1")
                r = await c.request(method, path, json=body, headers=b.headers)
                assert r.status_code == 404, f"{method} {template}: {r.status_code} {r.text}"
                assert r.json()["error"]["code"] == "not_found"
            live = (await c.get("/api/v1/acd/live", headers=a.headers)).json()
            waiting = [(w["call_id"], w["position"]) for q in live["queues"] for w in q["waiting"]]
            assert waiting == [("iso-wait-1", 1)]
        return len(methods)
    finally:
        await runtime.close()


def _one(key: str, value: str) -> str:
    if key == "callback_request_id":
        return f"/api/v1/callback-requests/{value}"
    collection = "calls" if key == "call_pk" else f"{key[:-3]}s"
    return f"/api/v1/{collection}/{value}"


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
    contact = await post(
        "/api/v1/contacts", {"name": "Supplier", "tags": ["supplier"], "numbers": ["+74951110000"]}
    )
    calls = (await client.get("/api/v1/calls", headers=h)).json()["items"]
    assert len(calls) == 1 and calls[0]["caller"] == "+74951110000", calls
    r = await client.get(f"/api/v1/calls/{calls[0]['id']}/recording", headers=h)
    assert r.status_code == 200 and r.content.startswith(b"RIFF"), r.text
    scheme = await post(
        "/api/v1/schemes",
        {
            "name": "A main",
            "branches": {"working": [{"type": "ring", "targets": [{"employee": "101"}]}]},
        },
    )
    r = await client.put(
        f"/api/v1/numbers/{number['id']}/scheme", json={"scheme_id": scheme["id"]}, headers=h
    )
    assert r.status_code == 200, r.text
    extra: dict[str, str] = {}
    served = (await client.get("/api/openapi.json")).json()["paths"]
    if "/api/v1/callback-requests" in served:  # once app.py serves the callbacks slice
        r = await client.post(
            "/api/v1/callback-requests",
            json={"phone": "+74951110000", "group_id": group["id"]},
            headers=h,
        )
        assert r.status_code == 202, r.text
        extra["callback_request_id"] = r.json()["id"]
    return {
        **extra,
        "contact_id": contact["id"],
        "call_pk": calls[0]["id"],
        "scheme_id": scheme["id"],
        "trunk_id": trunk["id"],
        "employee_id": employee["id"],
        "group_id": group["id"],
        "number_id": number["id"],
        "token_id": token["id"],
    }


async def test_every_endpoint_hides_other_accounts_objects(
    container: Container, client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await _make_call(container, tenant_a)
    await _make_queue_facts(container, tenant_a)
    r = await client.put(
        "/api/v1/prompts/ru/greeting",
        content=encode_wav(b"\x00\x01" * 4000),
        headers={**tenant_a.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 200, r.text
    ids = await _make_objects(client, tenant_a)
    queue = {"name": "sales", "members": [{"extension": "101"}]}
    r = await client.post("/api/v1/queues", json=queue, headers=tenant_a.headers)
    assert r.status_code == 201, r.text
    queue_before = r.json()
    before = {
        k: (await client.get(_one(k, v), headers=tenant_a.headers)).json()
        for k, v in ids.items()
        if k != "token_id"
    }
    before["assignment"] = (
        await client.get(f"/api/v1/numbers/{ids['number_id']}/scheme", headers=tenant_a.headers)
    ).json()
    paths = create_app(container).openapi()["paths"]
    walked = 0
    uncovered = []
    for template, operations in paths.items():
        if not template.startswith("/api/v1"):
            continue
        params = re.findall(r"{(\w+)}", template)
        if not params:
            continue
        if params == ["queue_id"]:
            # Queues are named per account, not addressed by id: B asking about A's queue name
            # sees only its own (empty) facts.
            r = await client.get(
                template.format(queue_id="sales"),
                params={"since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
                headers=tenant_b.headers,
            )
            assert r.status_code == 200 and r.json()["entered"] == 0, r.text
            walked += 1
            continue
        if params == ["name"] and template.startswith("/api/v1/queues/"):
            # Queues are named per account: B naming A's queue finds nothing to read or touch.
            for method in sorted(m.upper() for m in operations):
                body = {"title": "Mallory"} if method == "PATCH" else None
                r = await client.request(
                    method, template.format(name="sales"), json=body, headers=tenant_b.headers
                )
                assert r.status_code == 404, f"{method} {template}: {r.status_code} {r.text}"
                assert r.json()["error"]["code"] == "not_found"
                walked += 1
            continue
        if params == ["language", "key"] and template.endswith("/speech"):
            # B speaking a "greeting" makes B's own (gone again at once); A's stays A's.
            r = await client.post(
                template.format(language="ru", key="greeting"),
                json={"text": "Мэллори"},
                headers=tenant_b.headers,
            )
            assert r.status_code in (200, 503), r.text  # 503: no espeak-ng on this machine
            if r.status_code == 200:
                gone = await client.delete("/api/v1/prompts/ru/greeting", headers=tenant_b.headers)
                assert gone.status_code == 204
            walked += 1
            continue
        if params == ["language", "key"]:
            # Prompts are named per account: B cannot delete A's greeting (it has none of its
            # own), and B uploading one makes B's, never touching A's file.
            r = await client.delete(
                template.format(language="ru", key="greeting"), headers=tenant_b.headers
            )
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
            walked += 1
            continue
        if params == ["call_id"] and template.startswith("/api/v1/acd/calls/"):
            methods = sorted(m.upper() for m in operations)
            walked += await _walk_live_call(container, template, methods, tenant_a, tenant_b)
            continue
        if any(p not in ids for p in params):
            uncovered.append(template)
            continue
        path = template.format(**ids)
        for method in sorted(m.upper() for m in operations):
            body = BODIES.get((method, template))
            query = QUERIES.get((method, template))
            r = await client.request(
                method, path, json=body, params=query, headers=tenant_b.headers
            )
            assert r.status_code == 404, f"{method} {template}: {r.status_code} {r.text}"
            assert r.json()["error"]["code"] == "not_found"
            for value in ids.values():
                assert value not in r.text
            walked += 1
    assert not uncovered, f"teach this test to make objects for: {uncovered}"
    assert walked >= 15
    listed = await client.get("/api/v1/prompts", headers=tenant_b.headers)
    assert listed.json() == []
    a_prompts = await client.get("/api/v1/prompts", headers=tenant_a.headers)
    assert [x["key"] for x in a_prompts.json()] == ["greeting"]

    # Nothing of A changed, and A's token still works.
    for k, v in ids.items():
        if k == "token_id":
            continue
        now = (await client.get(_one(k, v), headers=tenant_a.headers)).json()
        assert now == before[k]
    assert (await client.get("/api/v1/me", headers=tenant_a.headers)).status_code == 200
    r = await client.get("/api/v1/queues/sales", headers=tenant_a.headers)
    assert r.json() == queue_before
    now = await client.get(f"/api/v1/numbers/{ids['number_id']}/scheme", headers=tenant_a.headers)
    assert now.json() == before["assignment"] and now.json()["scheme_id"] == ids["scheme_id"]


async def test_lists_and_references_stay_in_the_account(
    container: Container, client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await _make_call(container, tenant_a)
    ids = await _make_objects(client, tenant_a)
    queue = {"name": "sales", "members": [{"extension": "101"}]}
    r = await client.post("/api/v1/queues", json=queue, headers=tenant_a.headers)
    assert r.status_code == 201, r.text
    for path in (
        "employees",
        "groups",
        "numbers",
        "trunks",
        "schemes",
        "contacts",
        "calls",
        "queues",
    ):
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
    # B cannot attach its scheme to A's number, nor A's scheme to its own number.
    b_number = (
        await client.post(
            "/api/v1/numbers", json={"number": "+74951112255"}, headers=tenant_b.headers
        )
    ).json()
    r = await client.put(
        f"/api/v1/numbers/{b_number['id']}/scheme",
        json={"scheme_id": ids["scheme_id"]},
        headers=tenant_b.headers,
    )
    assert r.status_code in (404, 422), r.text
    # A DID belongs to one account only.
    r = await client.post(
        "/api/v1/numbers", json={"number": "+74951112233"}, headers=tenant_b.headers
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "number_taken"
