"""The database handle and the unit of work services write through.

A :class:`UnitOfWork` is one transaction. Services queue events on it with :meth:`UnitOfWork.emit`;
they are published on the bus only after the commit succeeds (DESIGN.md, style rule 8). Hooks
given to :meth:`Database.before_commit` see a unit of work's events inside its transaction and
may write in it: a write and what it implies for other processes (the account's routing version,
routing/version.py) commit together or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.store.sealed import Sealer

T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite") and ":memory:" in url:
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    elif not url.startswith("sqlite"):
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class UnitOfWork:
    def __init__(
        self, session: AsyncSession, sealer: Callable[[], Sealer | None] | None = None
    ) -> None:
        self.session = session
        self._events: list[Event] = []
        self._sealer = sealer

    @property
    def sealer(self) -> Sealer | None:
        """What seals secrets kept at rest (store/sealed.py); None: an installation without a
        secret key (bare test databases), which keeps them as given."""
        return self._sealer() if self._sealer is not None else None

    def emit(self, event: Event) -> None:
        self._events.append(event)

    @property
    def events(self) -> tuple[Event, ...]:
        """What this unit of work has emitted so far (published after commit)."""
        return tuple(self._events)


# Runs inside the transaction, after the unit of work's body, before the commit.
CommitHook = Callable[[UnitOfWork], Awaitable[None]]


class Database:
    def __init__(
        self,
        url: str,
        bus: EventBus,
        *,
        echo: bool = False,
        secret: Callable[[], str] | None = None,
    ) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self.bus = bus
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._secret = secret  # asked once, when a secret is first sealed or opened
        self._sealer: Sealer | None = None
        self._before_commit: list[CommitHook] = []

    def before_commit(self, hook: CommitHook) -> None:
        """Run ``hook`` at the end of every unit of work that completes (not on an error or a
        dry run, which roll back), in its transaction."""
        self._before_commit.append(hook)

    @property
    def sealer(self) -> Sealer | None:
        if self._sealer is None and self._secret is not None:
            self._sealer = Sealer(self._secret())
        return self._sealer

    @property
    def sync_engine(self) -> Engine:
        return self.engine.sync_engine

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """One transaction; events emitted inside are published only after commit."""
        async with self._sessions() as session:
            uow = UnitOfWork(session, lambda: self.sealer)
            async with session.begin():
                yield uow
                for hook in self._before_commit:
                    await hook(uow)
        for ev in uow._events:
            await self.bus.publish(ev)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; nothing written through it is committed."""
        async with self._sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


class _DryRun(Exception):
    """Raised inside the unit of work to end a dry run without committing or publishing."""


async def dry_runnable(
    db: Database, fn: Callable[[UnitOfWork], Awaitable[T]], *, dry_run: bool
) -> T:
    """``fn`` in one unit of work, committed — or, on a dry run, rolled back with nothing
    published; either way ``fn``'s result (a dry run reports what it would have done)."""
    try:
        async with db.unit_of_work() as uow:
            result = await fn(uow)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return result
