"""The live ACD feed for supervisors' screens, as Server-Sent Events.

Each client gets its own bus subscription filtered to its account, with a bounded backlog: a
client too slow to read loses the *oldest* events (the newest state matters most) and is told
how many with a ``dropped`` event, so it can fetch ``GET /acd/live`` again. A comment line goes
out when nothing happened for ``heartbeat`` seconds, so proxies keep the connection open and a
dead client is noticed on the next write.

The contract the UI relies on: a snapshot (``GET /acd/live``) taken after the stream opened, plus
the events after it, equals a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import datetime
from typing import Any

from zvonar.acd.events import AgentAlerted, AgentStatusChanged, QueueCallerChanged
from zvonar.calls.events import CallAnswered, CallEnded, CallStarted, CallTransferred
from zvonar.core.bus import EventBus
from zvonar.core.events import Event

__all__ = [
    "ACD_EVENTS",
    "BACKLOG",
    "CALL_EVENTS",
    "HEARTBEAT",
    "Feed",
    "encode",
    "frame",
    "stream",
]

ACD_EVENTS: tuple[type[Event], ...] = (AgentStatusChanged, AgentAlerted, QueueCallerChanged)
# CallTransferred: a transfer, or a park (``to.kind`` "park": the parking lot changed).
CALL_EVENTS: tuple[type[Event], ...] = (CallStarted, CallAnswered, CallTransferred, CallEnded)
HEARTBEAT = 15.0
BACKLOG = 500
RETRY_MS = 3000


class Feed:
    """One client's subscription to its account's live events (drop-oldest when full)."""

    def __init__(
        self,
        bus: EventBus,
        account_id: uuid.UUID,
        kinds: tuple[type[Event], ...] = ACD_EVENTS + CALL_EVENTS,
        *,
        backlog: int = BACKLOG,
    ) -> None:
        self.account_id = account_id
        self.dropped = 0
        self._items: deque[Event] = deque(maxlen=backlog)
        self._wake = asyncio.Event()
        self._offs: list[Callable[[], None]] = [bus.subscribe(k, self._on) for k in kinds]

    async def _on(self, event: Event) -> None:
        # Runs inside the publisher's await: never block, never raise.
        if event.account_id != self.account_id:
            return
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(event)
        self._wake.set()

    async def next(self, wait: float) -> tuple[list[Event], int]:
        """Events so far and how many were dropped since the last call; empty after ``wait``."""
        if not self._items:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
        self._wake.clear()
        events = list(self._items)
        self._items.clear()
        dropped, self.dropped = self.dropped, 0
        return events, dropped

    def close(self) -> None:
        for off in self._offs:
            off()
        self._offs = []


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def frame(name: str, data: Mapping[str, Any], event_id: str | None = None) -> str:
    """One SSE message; the data is one JSON line (JSON never holds a raw newline)."""
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {name}\ndata: {body}\n\n"


def encode(event: Event) -> str:
    data = _plain(event)
    data.pop("account_id", None)
    data.pop("event_id", None)
    return frame(event.event_type, data, str(event.event_id))


async def stream(
    open_feed: Callable[[], Feed], *, heartbeat: float = HEARTBEAT
) -> AsyncGenerator[str, None]:
    """The response body. The subscription opens with the body (a response never sent never
    subscribes) and closes with it (the client went away)."""
    feed = open_feed()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while True:
            events, dropped = await feed.next(heartbeat)
            if dropped:
                yield frame("dropped", {"dropped": dropped})
            for event in events:
                yield encode(event)
            if not events and not dropped:
                yield ": ping\n\n"
    finally:
        feed.close()
