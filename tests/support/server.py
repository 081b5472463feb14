"""Run the real app under uvicorn on a free loopback port, in a thread, for black-box tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from tests.sip.peers.harness import free_port as peer_port
from zvonar.accounts.models import Role
from zvonar.app import create_app, create_container
from zvonar.pbx.config import PbxConfig
from zvonar.settings import Settings
from zvonar.store.base import Base


def free_port(host: str = "127.0.0.1") -> int:
    """A free port below the ephemeral range (tests/sip/peers/harness.py says why)."""
    return peer_port(host)


async def seed(settings: Settings, slug: str, password: str) -> tuple[str, str]:
    """Create tables and one account with an admin; returns (admin email, admin API token)."""
    c = create_container(settings)
    try:
        async with c.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        account = await c.accounts.create_account(f"Account {slug}", slug)
        email = f"admin@{slug}.example"
        user = await c.accounts.create_user(
            account.id, email=email, name="Ada Admin", role=Role.admin, password=password
        )
        issued = await c.accounts.create_token(
            account.id, name="tests", role=Role.admin, created_by=user.id
        )
        return email, issued.secret
    finally:
        await c.db.dispose()


@contextmanager
def running_server(settings: Settings, pbx: PbxConfig | None = None) -> Iterator[str]:
    """Serve ``settings``' database (and a PBX with ``pbx``); yields the base URL and stops
    the server afterwards."""
    port = free_port()
    app = create_app(create_container(settings), pbx=pbx)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sqlite_settings(tmp: Path) -> Settings:
    return Settings(
        data_dir=tmp / "data",
        database_url=f"sqlite+aiosqlite:///{tmp / 'srv.sqlite3'}",
        secret_key="test-secret-key-not-for-production",  # type: ignore[arg-type]
    )
