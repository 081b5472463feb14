"""The app container the end-to-end tests run the PBX in: SQLite under the test's workdir,
a RecordingBus (tests read the B2BUA's events from it), every table created."""

from __future__ import annotations

from pathlib import Path

from zvonar.app import create_container
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.settings import Settings
from zvonar.store.base import Base


async def sqlite_container(workdir: Path) -> Container:
    """A container on ``workdir/pbx.sqlite3`` (data dir ``workdir/data``); dispose its db."""
    settings = Settings(
        data_dir=workdir / "data",
        database_url=f"sqlite+aiosqlite:///{workdir / 'pbx.sqlite3'}",
        secret_key="test-secret-key-not-for-production",
    )
    container = create_container(settings, bus=RecordingBus())
    async with container.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return container
