"""What a call waits for to learn an account's routing data (pbx/snapshot.py), per path.

Run: .venv/bin/python bench/bench_routing_snapshot.py [--pg URL] [--rounds N]

A small business's account (12 employees, 2 groups, 3 numbers, 3 schemes, a calendar) on a
temporary SQLite file and, with ``--pg``, on PostgreSQL (its tables are dropped and created).
Each path is timed ``--rounds`` times on the snapshot's own clock, moved by hand:

- ``in memory``: the value is young (every call of a busy account);
- ``confirmed``: past ``max_age``, nothing changed: one read of the routing version (the first
  call after a quiet spell);
- ``read whole``: past ``max_age`` after a change (or an event dropped the value): the seven
  queries and the parsing; before the routing version, every quiet spell's first call paid it;
- ``numbers``: the map of every account's numbers, read whole (no version).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

from dbbench import run_on_databases

from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.container import Container
from zvonar.directory.schemas import EmployeeIn, GroupIn, MemberIn, NumberIn
from zvonar.pbx.snapshot import RoutingSnapshot


def ring(*targets: dict[str, str], timeout: int = 20) -> dict[str, object]:
    return {"type": "ring", "targets": list(targets), "timeout": timeout}


async def seed(c: Container) -> Principal:
    account = await c.accounts.create_account("Bench", "bench")
    p = Principal(account_id=account.id, role=Role.admin)
    ids = []
    for n in range(12):
        made = await c.directory.create_employee(
            p, EmployeeIn(name=f"Employee {n}", extension=str(101 + n))
        )
        ids.append(made.view.employee.id)
    await c.directory.create_group(
        p, GroupIn(name="Managers", members=[MemberIn(employee_id=i) for i in ids[1:5]])
    )
    await c.directory.create_group(
        p, GroupIn(name="Shop", members=[MemberIn(employee_id=i) for i in ids[5:]])
    )
    shop = {"branches": {"working": [ring({"group": "Shop"})]}, "final": {"type": "hangup"}}
    main = {
        "branches": {
            "working": [
                ring({"employee": "101"}),
                ring({"group": "Managers"}),
                ring({"employee": "106"}),
                {"type": "goto", "scheme": "Shop"},
            ],
            "off": [{"type": "voicemail"}],
        }
    }
    await c.routing.create_scheme(p, "Shop", shop)
    scheme = await c.routing.create_scheme(p, "Main", main)
    await c.routing.create_scheme(p, "Night", shop)
    for e164 in ("+74951234567", "+74951234568", "+78001234567"):
        number = await c.directory.add_number(p, NumberIn(number=e164, label="Sales"))
        await c.routing.assign(p, number.id, scheme.id)
    await c.routing.set_calendar(p, {"hours": {"mon": ["09:00-18:00"]}, "country": "RU"})
    return p


def report(name: str, took: list[float]) -> None:
    took.sort()
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    print(
        f"  {name:<11} p50 {statistics.median(took) * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms"
        f"   ({len(took)} rounds)"
    )


async def timed(
    rounds: int, before: Callable[[], None], run: Callable[[], Awaitable[object]]
) -> list[float]:
    took = []
    for _ in range(rounds):
        before()
        start = time.perf_counter()
        await run()
        took.append(time.perf_counter() - start)
    return took


async def bench(c: Container, args: argparse.Namespace) -> None:
    rounds = args.rounds
    p = await seed(c)
    now = [0.0]
    # No whole read falls due in the confirmed rounds (it would run in the background).
    snapshot = RoutingSnapshot(c.db, max_age=30, full_age=1e9, clock=lambda: now[0])
    account = p.account_id
    assert await snapshot.account(account) is not None
    for _ in range(20):  # warm the pool, the statement caches and the holiday tables
        snapshot.invalidate(account)
        await snapshot.account(account)

    def young() -> None:
        now[0] += 0.001

    def quiet() -> None:  # past max_age
        now[0] += 31.0

    def changed() -> None:
        now[0] += 31.0
        snapshot.invalidate(account)

    report("in memory", await timed(rounds * 10, young, lambda: snapshot.account(account)))
    loads = snapshot.loads
    report("confirmed", await timed(rounds, quiet, lambda: snapshot.account(account)))
    assert snapshot.loads == loads, "a confirmed round read the account whole"
    report("read whole", await timed(rounds, changed, lambda: snapshot.account(account)))
    report("numbers", await timed(rounds, quiet, lambda: snapshot.number(["+7"])))


if __name__ == "__main__":
    run_on_databases(
        __doc__, bench, lambda parser: parser.add_argument("--rounds", type=int, default=300)
    )
