"""``executemany`` without SQLAlchemy's per-row work, for write-behind batches (the journal).

``conn.execute(stmt, [row, ...])`` builds, for every row, its parameters through SQLAlchemy's
generic execution context and runs each column's bind processor from there. For the
journal's batches that per-row machinery cost more than the database itself (about a sixth
of a call's CPU in ``bench/bench_b2bua.py``). A :class:`BulkStatement` compiles its
statement once per dialect, keeps the order of its bind parameters and the columns' own bind
processors — a value is stored exactly as SQLAlchemy would store it (UUIDs, UTC datetimes,
enums, JSON) — and hands the driver plain tuples (positional dialects: SQLite, asyncpg) or
dicts (named ones) through ``exec_driver_sql``.

Column defaults and ``onupdate`` values are *not* filled in: every bind parameter the
compiled statement names must be in each row (a missing one raises ``KeyError`` at once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Delete, Insert, Update

__all__ = ["BulkStatement"]

Processor = Callable[[Any], Any]


class _Compiled:
    __slots__ = ("_convert", "keys", "names", "positional", "sql")

    def __init__(self, stmt: Insert | Update | Delete, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.positional: bool = compiled.positional
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        if names is None:  # pragma: no cover - positional compilations always have it
            raise RuntimeError("positional statement without its parameter order")
        self.names: tuple[str, ...] = tuple(names)
        # Named paramstyles key the driver's dict by the name as rendered in the SQL.
        escaped: dict[str, str] = compiled.escaped_bind_names or {}
        self.keys: tuple[str, ...] = tuple(escaped.get(n, n) for n in names)
        procs: list[Processor | None] = []
        for name in self.names:
            bind = compiled.binds[name]
            procs.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
        self._convert = tuple((i, p) for i, p in enumerate(procs) if p is not None)

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        names, keys, convert = self.names, self.keys, self._convert
        out: list[Any] = []
        for row in rows:
            values = [row[n] for n in names]
            for i, proc in convert:
                # Called for None too: a type may store None as something else (JSON 'null').
                values[i] = proc(values[i])
            out.append(tuple(values) if self.positional else dict(zip(keys, values, strict=True)))
        return out


class BulkStatement:
    """One INSERT/UPDATE/DELETE run with many rows; see the module docstring."""

    def __init__(self, stmt: Insert | Update | Delete) -> None:
        self.stmt = stmt
        self._by_dialect: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        found = self._by_dialect.get(key)
        if found is None:
            found = self._by_dialect[key] = _Compiled(self.stmt, dialect)
        return found

    async def run(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute the statement once per row of ``rows`` (nothing when empty)."""
        if not rows:
            return
        compiled = self.compiled(conn.dialect)
        await conn.exec_driver_sql(compiled.sql, compiled.params(rows))
