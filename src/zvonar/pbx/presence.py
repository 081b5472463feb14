"""How the ring strategies see an account's employees: free, busy, in do not disturb or
unreachable, with the history "least recent" and "fewest calls" rank by."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, time
from zoneinfo import ZoneInfo

from zvonar.pbx.reach import Bindings
from zvonar.pbx.snapshot import Person
from zvonar.routing.strategies import MemberState, Presence

_NO_HISTORY = MemberState("")


class StaffPresence(Mapping[str, MemberState]):
    """The account's employees as the strategies see them (``employee:<ext>`` keys), each
    worked out when the interpreter first asks: a call rings a few of hundreds of staff."""

    def __init__(
        self,
        staff: Mapping[str, Person],
        history: Mapping[uuid.UUID, MemberState],
        bindings: Bindings,
        realm: str,
        busy: Callable[[Person], bool] = lambda _p: False,
    ) -> None:
        self._staff, self._history, self._bindings, self._realm = staff, history, bindings, realm
        self._busy = busy
        self._seen: dict[str, MemberState] = {}

    def __getitem__(self, key: str) -> MemberState:
        state = self._seen.get(key)
        if state is None:
            kind, _, ext = key.partition(":")
            person = self._staff.get(ext) if kind == "employee" else None
            if person is None:
                raise KeyError(key)
            # A mobile they chose to be rung on reaches them without a registered device.
            live = bool(person.mobiles) or bool(
                self._bindings(f"sip:{person.sip_username}@{self._realm}")
            )
            presence = Presence.available if live else Presence.unregistered
            if person.dnd:
                presence = Presence.dnd
            elif live and self._busy(person):
                presence = Presence.busy  # on a call: a strategy rings someone free first
            state = self._seen[key] = replace(
                self._history.get(person.id, _NO_HISTORY), key=key, presence=presence
            )
        return state

    def __iter__(self) -> Iterator[str]:
        return (f"employee:{ext}" for ext in self._staff)

    def __len__(self) -> int:
        return len(self._staff)


def midnight(now: datetime, time_zone: str) -> datetime:
    """The start of ``now``'s day on the account's clock ("fewest calls" counts since then)."""
    try:
        tz = ZoneInfo(time_zone)
    except (ValueError, LookupError):  # validated on write; a bad zone must not drop calls
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(), tz)
