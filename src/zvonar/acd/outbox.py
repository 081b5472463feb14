"""What the ACD decided goes out behind the calls, never in their way: the live feed on the
bus (``zvonar.acd.events``: statuses, alerts, callers' changes) and the stored history
(status intervals, queue facts), in batches, by one task.

The runtime only queues (:meth:`AcdOutbox.publish`, :meth:`AcdOutbox.remember`: O(1), no I/O);
the task publishes and records whatever has gathered each time it wakes. A failed record
loses that batch's history, never a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from zvonar.core.bus import EventBus

__all__ = ["AcdOutbox", "Recorder"]

log = logging.getLogger(__name__)

Recorder = Callable[[uuid.UUID, list[object]], Awaitable[int]]
"""Stores one account's history events (AcdService.record); returns how many."""


class AcdOutbox:
    def __init__(self, bus: EventBus, record: Recorder | None = None) -> None:
        self.bus = bus
        self.record = record
        self._history: list[tuple[uuid.UUID, object]] = []
        self._live: list[object] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def publish(self, event: object) -> None:
        """``event`` for the bus (the live view's stream and the webhooks)."""
        self._live.append(event)
        self._wake.set()

    def remember(self, account_id: uuid.UUID, event: object) -> None:
        """``event`` for the account's stored history."""
        self._history.append((account_id, event))
        self._wake.set()

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Stop the task, then send what is still queued."""
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self.flush()

    async def _write_loop(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Publish and record everything queued so far (the task does it; tests await it)."""
        live, self._live = self._live, []
        for event in live:
            try:
                await self.bus.publish(event)  # type: ignore[arg-type]
            except Exception:
                log.exception("ACD: cannot publish %s", type(event).__name__)
        history, self._history = self._history, []
        if not history or self.record is None:
            return
        by_account: dict[uuid.UUID, list[object]] = {}
        for account_id, event in history:
            by_account.setdefault(account_id, []).append(event)
        for account_id, events in by_account.items():
            try:
                await self.record(account_id, events)
            except Exception:  # the history is lost, the calls are not
                log.exception("ACD: cannot store %d events", len(events))
