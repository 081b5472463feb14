"""An API client whose app serves the callbacks router (until app.py wires it) over the
shared ``container`` fixture (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

import zvonar.callbacks.models  # noqa: F401  (the table on Base.metadata before create_all)
from zvonar.app import create_app
from zvonar.callbacks.router import router
from zvonar.callbacks.service import CallbackService
from zvonar.container import Container


def with_callbacks(container: Container) -> CallbackService:
    """The container's callback service, set here if the container does not have one yet."""
    svc = getattr(container, "callbacks", None)
    if svc is None:
        svc = CallbackService(container.db)
        container.callbacks = svc  # type: ignore[attr-defined]
    assert isinstance(svc, CallbackService)
    return svc


@pytest.fixture
def callbacks(container: Container) -> CallbackService:
    return with_callbacks(container)


@pytest.fixture
async def api(container: Container, callbacks: CallbackService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)
    if not any(getattr(r, "path", "").endswith("/callback-requests") for r in app.routes):
        app.include_router(router, prefix="/api/v1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
