"""The app container the end-to-end tests run the PBX in: SQLite under the test's workdir,
a RecordingBus (tests read the B2BUA's events from it), every table created; and the account
most drivers seed in it (``ring_account``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from zvonar.accounts.access import Principal
from zvonar.accounts.models import Role
from zvonar.app import create_container
from zvonar.container import Container
from zvonar.core.bus import RecordingBus
from zvonar.directory.schemas import EmployeeIn, NumberIn
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


async def ring_account(
    container: Container,
    slug: str,
    *,
    extensions: Sequence[str],
    password: str,
    number: str,
    steps: list[dict[str, object]],
) -> tuple[Principal, dict[str, uuid.UUID]]:
    """An account ``slug`` with an employee per extension (all with ``password``) and
    ``number``, whose scheme runs ``steps`` at any hour and then hangs up; its admin and the
    employees' ids by extension."""
    name = slug.capitalize()
    account = await container.accounts.create_account(name, slug)
    admin = Principal(account_id=account.id, role=Role.admin)
    ids = {}
    for ext in extensions:
        made = await container.directory.create_employee(
            admin, EmployeeIn(name=f"Emp {ext}", extension=ext, sip_password=password)
        )
        ids[ext] = made.view.employee.id
    scheme = await container.routing.create_scheme(
        admin, name, {"branches": {"working": steps, "off": steps}, "final": {"type": "hangup"}}
    )
    line = await container.directory.add_number(admin, NumberIn(number=number, label=name))
    await container.routing.assign(admin, line.id, scheme.id)
    return admin, ids
