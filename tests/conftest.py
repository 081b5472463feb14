"""Shared fixtures: a database on SQLite and (when configured) PostgreSQL, the app, API clients.

Storage tests take the ``database_url`` fixture, which runs them once per backend. The PostgreSQL
run needs ``ZVONAR_TEST_DATABASE_URL`` (CI sets it); without it that half skips, saying why.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

import zvonar.models  # noqa: F401  (every slice's tables on Base.metadata)
from tests.support.rtpengine import rtpengine_daemon  # noqa: F401  (a session-wide fixture)
from tests.support.workers import worker_database_url
from zvonar.accounts import passwords
from zvonar.accounts.models import Role
from zvonar.app import create_app, create_container
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.settings import Settings
from zvonar.store.base import Base

PG_URL = os.environ.get("ZVONAR_TEST_DATABASE_URL")

# Real argon2id, at a cost that keeps hundreds of sign-ups in the suite fast.
passwords.set_cost(time_cost=1, memory_cost=8192)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL URL this test process owns: under xdist a database of its own beside
    the configured one (created here when missing), since every test drops all tables."""
    if not PG_URL:
        pytest.skip("PostgreSQL run needs ZVONAR_TEST_DATABASE_URL (CI sets it)")
    url = worker_database_url(PG_URL)
    if url != PG_URL:
        asyncio.run(_create_database(PG_URL, str(make_url(url).database)))
    return url


async def _create_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key-not-for-production",
    )


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    c = create_container(settings, bus=RecordingBus())
    async with c.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    yield c
    # The journal writes behind: its last batch must land before the database goes, else its
    # SQLite thread may finish a statement after this test's loop closed.
    await c.aclose()


@pytest.fixture
def bus(container: Container) -> RecordingBus:
    assert isinstance(container.bus, RecordingBus)
    return container.bus


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Tenant:
    account_id: uuid.UUID
    admin_email: str
    admin_password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_tenant(container: Container, slug: str, role: Role = Role.admin) -> Tenant:
    account = await container.accounts.create_account(f"Account {slug}", slug)
    email = f"admin@{slug}.example"
    password = "correct horse battery"
    user = await container.accounts.create_user(
        account.id, email=email, name="Admin", role=Role.admin, password=password
    )
    issued = await container.accounts.create_token(
        account.id, name="tests", role=role, created_by=user.id
    )
    return Tenant(account.id, email, password, issued.secret)


@pytest.fixture
async def tenant_a(container: Container) -> Tenant:
    return await make_tenant(container, "alpha")


@pytest.fixture
async def tenant_b(container: Container) -> Tenant:
    return await make_tenant(container, "bravo")
