"""Contacts fixtures: the container's contact service and an API client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from zvonar.app import create_app
from zvonar.contacts.service import ContactService
from zvonar.container import Container


@pytest.fixture
def contacts(container: Container) -> ContactService:
    return container.contacts


@pytest.fixture
async def api(container: Container, contacts: ContactService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
