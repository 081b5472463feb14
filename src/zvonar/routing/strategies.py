"""Ring-group strategies: who rings first, as a list of waves.

A *wave* is a set of targets rung together for one timeout; the interpreter moves to the next
wave when the current one is not answered. ``all_at_once`` is one wave of everybody; every other
strategy rings one target per wave, in the order it chooses. Members that are busy, not
registered or in do not disturb are skipped up front, so a caller never waits on a phone that
cannot ring.

Pure: member states, the round-robin pointer and the random generator are passed in; the new
pointer comes back in the :class:`Plan` for the caller to store.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime


class Strategy(enum.StrEnum):
    # The same names as ``zvonar.directory.models.GroupStrategy``: a group's own strategy maps 1:1.
    all_at_once = "all_at_once"
    in_turn = "in_turn"
    round_robin = "round_robin"
    least_recent = "least_recent"
    fewest_calls = "fewest_calls"
    random = "random"
    weighted_random = "weighted_random"


class Presence(enum.StrEnum):
    available = "available"
    busy = "busy"
    unregistered = "unregistered"
    dnd = "dnd"  # do not disturb: never rung, not even as a step's only member


@dataclass(frozen=True)
class MemberState:
    """One ringable target as the strategies see it. ``key`` identifies it to the caller."""

    key: str
    presence: Presence = Presence.available
    last_call_end: datetime | None = None
    calls_today: int = 0
    weight: int = 1
    # Ring this member this long in one-at-a-time strategies; None: the step's default.
    timeout: float | None = None


@dataclass(frozen=True)
class Wave:
    members: tuple[MemberState, ...]
    timeout: float


@dataclass(frozen=True)
class Plan:
    waves: tuple[Wave, ...]
    # The round-robin pointer to store for the next call (unchanged for other strategies).
    pointer: int


def _rr_order(members: Sequence[MemberState], pointer: int) -> tuple[list[MemberState], int]:
    """Start at ``pointer`` (an index into the full member list, so memory survives members
    going busy and coming back) and go round; the next call starts one further on."""
    n = len(members)
    start = pointer % n if n else 0
    rotated = [members[(start + i) % n] for i in range(n)]
    ready = [m for m in rotated if m.presence is Presence.available]
    if not ready:
        return [], pointer
    first = members.index(ready[0])
    return ready, (first + 1) % n


def _weighted_order(members: list[MemberState], rng: random.Random) -> list[MemberState]:
    # Successive weighted draws without replacement: P(first = m) = weight(m) / total weight.
    pool = list(members)
    out: list[MemberState] = []
    while pool:
        total = sum(max(m.weight, 0) for m in pool)
        if total <= 0:
            rng.shuffle(pool)
            out.extend(pool)
            break
        x = rng.random() * total
        for i, m in enumerate(pool):
            x -= max(m.weight, 0)
            if x < 0:
                out.append(pool.pop(i))
                break
        else:  # float rounding left x at 0: take the last one with weight
            out.append(pool.pop())
    return out


def plan(
    members: Sequence[MemberState],
    strategy: Strategy,
    *,
    rng: random.Random,
    ring_timeout: float,
    member_timeout: float,
    pointer: int = 0,
) -> Plan:
    """Order ``members`` into waves. ``ring_timeout`` is the all-at-once wave's timeout;
    ``member_timeout`` the default per member in one-at-a-time strategies.

    Busy members (on another call) are passed over, so a group never rings someone
    mid-conversation while it could ring someone free — except a step's one and only member:
    ringing them is call waiting, their own phone's choice (a receptionist takes a second
    caller while the first holds; a phone that refuses answers 486 and the scheme moves on)."""
    if len(members) == 1 and members[0].presence is Presence.busy:
        members = [replace(members[0], presence=Presence.available)]
    ready = [m for m in members if m.presence is Presence.available]
    new_pointer = pointer
    if strategy is Strategy.all_at_once:
        if not ready:
            return Plan((), pointer)
        return Plan((Wave(tuple(ready), ring_timeout),), pointer)
    if strategy is Strategy.in_turn:
        order = ready
    elif strategy is Strategy.round_robin:
        order, new_pointer = _rr_order(members, pointer)
    elif strategy is Strategy.least_recent:
        # Never called yet sorts first; ties keep the listed order (sorted() is stable).
        order = sorted(
            ready, key=lambda m: (m.last_call_end is not None, m.last_call_end or datetime.min)
        )
    elif strategy is Strategy.fewest_calls:
        order = sorted(ready, key=lambda m: m.calls_today)
    elif strategy is Strategy.random:
        order = list(ready)
        rng.shuffle(order)
    else:
        order = _weighted_order(ready, rng)
    waves = tuple(Wave((m,), m.timeout if m.timeout is not None else member_timeout) for m in order)
    return Plan(waves, new_pointer)
