"""The queue definition service on SQLite and PostgreSQL: writes, rules, permissions, events
after commit, tenant scope, and the runtime's ``load``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Tenant
from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.acd.definitions import QueueMember
from zvonar.acd.queue import Strategy
from zvonar.acd.queues import AcdQueueService, QueueDefined, QueueDeleted
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from zvonar.directory.config import apply_directory

SALES: dict[str, Any] = {
    "name": "sales",
    "strategy": "in_turn",
    "members": [{"extension": "101"}, {"extension": "102", "level": 2}],
    "escalation": {2: 20},
    "max_wait": 120,
    "exit_digit": "0",
}


async def _setup(container: Container, t: Tenant) -> tuple[AcdQueueService, Principal]:
    employees = {"101": {"name": "Ann"}, "102": {"name": "Boris"}, "103": {"name": "Vera"}}
    await apply_directory(container.db, t.account_id, {"employees": employees}, dry_run=False)
    return AcdQueueService(container.db), Principal(t.account_id, Role.admin)


async def test_create_read_update_delete_with_events(
    container: Container, tenant_a: Tenant, bus: RecordingBus
) -> None:
    svc, admin = await _setup(container, tenant_a)
    created = await svc.create_queue(admin, SALES)
    q = created.definition
    assert q.strategy is Strategy.in_turn
    assert q.members == (QueueMember("101"), QueueMember("102", 2))
    assert [(e.account_id, e.name) for e in bus.of_type(QueueDefined)] == [
        (tenant_a.account_id, "sales")
    ]
    got = await svc.get_queue(admin, "sales")
    assert got.id == created.id and got.definition == q

    # A patch changes only what it names; null puts a field back to its default.
    patched = await svc.update_queue(
        admin, "sales", {"title": "Sales line", "max_wait": None, "members": [{"extension": "103"}]}
    )
    assert patched.definition.title == "Sales line"
    assert patched.definition.max_wait is None
    assert patched.definition.members == (QueueMember("103"),)
    assert patched.definition.exit_digit == "0" and patched.definition.escalation == {2: 20.0}
    assert patched.updated_at >= created.updated_at
    assert len(bus.of_type(QueueDefined)) == 2
    # The same patch again writes nothing and tells nobody.
    await svc.update_queue(admin, "sales", {"title": "Sales line"})
    assert len(bus.of_type(QueueDefined)) == 2

    await svc.create_queue(admin, {"name": "support"})
    page = await svc.list_queues(admin)
    assert page.total == 2 and [v.definition.name for v in page.items] == ["sales", "support"]
    page = await svc.list_queues(admin, q="SUP", limit=1)
    assert page.total == 1 and page.items[0].definition.name == "support"
    page = await svc.list_queues(admin, limit=1, offset=1)
    assert page.total == 2 and [v.definition.name for v in page.items] == ["support"]

    # Rename: the old key is gone, the new one defined.
    await svc.update_queue(admin, "support", {"name": "care"})
    assert bus.of_type(QueueDeleted)[-1].name == "support"
    assert bus.of_type(QueueDefined)[-1].name == "care"
    with pytest.raises(NotFound):
        await svc.get_queue(admin, "support")

    await svc.delete_queue(admin, "care")
    assert bus.of_type(QueueDeleted)[-1].name == "care"
    assert set(await svc.load(tenant_a.account_id)) == {"sales"}


async def test_rules_have_codes_and_paths(container: Container, tenant_a: Tenant) -> None:
    svc, admin = await _setup(container, tenant_a)
    with pytest.raises(InvalidInput) as info:
        await svc.create_queue(admin, {**SALES, "members": ["101", "999"]})
    assert info.value.code == "unknown_reference"
    assert info.value.details["path"] == "members[1].extension"
    with pytest.raises(InvalidInput) as info:
        await svc.create_queue(admin, {**SALES, "ring_timeout": 0})
    assert (info.value.code, info.value.details["path"]) == ("invalid_queue", "ring_timeout")

    await svc.create_queue(admin, SALES)
    with pytest.raises(Conflict) as conflict:
        await svc.create_queue(admin, {"name": "sales"})
    assert conflict.value.code == "queue_name_taken"
    await svc.create_queue(admin, {"name": "care"})
    with pytest.raises(Conflict) as conflict:
        await svc.update_queue(admin, "care", {"name": "sales"})
    assert conflict.value.code == "queue_name_taken"
    with pytest.raises(InvalidInput) as info:
        await svc.update_queue(admin, "care", {"colour": "red"})
    assert info.value.details["path"] == "colour"
    with pytest.raises(NotFound):
        await svc.update_queue(admin, "nope", {"title": "x"})
    with pytest.raises(NotFound):
        await svc.delete_queue(admin, "nope")


async def test_a_queue_a_scheme_uses_cannot_go(container: Container, tenant_a: Tenant) -> None:
    svc, admin = await _setup(container, tenant_a)
    await svc.create_queue(admin, SALES)
    scheme = {"branches": {"working": [{"type": "queue", "queue": "sales", "timeout": 60}]}}
    await container.routing.create_scheme(admin, "Main", scheme)
    for attempt in (
        svc.delete_queue(admin, "sales"),
        svc.update_queue(admin, "sales", {"name": "sales2"}),
    ):
        with pytest.raises(Conflict) as conflict:
            await attempt
        assert conflict.value.code == "queue_in_use"
        assert conflict.value.details == {"scheme": "Main", "path": "branches.working[0].queue"}
    # Other changes are fine while in use.
    await svc.update_queue(admin, "sales", {"max_length": 5})
    # A scheme names only queues that exist (the REST door checks as config apply does).
    scheme["branches"]["working"][0]["queue"] = "other"
    main = (await container.routing.list_schemes(admin)).items[0]
    with pytest.raises(InvalidInput) as unknown:
        await container.routing.replace_scheme(admin, main.id, "Main", scheme)
    assert unknown.value.code == "unknown_reference"
    assert unknown.value.details == {"scheme": "Main", "path": "branches.working[0].queue"}
    await svc.create_queue(admin, {**SALES, "name": "other"})
    await container.routing.replace_scheme(admin, main.id, "Main", scheme)
    await svc.delete_queue(admin, "sales")


async def test_permissions(container: Container, tenant_a: Tenant) -> None:
    svc, admin = await _setup(container, tenant_a)
    await svc.create_queue(admin, SALES)
    acc = tenant_a.account_id
    for role in (Role.supervisor, Role.operator, Role.marketer):
        p = Principal(acc, role)
        assert (await svc.get_queue(p, "sales")).definition.name == "sales"
        assert (await svc.list_queues(p)).total == 1
        with pytest.raises(PermissionDenied):
            await svc.create_queue(p, {"name": "x"})
        with pytest.raises(PermissionDenied):
            await svc.update_queue(p, "sales", {"title": "x"})
        with pytest.raises(PermissionDenied):
            await svc.delete_queue(p, "sales")


async def test_tenants_see_only_their_queues(
    container: Container, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    svc, a = await _setup(container, tenant_a)
    _, b = await _setup(container, tenant_b)
    await svc.create_queue(a, SALES)
    # B may use the same name for its own queue; neither sees the other's.
    await svc.create_queue(b, {"name": "sales", "members": ["103"]})
    assert (await svc.get_queue(a, "sales")).definition.members[0].extension == "101"
    assert (await svc.get_queue(b, "sales")).definition.members == (QueueMember("103"),)
    await svc.delete_queue(b, "sales")
    with pytest.raises(NotFound):
        await svc.get_queue(b, "sales")
    assert (await svc.list_queues(b)).total == 0
    assert set(await svc.load(tenant_a.account_id)) == {"sales"}
    assert await svc.load(tenant_b.account_id) == {}


async def test_load_gives_the_runtime_ready_definitions(
    container: Container, tenant_a: Tenant
) -> None:
    svc, admin = await _setup(container, tenant_a)
    await svc.create_queue(admin, SALES)
    await svc.create_queue(admin, {"name": "care", "vip_tags": ["gold"], "announce_interval": 30})
    loaded = await svc.load(tenant_a.account_id)
    assert list(loaded) == ["care", "sales"]
    config = loaded["sales"].to_queue_config({"101": "agent-1", "102": "agent-2"}.get)
    assert dict(config.tiers) == {"agent-1": 1, "agent-2": 2}
    assert config.max_wait == 120.0 and config.exit_digit == "0"
    assert loaded["care"].priority_for(["gold"]) == 1
