from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from tests.media.engine.phone import close_all_phones
from zvonar.media.engine import MediaEngine, MediaEvent
from zvonar.media.io import EmbeddedMediaEngine

E = TypeVar("E")


class Events:
    """Collects an engine's events; ``wait_for`` returns the first matching one."""

    def __init__(self, engine: MediaEngine) -> None:
        self.items: list[MediaEvent] = []
        self._changed = asyncio.Event()
        engine.subscribe(self._on_event)

    def _on_event(self, event: MediaEvent) -> None:
        self.items.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.items if isinstance(e, kind)]

    async def wait_for(
        self, kind: type[E], within: float = 3.0, where: Callable[[E], bool] = lambda e: True
    ) -> E:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for event in self.items:
                if isinstance(event, kind) and where(event):
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} within {within} s: {self.items}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


@pytest.fixture(autouse=True)
async def _close_phones() -> AsyncIterator[None]:
    yield
    close_all_phones()


@pytest.fixture
async def engine() -> AsyncIterator[EmbeddedMediaEngine]:
    eng = EmbeddedMediaEngine(media_timeout=0)
    await eng.start()
    yield eng
    await eng.close()


@pytest.fixture
def events(engine: EmbeddedMediaEngine) -> Events:
    return Events(engine)
