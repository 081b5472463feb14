"""Indexes of the agents free to take one queue tier's calls, one per strategy.

The dispatcher adds an agent when they become free for the tier and discards them when they are
reserved or leave; a pick never scans every agent:

* :class:`OrderedPool` — a sorted list of the agents' positions in the queue. ``in_turn`` (and
  ``all_at_once`` waves) start from the top; ``round_robin`` remembers the last agent picked and
  bisects to the next position after it, wrapping around.
* :class:`HeapPool` — a heap on a key that cannot change while the agent is free (last call end
  for ``least_recent``; calls taken, then last call end, for ``fewest_calls``). Discards are
  lazy: an entry is live only while its stamp matches the agent's current one.
* :class:`RandomPool` — a list with swap-remove for O(1) discards and a seeded ``random.Random``.

``exclude`` is the caller's set of agents who already let this call ring out; it is small, so
skipping over it stays cheap.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from zvonar.acd.agents import Agent, AgentId
from zvonar.acd.queue import Strategy

SortKey = tuple[float, ...]


class Pool(Protocol):
    def __len__(self) -> int: ...
    def __contains__(self, agent: object) -> bool: ...
    def add(self, agent: AgentId) -> None: ...
    def discard(self, agent: AgentId) -> None: ...
    def pick(self, exclude: Collection[AgentId]) -> AgentId | None: ...
    def wave(self, exclude: Collection[AgentId]) -> list[AgentId]: ...
    def picked(self, agent: AgentId) -> None: ...


class OrderedPool:
    def __init__(self, positions: Mapping[AgentId, int], *, rotate: bool) -> None:
        self._positions = positions
        self._rotate = rotate
        self._sorted: list[int] = []
        self._at: dict[int, AgentId] = {}
        self._last = -1

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, agent: object) -> bool:
        pos = self._positions.get(agent)  # type: ignore[call-overload]
        return pos is not None and pos in self._at

    def add(self, agent: AgentId) -> None:
        pos = self._positions[agent]
        if pos not in self._at:
            self._at[pos] = agent
            insort(self._sorted, pos)

    def discard(self, agent: AgentId) -> None:
        pos = self._positions[agent]
        if self._at.pop(pos, None) is not None:
            del self._sorted[bisect_left(self._sorted, pos)]

    def pick(self, exclude: Collection[AgentId]) -> AgentId | None:
        s = self._sorted
        if not s:
            return None
        start = bisect_right(s, self._last) if self._rotate else 0
        n = len(s)
        for k in range(n):
            agent = self._at[s[(start + k) % n]]
            if agent not in exclude:
                return agent
        return None

    def wave(self, exclude: Collection[AgentId]) -> list[AgentId]:
        return [a for a in (self._at[p] for p in self._sorted) if a not in exclude]

    def picked(self, agent: AgentId) -> None:
        self._last = self._positions[agent]


class HeapPool:
    def __init__(self, positions: Mapping[AgentId, int], key: Callable[[AgentId], SortKey]) -> None:
        self._positions = positions
        self._key = key
        self._heap: list[tuple[SortKey, int, int, AgentId]] = []
        self._stamp: dict[AgentId, int] = {}  # members only
        self._next_stamp = 0

    def __len__(self) -> int:
        return len(self._stamp)

    def __contains__(self, agent: object) -> bool:
        return agent in self._stamp

    def add(self, agent: AgentId) -> None:
        if agent in self._stamp:
            return
        self._next_stamp += 1
        self._stamp[agent] = self._next_stamp
        entry = (self._key(agent), self._positions[agent], self._next_stamp, agent)
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 4 * len(self._stamp) + 64:
            self._compact()

    def discard(self, agent: AgentId) -> None:
        self._stamp.pop(agent, None)

    def _live(self, entry: tuple[SortKey, int, int, AgentId]) -> bool:
        return self._stamp.get(entry[3]) == entry[2]

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._live(e)]
        heapq.heapify(self._heap)

    def pick(self, exclude: Collection[AgentId]) -> AgentId | None:
        heap = self._heap
        aside: list[tuple[SortKey, int, int, AgentId]] = []
        found: AgentId | None = None
        while heap:
            top = heap[0]
            if not self._live(top):
                heapq.heappop(heap)
                continue
            if top[3] not in exclude:
                found = top[3]
                break
            aside.append(heapq.heappop(heap))
        for entry in aside:
            heapq.heappush(heap, entry)
        return found

    def wave(self, exclude: Collection[AgentId]) -> list[AgentId]:
        members = [a for a in self._stamp if a not in exclude]
        return sorted(members, key=self._positions.__getitem__)

    def picked(self, agent: AgentId) -> None:
        return None


class RandomPool:
    def __init__(self, positions: Mapping[AgentId, int], rng: random.Random) -> None:
        self._positions = positions
        self._rng = rng
        self._items: list[AgentId] = []
        self._index: dict[AgentId, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, agent: object) -> bool:
        return agent in self._index

    def add(self, agent: AgentId) -> None:
        if agent not in self._index:
            self._index[agent] = len(self._items)
            self._items.append(agent)

    def discard(self, agent: AgentId) -> None:
        i = self._index.pop(agent, None)
        if i is None:
            return
        last = self._items.pop()
        if last != agent:
            self._items[i] = last
            self._index[last] = i

    def pick(self, exclude: Collection[AgentId]) -> AgentId | None:
        items = self._items
        if not items:
            return None
        if not exclude:
            return items[self._rng.randrange(len(items))]
        for _ in range(4):
            agent = items[self._rng.randrange(len(items))]
            if agent not in exclude:
                return agent
        rest = [a for a in items if a not in exclude]
        return rest[self._rng.randrange(len(rest))] if rest else None

    def wave(self, exclude: Collection[AgentId]) -> list[AgentId]:
        return sorted((a for a in self._items if a not in exclude), key=self._positions.__getitem__)

    def picked(self, agent: AgentId) -> None:
        return None


def pool_for(
    strategy: Strategy,
    positions: dict[AgentId, int],
    agents: Mapping[AgentId, Agent],
    rng: random.Random,
) -> Pool:
    """The pool that orders a queue tier's free agents the way ``strategy`` picks them
    (``agents``: the live agents, read when the pool compares them)."""
    if strategy is Strategy.round_robin:
        return OrderedPool(positions, rotate=True)
    if strategy is Strategy.least_recent:

        def recent(a: AgentId) -> SortKey:
            return (agents[a].last_call_end,)

        return HeapPool(positions, recent)
    if strategy is Strategy.fewest_calls:

        def fewest(a: AgentId) -> SortKey:
            return (float(agents[a].calls_taken), agents[a].last_call_end)

        return HeapPool(positions, fewest)
    if strategy is Strategy.random:
        return RandomPool(positions, rng)
    return OrderedPool(positions, rotate=False)  # in_turn, all_at_once
