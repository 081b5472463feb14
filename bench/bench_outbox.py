"""What the event outbox (store/outbox.py) costs: per write, per idle poll, per relayed event.

Run: .venv/bin/python bench/bench_outbox.py [--pg URL] [--writes N]

On a temporary SQLite file and, with ``--pg``, on PostgreSQL (its tables are dropped and
created):

- ``write``: one employee's do-not-disturb toggled (one unit of work, one event) with the
  commit hooks (the outbox row and the routing version) and without them;
- ``idle poll``: the relay's read when nothing arrived (what every PBX pays each second);
- ``relay``: events another process committed, read, decoded and published, per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from dbbench import run_on_databases
from sqlalchemy import insert

from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.core.bus import InProcessBus
from zvonar.core.event_codec import encode_event
from zvonar.core.events import Event
from zvonar.directory.events import EmployeeDndChanged
from zvonar.directory.schemas import EmployeeIn
from zvonar.store.outbox import OutboxRow


async def per_call(n: int, fn: Callable[[], Awaitable[object]]) -> float:
    took = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        took.append(time.perf_counter() - start)
    return statistics.median(took) * 1e3


async def bench(c: Container, args: argparse.Namespace) -> None:
    writes = args.writes
    account = await c.accounts.create_account("Bench", "bench")
    p = Principal(account_id=account.id, role=Role.admin)
    made = await c.directory.create_employee(p, EmployeeIn(name="Anna", extension="101"))
    emp = made.view.employee.id

    async def toggle() -> object:
        return await c.directory.set_dnd(account.id, None, employee_id=emp)

    await per_call(20, toggle)  # warm up
    hooked = await per_call(writes, toggle)
    hooks = list(c.db._before_commit)
    c.db._before_commit.clear()
    bare = await per_call(writes, toggle)
    c.db._before_commit.extend(hooks)
    print(f"  write       p50 {hooked:6.3f} ms with the hooks, {bare:6.3f} ms without")

    bus = InProcessBus()
    got = 0

    async def count(_event: Event) -> None:
        nonlocal got
        got += 1

    bus.subscribe(EmployeeDndChanged, count)
    relay = c.outbox.relay(bus)
    await relay.mark()
    idle = await per_call(200, relay.poll)
    print(f"  idle poll   p50 {idle:6.3f} ms")

    rows = []
    for i in range(10_000):
        event = EmployeeDndChanged(
            account_id=account.id, employee_id=uuid.uuid4(), extension="101", dnd=i % 2 == 0
        )
        kind, payload = encode_event(event)
        rows.append({"origin": "elsewhere", "event_type": kind, "payload": payload})
    async with c.db.engine.begin() as conn:
        await conn.execute(insert(OutboxRow), rows)
    start = time.perf_counter()
    while got < len(rows):
        await relay.poll()
    took = time.perf_counter() - start
    print(f"  relay       {len(rows) / took:8,.0f} events/s ({len(rows)} events)")


if __name__ == "__main__":
    run_on_databases(
        __doc__, bench, lambda parser: parser.add_argument("--writes", type=int, default=300)
    )
