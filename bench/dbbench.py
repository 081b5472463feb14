"""What the database benches share: a fresh container on SQLite, then on PostgreSQL.

Not a bench itself (``make bench`` runs ``bench_*.py``); the benches import it as a sibling.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import zvonar.models  # noqa: F401  (every slice's tables on Base.metadata)
from zvonar.app import create_container
from zvonar.container import Container
from zvonar.settings import Settings
from zvonar.store.base import Base


@asynccontextmanager
async def fresh_container(name: str, url: str, tmp: Path) -> AsyncIterator[Container]:
    """A container on ``url`` with every table dropped and created again."""
    settings = Settings(data_dir=tmp / name, database_url=url, secret_key="bench-key")
    c = create_container(settings)
    async with c.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield c
    finally:
        await c.aclose()


def run_on_databases(
    doc: str,
    bench: Callable[[Container, argparse.Namespace], Awaitable[None]],
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None,
) -> None:
    """Parse ``--pg`` and the bench's own arguments; run ``bench`` on a temporary SQLite
    file and, with ``--pg``, on PostgreSQL (its tables are dropped and created)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--pg", help="a PostgreSQL URL (postgresql+asyncpg://…) to run on too")
    add_arguments(parser)
    args = parser.parse_args()

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            databases = [("SQLite", f"sqlite+aiosqlite:///{base / 'bench.sqlite3'}")]
            if args.pg:
                databases.append(("PostgreSQL", args.pg))
            for name, url in databases:
                async with fresh_container(name, url, base) as c:
                    print(f"{name}:")
                    await bench(c, args)

    asyncio.run(main())
