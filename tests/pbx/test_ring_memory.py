"""Round-robin turns survive a restart: the resolver's pointers are written behind and read
back by the next process (pbx/ring_memory.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Tenant
from zvonar.container import Container
from zvonar.pbx.ring_memory import RingMemory


async def test_pointers_written_behind_are_what_the_next_process_starts_from(
    container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    running = RingMemory(container.db)
    running.remember(tenant_a.account_id, {"group:Sales": 2, "ring:Main:employee:101": 1})
    running.remember(tenant_b.account_id, {"group:Sales": 1})
    await running.flush()
    running.remember(tenant_a.account_id, {"group:Sales": 0})  # the turn moved on
    await running.stop()  # the last move is written at stop

    restarted = RingMemory(container.db)
    await restarted.load()
    assert dict(restarted.of(tenant_a.account_id)) == {
        "group:Sales": 0,
        "ring:Main:employee:101": 1,
    }
    assert dict(restarted.of(tenant_b.account_id)) == {"group:Sales": 1}
    assert restarted.of(uuid.uuid4()) == {}


async def test_a_failed_write_is_retried_with_the_next(
    container: Container, tenant_a: Tenant
) -> None:
    memory = RingMemory(container.db)
    memory.remember(tenant_a.account_id, {"group:Sales": 1})
    real = memory.db
    memory.db = None  # type: ignore[assignment]  # the database is away
    with pytest.raises(AttributeError):
        await memory.flush()
    memory.db = real
    await memory.flush()
    again = RingMemory(container.db)
    await again.load()
    assert dict(again.of(tenant_a.account_id)) == {"group:Sales": 1}
