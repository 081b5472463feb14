"""The live feed: per-client subscriptions, drop-oldest, heartbeats, and SSE over a real socket."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from tests.acd.test_live_api import Phones, eventually, live_app, queue, staff, wait_in
from tests.conftest import Tenant, make_tenant
from tests.support.server import free_port
from zvonar.accounts.models import Role
from zvonar.acd import live
from zvonar.acd.events import AgentStatusChanged, QueueCallerChanged
from zvonar.acd.runtime import AcdRuntime
from zvonar.calls.events import (
    CallEnded,
    CallTransferred,
    Disposition,
    HangupSide,
    Target,
    TargetKind,
    TransferKind,
)
from zvonar.container import Container
from zvonar.core.bus import InProcessBus, RecordingBus
from zvonar.pbx.queues import queue_runtime

A, B = uuid.uuid4(), uuid.uuid4()
AT = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def changed(account: uuid.UUID, n: int) -> QueueCallerChanged:
    return QueueCallerChanged(
        account_id=account, queue="sales", call_id=f"c{n}", what="joined", at=AT
    )


async def test_feed_keeps_its_account_and_drops_the_oldest() -> None:
    bus = InProcessBus()
    feed = live.Feed(bus, A, backlog=3)
    for n in range(5):
        await bus.publish(changed(A, n))
        await bus.publish(changed(B, n))
    events, dropped = await feed.next(0.01)
    assert [e.call_id for e in events] == ["c2", "c3", "c4"] and dropped == 2  # type: ignore[attr-defined]
    assert await feed.next(0.01) == ([], 0)
    feed.close()
    await bus.publish(changed(A, 9))
    assert await feed.next(0.01) == ([], 0)  # unsubscribed


async def test_stream_frames_heartbeats_and_unsubscribes() -> None:
    bus = InProcessBus()
    feeds: list[live.Feed] = []

    def open_feed() -> live.Feed:
        feeds.append(live.Feed(bus, A, backlog=2))
        return feeds[-1]

    body = live.stream(open_feed, heartbeat=0.05)
    assert await anext(body) == "retry: 3000\n: connected\n\n"
    assert await anext(body) == ": ping\n\n"  # nothing happened for a heartbeat
    for n in range(3):
        await bus.publish(changed(A, n))
    dropped = await anext(body)
    assert dropped == 'event: dropped\ndata: {"dropped":1}\n\n'
    first = await anext(body)
    lines = first.split("\n")
    assert lines[0].startswith("id: ") and lines[1] == "event: QueueCallerChanged"
    data = json.loads(lines[2].removeprefix("data: "))
    assert data == {
        "occurred_at": data["occurred_at"],
        "queue": "sales",
        "call_id": "c1",
        "what": "joined",
        "at": "2026-01-15T10:00:00+00:00",
    }
    await anext(body)
    await body.aclose()
    await bus.publish(changed(A, 7))
    assert feeds[0].dropped == 0 and await feeds[0].next(0.01) == ([], 0)


def test_call_events_encode_as_plain_json() -> None:
    ended = CallEnded(
        account_id=A,
        call_id="x1",
        disposition=Disposition.answered,
        ended_at=AT,
        hangup=HangupSide.caller,
        scheme_path=("working", "queue"),
    )
    name, data = live.encode(ended).split("\n")[1:3]
    assert name == "event: CallEnded"
    got = json.loads(data.removeprefix("data: "))
    assert got["disposition"] == "answered" and got["scheme_path"] == ["working", "queue"]
    assert "account_id" not in got and got["ended_at"] == "2026-01-15T10:00:00+00:00"


def test_a_park_is_a_transfer_to_the_slot_on_the_stream() -> None:
    """The parking lot changes with a CallTransferred whose ``to`` is the slot."""
    parked = CallTransferred(
        account_id=A,
        call_id="x2",
        from_leg_id="x2.w0t0",
        to=Target(TargetKind.park, "*51"),
        kind=TransferKind.blind,
        at=AT,
    )
    assert CallTransferred in live.CALL_EVENTS
    name, data = live.encode(parked).split("\n")[1:3]
    assert name == "event: CallTransferred"
    got = json.loads(data.removeprefix("data: "))
    assert got["to"] == {"kind": "park", "display": "*51", "target_id": None}


@pytest.fixture
async def served(container: Container) -> AsyncIterator[tuple[str, AcdRuntime]]:
    """The app under uvicorn on a loopback port, in this loop (SSE needs a real stream)."""
    runtime = queue_runtime(container.db, container.bus, container.acd)
    await runtime.start()
    port = free_port()
    config = uvicorn.Config(
        live_app(container, runtime),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}", runtime
    server.should_exit = True
    await asyncio.wait_for(task, 30)
    await runtime.close()


async def test_sse_stream_carries_the_accounts_live_events(
    served: tuple[str, AcdRuntime], tenant_a: Tenant, tenant_b: Tenant, bus: RecordingBus
) -> None:
    base, runtime = served
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        ids = await staff(c, tenant_a, "101")
        await queue(c, tenant_a, "sales", "101")
        subscribers = len(bus._handlers)  # the in-process twin's subscriptions
        async with (
            c.stream("GET", "/api/v1/acd/events", headers=tenant_a.headers) as a_stream,
            c.stream("GET", "/api/v1/acd/events", headers=tenant_b.headers) as b_stream,
        ):
            assert a_stream.headers["content-type"].startswith("text/event-stream")
            a_lines, b_lines = a_stream.aiter_lines(), b_stream.aiter_lines()
            assert await anext(a_lines) == "retry: 3000"
            assert await anext(b_lines) == "retry: 3000"
            await wait_in(runtime, tenant_a, "sales", "c1", Phones())
            body = {"status": "dnd"}
            r = await c.put(
                f"/api/v1/agents/{ids['101']}/status", json=body, headers=tenant_a.headers
            )
            assert r.status_code == 200, r.text
            seen: list[tuple[str, dict[str, object]]] = []
            name = ""
            async with asyncio.timeout(20):
                async for line in a_lines:
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        seen.append((name, json.loads(line.removeprefix("data: "))))
                        if name == AgentStatusChanged.__name__ and seen[-1][1]["new"] == "dnd":
                            break
            kinds = [(n, d.get("what") or d.get("new")) for n, d in seen]
            assert ("QueueCallerChanged", "joined") in kinds
            assert kinds[-1] == ("AgentStatusChanged", "dnd")
            # B's stream got nothing but its opening lines in the meantime.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    while True:
                        line = await anext(b_lines)
                        assert not line.startswith(("event:", "data:")), line
            assert len(bus._handlers) == subscribers + 2 * 7
        # The clients went away: their subscriptions went with them.
        await eventually(lambda: len(bus._handlers) == subscribers)


async def test_sse_needs_acd_read(served: tuple[str, AcdRuntime], container: Container) -> None:

    base, _ = served
    op = await make_tenant(container, "ops", Role.operator)
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        r = await c.get("/api/v1/acd/events", headers=op.headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
