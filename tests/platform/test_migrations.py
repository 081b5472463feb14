"""Migrations upgrade from empty to exactly the models' schema, and downgrade back to empty."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

import zvonar.models  # noqa: F401  (every table on Base.metadata)
from zvonar.store import migrate
from zvonar.store.base import Base
from zvonar.store.db import make_engine


def _sync(url: str, fn: Any) -> Any:
    async def go() -> Any:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _wipe(conn: Connection) -> None:
    Base.metadata.drop_all(conn)
    conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


def test_upgrade_matches_models_and_downgrade_empties(database_url: str) -> None:
    _sync(database_url, _wipe)
    migrate.upgrade(database_url)
    assert _sync(database_url, _tables) >= set(Base.metadata.tables)
    assert _sync(database_url, _diff) == []
    migrate.downgrade(database_url, "base")
    assert _sync(database_url, _tables) - {"alembic_version"} == set()
    migrate.upgrade(database_url)  # and up again: downgrade left nothing behind that blocks it
    assert _sync(database_url, _diff) == []
    _sync(database_url, _wipe)
