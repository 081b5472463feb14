"""Contacts at scale: import time of a 100,000-row CSV and caller lookups per second.

Run: .venv/bin/python bench/bench_contacts_lookup.py [rows] [database-url]

Default database: a temporary SQLite file. The lookup is the caller rule's question ("who is
+7…?") answered from the in-memory index after its lazy first load, which is timed separately.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.app import create_container
from zvonar.contacts import models as _contacts_models  # noqa: F401  (registers the tables)
from zvonar.contacts.service import ContactService
from zvonar.settings import Settings
from zvonar.store.base import Base


def make_csv(rows: int) -> tuple[bytes, list[str]]:
    rng = random.Random(1)
    numbers = [f"+79{n:09d}" for n in rng.sample(range(10**9), rows)]
    tags = ["supplier", "partner", "vip", "supplier;vip", ""]
    lines = ["name,company,phones,tags,city,email"]
    for i, e164 in enumerate(numbers):
        lines.append(f"Contact {i},Company {i % 997},{e164},{tags[i % 5]},Москва,c{i}@example.com")
    return ("\n".join(lines) + "\n").encode(), numbers


async def run(rows: int, url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}",
            secret_key="bench-secret-key-not-for-production",
        )
        c = create_container(settings)
        async with c.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        try:
            account = await c.accounts.create_account("Bench", "bench")
            svc = ContactService(c.db)
            p = Principal(account_id=account.id, role=Role.admin)
            data, numbers = make_csv(rows)

            start = time.perf_counter()
            report = await svc.import_csv(p, data)
            took = time.perf_counter() - start
            print(
                f"import {rows} rows ({len(data) / 1e6:.1f} MB): {took:.2f} s "
                f"({rows / took:,.0f} rows/s), created={report.created}, failed={report.failed}"
            )

            start = time.perf_counter()
            await svc.lookup(account.id, numbers[0])
            print(f"index first load: {time.perf_counter() - start:.2f} s")

            rng = random.Random(2)
            probes = [rng.choice(numbers) for _ in range(100_000)]
            probes += [f"+7000{n:07d}" for n in range(100_000)]  # misses
            index = svc.index
            start = time.perf_counter()
            hits = 0
            for e164 in probes:
                if await index.lookup(account.id, e164) is not None:
                    hits += 1
            took = time.perf_counter() - start
            print(f"lookup (async, loaded): {len(probes) / took:,.0f} lookups/s, hits={hits}")
            start = time.perf_counter()
            for e164 in probes:
                index.peek(account.id, e164)
            took = time.perf_counter() - start
            print(f"peek (sync): {len(probes) / took:,.0f} lookups/s")
        finally:
            await c.db.dispose()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    url = sys.argv[2] if len(sys.argv) > 2 else None
    asyncio.run(run(rows, url))


if __name__ == "__main__":
    main()
