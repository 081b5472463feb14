"""Cached values that age: served while young, then confirmed or read again.

The freshness rules of the resolver's read model (``pbx/snapshot.py``), apart from what it
reads. A :class:`Slot` holds one value; :meth:`Freshness.get` serves it:

- while it is younger than ``max_age`` since it was last known current, from memory. Past
  ``max_age * REFRESH_AHEAD`` the same read also starts one background confirmation (or
  reload), so a value read at least that often never has a caller wait for the database;
- once older, the caller waits: ``current(value)`` may confirm it (one cheap read, e.g. a
  version), else ``read()`` reads it whole. One caller reads; the others wait on the slot's
  lock and take its result;
- every value is read whole in the background once it was read whole ``full_age`` ago, since a
  confirmation only sees what bumps the version.

:meth:`Slot.drop` forgets the value and bumps its generation: a read or confirmation that was
under way when the value was dropped is not installed, so a stale read never wins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["REFRESH_AHEAD", "Check", "Freshness", "Slot"]

log = logging.getLogger(__name__)

T = TypeVar("T")
# Whether a cached value is still what the database holds (without reading it whole).
Check = Callable[[Any], Awaitable[bool]]
# A value read past this share of max_age is confirmed (or reloaded) in the background.
REFRESH_AHEAD = 0.5
_MAX_LOAD_ATTEMPTS = 5


@dataclass
class Slot:
    """A cached value, when it was read whole and last known current, and a generation that
    :meth:`drop` bumps."""

    value: Any = None
    loaded_at: float | None = None  # read whole
    expires: float = 0.0  # last known current + max_age: served until then
    due: float = 0.0  # when to confirm or reload it in the background
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    refresh: asyncio.Task[None] | None = None  # the background reload running, if any

    def drop(self) -> None:
        self.generation += 1
        self.value, self.loaded_at, self.expires = None, None, 0.0


class Freshness:
    """The rules above for any number of slots, with counters of the work they did."""

    def __init__(
        self,
        name: str,
        *,
        max_age: float,
        full_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name  # for the log
        self.max_age = max_age
        self.full_age = full_age
        self.clock = clock
        self.loads = 0  # whole reads done (observability, tests)
        self.checks = 0  # values confirmed (or not) instead
        self.refreshes = 0  # background confirmations or reloads, ahead of max_age

    async def get(
        self, slot: Slot, read: Callable[[], Awaitable[T]], current: Check | None = None
    ) -> T:
        """The slot's value: served while known current; else confirmed by ``current`` (is
        this value still what the database holds?) or read again by ``read``."""
        now = self.clock()
        if now < slot.expires:
            if now >= slot.due and slot.refresh is None:
                self._refresh_ahead(slot, read, current)
            value: T = slot.value
            return value
        async with slot.lock:  # one load at a time; callers that waited take its result
            for _ in range(_MAX_LOAD_ATTEMPTS):
                if self.clock() < slot.expires:
                    value = slot.value
                    return value
                if await self._confirm(slot, current):
                    if self.clock() >= slot.due and slot.refresh is None:
                        self._refresh_ahead(slot, read, current)  # past full_age
                    value = slot.value
                    return value
                value, installed = await self._read_into(slot, read)
                if installed:
                    return value
            # Writes keep racing the load: serve this read without caching it.
            return value

    def _stamp(self, slot: Slot, *, loaded: bool) -> None:
        """The slot's value is current now (``loaded``: read whole now)."""
        now = self.clock()
        if loaded or slot.loaded_at is None:
            slot.loaded_at = now
        slot.expires = now + self.max_age
        slot.due = min(now + self.max_age * REFRESH_AHEAD, slot.loaded_at + self.full_age)

    async def _confirm(self, slot: Slot, current: Check | None) -> bool:
        """Whether ``current`` confirms the slot's value (then it is stamped current), unless an
        event dropped the slot meanwhile."""
        if current is None or slot.loaded_at is None:
            return False
        generation = slot.generation
        confirmed = await current(slot.value)
        self.checks += 1
        if not confirmed or slot.generation != generation:
            return False
        self._stamp(slot, loaded=False)
        return True

    async def _read_into(self, slot: Slot, read: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """One read (under ``slot.lock``), installed unless the slot was dropped meanwhile
        (its generation moved): then a stale read must not win. Returns the value read and
        whether it was installed."""
        generation = slot.generation
        value = await read()
        self.loads += 1
        if slot.generation != generation:
            return value, False
        slot.value = value
        self._stamp(slot, loaded=True)
        return value, True

    def _refresh_ahead(
        self, slot: Slot, read: Callable[[], Awaitable[Any]], current: Check | None
    ) -> None:
        # slot.refresh holds the task until it ends (the owner's detach cancels it there).
        slot.refresh = asyncio.get_running_loop().create_task(self._reload(slot, read, current))

    async def _reload(
        self, slot: Slot, read: Callable[[], Awaitable[Any]], current: Check | None
    ) -> None:
        try:
            async with slot.lock:
                loaded_at = slot.loaded_at
                if loaded_at is None or self.clock() < slot.due:
                    return  # dropped (the next caller loads it), or a load just ran
                whole = self.clock() - loaded_at >= self.full_age
                if whole or not await self._confirm(slot, current):
                    await self._read_into(slot, read)
                self.refreshes += 1
        except Exception:
            # The value stays until it expires; then a caller reads on its own (and fails as
            # any read).
            log.warning("%s: background reload failed", self.name, exc_info=True)
        finally:
            slot.refresh = None
