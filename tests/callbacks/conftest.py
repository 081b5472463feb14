"""An API client over the shared ``container`` fixture (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from zvonar.app import create_app
from zvonar.callbacks.service import CallbackService
from zvonar.container import Container


@pytest.fixture
def callbacks(container: Container) -> CallbackService:
    return container.callbacks


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
