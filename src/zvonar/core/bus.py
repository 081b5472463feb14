"""The events bus: one interface, an in-process default; Redis/NATS adapters come with scale-out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from zvonar.core.events import Event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def subscribe(self, event_type: type[Event], handler: Handler) -> Callable[[], None]:
        """Register ``handler`` for ``event_type`` and its subclasses; returns an unsubscribe."""
        ...


class InProcessBus:
    """Delivers events to subscribers in this process, in publish order.

    A failing handler is logged and isolated: one broken consumer (a webhook, a mailer) must never
    stop the others or the publisher, so nothing upstream (a call, its journal row) is lost.
    """

    def __init__(self) -> None:
        self._handlers: list[tuple[type[Event], Handler]] = []
        # The handlers of each concrete event class, in subscription order: a call publishes
        # several events per call to a few dozen subscriptions, and testing every one with
        # isinstance on every publish was a measurable share of the B2BUA's CPU. Rebuilt
        # lazily after any (un)subscription.
        self._by_type: dict[type[Event], tuple[Handler, ...]] = {}
        self.published: int = 0

    def _handlers_for(self, kind: type[Event]) -> tuple[Handler, ...]:
        found = tuple(h for t, h in self._handlers if issubclass(kind, t))
        self._by_type[kind] = found
        return found

    async def publish(self, event: Event) -> None:
        self.published += 1
        kind = type(event)
        handlers = self._by_type.get(kind)
        if handlers is None:
            handlers = self._handlers_for(kind)
        for handler in handlers:
            try:
                await handler(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event handler %r failed on %s", handler, event.event_type)

    def subscribe(self, event_type: type[Event], handler: Handler) -> Callable[[], None]:
        entry = (event_type, handler)
        self._handlers.append(entry)
        self._by_type.clear()

        def unsubscribe() -> None:
            if entry in self._handlers:
                self._handlers.remove(entry)
                self._by_type.clear()

        return unsubscribe


class RecordingBus(InProcessBus):
    """An in-process bus that also keeps every event: the twin tests assert against."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)
        await super().publish(event)

    def of_type(self, event_type: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, event_type)]
