"""Contacts fixtures: the container's contact service and an API client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from zvonar.app import create_app
from zvonar.contacts.service import ContactService
from zvonar.container import Container


@pytest.fixture
async def contacts(container: Container) -> AsyncIterator[ContactService]:
    yield container.contacts
    # An import's background read of the caller index must not outlive the database.
    await container.contacts.index.aclose()


@pytest.fixture
async def api(container: Container, contacts: ContactService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
