"""Alembic environment: runs migrations over the async engine on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import zvonar.models  # noqa: F401  (registers every table on Base.metadata)
from zvonar.store.base import Base
from zvonar.store.db import make_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        if sqlite:
            # A rebuild that failed before migrations ran in one transaction left its copy
            # behind, and the next try stopped on "table _alembic_tmp_accounts already exists".
            # Such a copy means nothing outside a running rebuild: it goes.
            leftovers = connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND substr(name, 1, 13) = '_alembic_tmp_'"
            ).scalars()
            for name in list(leftovers):
                connection.exec_driver_sql(f'DROP TABLE "{name}"')
        context.run_migrations()
        if sqlite:
            # Foreign keys were off while tables were rebuilt: what the rebuild left must
            # still hold, or the whole upgrade rolls back.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


def _sqlite_for_migrations(engine: AsyncEngine) -> None:
    """SQLite alters a table by rebuilding it (Alembic's batch mode: create a copy, drop the
    original, rename). Two defaults of pysqlite make that unsafe on a database with rows:

    * with foreign keys on, dropping ``accounts`` is an implicit ``DELETE`` of every account:
      refused while anything references one, and cascading where a reference says so. They are
      off for the migration (the pragma only works outside a transaction, so at connect) and
      checked once it is done (``_run``).
    * pysqlite opens a transaction only before DML, so the ``CREATE TABLE`` of the copy
      commits at once and a failed rebuild leaves ``_alembic_tmp_<table>`` behind, blocking
      every later try. The migration runs in one explicit transaction instead (SQLAlchemy's
      recipe for transactional DDL on pysqlite/aiosqlite): all of it, or none.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:  # after make_engine's pragmas
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


async def _main(url: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        _sqlite_for_migrations(engine)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_main(url))


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run()
