"""Who is on a call right now, for the routing strategies (``Presence.busy``).

A ring group that rings "least recent" first would otherwise pick the employee who is in
the middle of a conversation (their last *finished* call is the oldest) and make the
caller wait out a member timeout for nothing; "all at once" would beep call waiting into
their conversation. The index is kept from the neutral call events on the bus:

- ``CallAnswered`` with ``by`` — that employee talks on that leg, until its ``LegEnded``
  or the call's ``CallEnded`` (an attended transfer ends the agent's leg and answers the
  colleague's in the surviving call, so the index follows it);
- ``CallStarted`` of an outbound or internal call — the employee who dialled is busy until
  ``CallEnded``: by ``placed_by`` when the call names them (an outbound call; their SIP
  username in From need not be their extension), else by the caller as an extension.

Watchers (``watch``) hear each answered leg's start and end — the ACD's agents follow them
(acd/direct.py) from this one index rather than a second one kept from the same events.

In-process and approximate by design: it only ever makes a strategy skip someone it would
have rung while they talk; a step whose only member talks, and a call to the extension
itself, still ring them (call waiting).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from zvonar.calls.events import CallAnswered, CallEnded, CallStarted, Direction, LegEnded
from zvonar.core.bus import EventBus
from zvonar.core.events import Event

__all__ = ["Talk", "Talking"]

_PLACED = (Direction.outbound, Direction.internal)
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Talk:
    """An employee's answered leg began (``over`` False) or ended."""

    account_id: uuid.UUID
    employee_id: uuid.UUID
    call_id: str
    over: bool


class Talking:
    def __init__(self) -> None:
        self._legs: dict[tuple[str, str], tuple[uuid.UUID, uuid.UUID]] = {}  # → (acct, emp)
        self._by_employee: dict[uuid.UUID, set[tuple[str, str]]] = {}
        self._by_call: dict[str, set[tuple[str, str]]] = {}
        self._callers: dict[str, tuple[uuid.UUID, str]] = {}  # call → (account, extension)
        self._dialling: dict[tuple[uuid.UUID, str], set[str]] = {}  # → calls
        self._placers: dict[str, uuid.UUID] = {}  # call → the employee who placed it
        self._placing: dict[uuid.UUID, set[str]] = {}  # employee → the calls they placed
        self._watchers: list[Callable[[Talk], None]] = []

    def watch(self, watcher: Callable[[Talk], None]) -> None:
        self._watchers.append(watcher)

    def answered_legs(self, employee_id: uuid.UUID) -> list[tuple[str, str]]:
        """The (call, leg) pairs the employee answered and still talks on, in order."""
        return sorted(self._by_employee.get(employee_id, ()))

    def busy(self, account_id: uuid.UUID, employee_id: uuid.UUID, extension: str) -> bool:
        return (
            employee_id in self._by_employee
            or employee_id in self._placing
            or (account_id, extension) in self._dialling
        )

    def attach(self, bus: EventBus) -> Callable[[], None]:
        async def on_event(event: Event) -> None:
            self.apply(event)

        offs = [
            bus.subscribe(kind, on_event)
            for kind in (CallStarted, CallAnswered, LegEnded, CallEnded)
        ]

        def detach() -> None:
            for off in offs:
                off()

        return detach

    def apply(self, event: Event) -> None:
        if isinstance(event, CallAnswered) and event.by is not None:
            key = (event.call_id, event.leg_id)
            self._legs[key] = (event.account_id, event.by)
            self._by_employee.setdefault(event.by, set()).add(key)
            self._by_call.setdefault(event.call_id, set()).add(key)
            self._tell(Talk(event.account_id, event.by, event.call_id, over=False))
        elif isinstance(event, LegEnded):
            self._leg_over((event.call_id, event.leg_id))
        elif isinstance(event, CallStarted) and event.direction in _PLACED:
            if event.placed_by is not None:
                self._placers[event.call_id] = event.placed_by
                self._placing.setdefault(event.placed_by, set()).add(event.call_id)
            elif event.caller:
                who = (event.account_id, event.caller)
                self._callers[event.call_id] = who
                self._dialling.setdefault(who, set()).add(event.call_id)
        elif isinstance(event, CallEnded):
            for key in list(self._by_call.get(event.call_id, ())):
                self._leg_over(key)
            dialled_by = self._callers.pop(event.call_id, None)
            if dialled_by is not None:
                _drop(self._dialling, dialled_by, event.call_id)
            placer = self._placers.pop(event.call_id, None)
            if placer is not None:
                _drop(self._placing, placer, event.call_id)

    def _leg_over(self, key: tuple[str, str]) -> None:
        talker = self._legs.pop(key, None)
        if talker is None:
            return
        account_id, employee = talker
        _drop(self._by_employee, employee, key)
        _drop(self._by_call, key[0], key)
        self._tell(Talk(account_id, employee, key[0], over=True))

    def _tell(self, talk: Talk) -> None:
        for watcher in self._watchers:
            watcher(talk)


def _drop(index: dict[K, set[V]], at: K, item: V) -> None:
    items = index.get(at)
    if items is not None:
        items.discard(item)
        if not items:
            del index[at]
