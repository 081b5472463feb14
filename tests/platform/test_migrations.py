"""Migrations upgrade from empty to exactly the models' schema, and downgrade back to empty."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

import zvonar.models  # noqa: F401  (every table on Base.metadata)
from zvonar.accounts.models import Account, Role, User
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


def test_migrations_that_rebuild_a_table_keep_every_row(database_url: str) -> None:
    """SQLite alters ``accounts`` by rebuilding it (0016, 0018): with rows that reference an
    account it once failed with "FOREIGN KEY constraint failed" half way, leaving
    ``_alembic_tmp_accounts`` behind so that every later try failed too. Down past those
    migrations and up again, with an account and its user in the database."""
    _sync(database_url, _wipe)
    migrate.upgrade(database_url)

    def seed(conn: Connection) -> None:
        with Session(conn) as s:
            account = Account(name="Kept", slug="kept")
            s.add(account)
            s.flush()
            s.add(User(account_id=account.id, email="a@kept.example", name="A", role=Role.admin))
            s.commit()

    def rows(conn: Connection) -> tuple[Any, ...]:
        users = conn.execute(text("SELECT email FROM users")).scalars().all()
        accounts = conn.execute(text("SELECT slug FROM accounts")).scalars().all()
        return tuple(accounts), tuple(users)

    _sync(database_url, seed)
    migrate.downgrade(database_url, "0015")
    assert _sync(database_url, rows) == (("kept",), ("a@kept.example",))
    if database_url.startswith("sqlite"):  # what a failed rebuild of an older release left
        _sync(database_url, lambda c: c.execute(text("CREATE TABLE _alembic_tmp_accounts (x)")))
    migrate.upgrade(database_url)
    assert _sync(database_url, rows) == (("kept",), ("a@kept.example",))
    assert _sync(database_url, _diff) == []
    assert "_alembic_tmp_accounts" not in _sync(database_url, _tables)
    if database_url.startswith("sqlite"):  # the application's connections still enforce them
        fk = _sync(database_url, lambda c: c.execute(text("PRAGMA foreign_keys")).scalar())
        assert fk == 1
    _sync(database_url, _wipe)
