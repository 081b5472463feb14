"""The composition root: the only place that wires slices together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from zvonar import __version__
from zvonar.accounts.router import router as accounts_router
from zvonar.accounts.service import AccountService
from zvonar.api import errors
from zvonar.api.limits import BodySizeLimit
from zvonar.container import Container
from zvonar.core.bus import EventBus, InProcessBus
from zvonar.directory.router import router as directory_router
from zvonar.directory.service import DirectoryService
from zvonar.settings import Settings
from zvonar.store.db import Database
from zvonar.web.routes import install as install_web


def create_container(settings: Settings, *, bus: EventBus | None = None) -> Container:
    bus = bus or InProcessBus()
    db = Database(settings.effective_database_url, bus, echo=settings.log_sql)
    return Container(
        settings=settings,
        bus=bus,
        db=db,
        accounts=AccountService(db),
        directory=DirectoryService(db),
    )


def create_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await container.db.dispose()

    app = FastAPI(
        title="Zvonar",
        version=__version__,
        summary="Business telephony, contact center, call tracking and omnichannel inbox.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.container = container
    errors.install(app)
    app.include_router(accounts_router, prefix="/api/v1")
    app.include_router(directory_router, prefix="/api/v1")
    install_web(app, container)
    app.add_middleware(BodySizeLimit, max_bytes=container.settings.max_body_bytes)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
