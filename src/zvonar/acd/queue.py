"""One ACD queue: its settings and its waiting callers, in priority then arrival order.

Callers live in one *lane* per priority. A lane is a sorted list of arrival sequence numbers
with a moving start index: a new caller always has the largest sequence number, so entering is an
append; taking the head moves the start index; a caller who comes back (an offer nobody answered)
is bisected back into their old place. Position lookup is a bisect plus the sizes of the (few)
higher-priority lanes.

A caller being offered to agents leaves their lane but not the queue: if nobody answers they go
back to exactly where they were. A callback is a caller who hung up and asked to be called back;
they keep their place, are never overflowed for waiting and are offered like anybody else.

Max wait runs on a separate arrival-order deque (priority does not change *when* a caller
entered); announcements on a heap of due times. Both use lazy deletion: stale entries are
dropped when they reach the front.
"""

from __future__ import annotations

import enum
import heapq
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from zvonar.acd.agents import AgentId, CallId
from zvonar.acd.facts import FactKind, OverflowReason, QueueFact, QueueId
from zvonar.core.errors import Conflict, NotFound


class Strategy(enum.StrEnum):
    """Mirrors the ring-group strategies (DESIGN.md glossary), minus weighted random."""

    all_at_once = "all_at_once"
    in_turn = "in_turn"
    round_robin = "round_robin"
    least_recent = "least_recent"
    fewest_calls = "fewest_calls"
    random = "random"


class QueueError(Conflict):
    code = "acd_queue_state"


@dataclass(frozen=True)
class QueueConfig:
    id: QueueId
    strategy: Strategy = Strategy.round_robin
    #: agent → level (1 is offered first); the mapping's order is the agents' "in turn" order.
    tiers: Mapping[AgentId, int] = field(default_factory=dict)
    #: level → seconds the head caller must have waited before that level is offered calls.
    escalation: Mapping[int, float] = field(default_factory=dict)
    max_wait: float | None = None
    max_length: int | None = None
    respect_wrapup: bool = True
    announce_interval: float | None = None
    exit_digit: str | None = None
    callback_digit: str | None = None
    initial_handle_time: float = 180.0
    handle_time_weight: float = 0.2  # EWMA weight of the newest handle time

    def __post_init__(self) -> None:
        if any(level < 1 for level in self.tiers.values()):
            raise ValueError("tier levels start at 1")
        if any(s < 0 for s in self.escalation.values()):
            raise ValueError("escalation waits cannot be negative")
        if self.max_length is not None and self.max_length < 0:
            raise ValueError("max_length cannot be negative")
        if not 0 < self.handle_time_weight <= 1:
            raise ValueError("handle_time_weight must be in (0, 1]")

    def opens_after(self, level: int) -> float:
        """Seconds of wait after which ``level`` is eligible (level 1 always at once)."""
        return 0.0 if level <= 1 else self.escalation.get(level, 0.0)


class CallerState(enum.Enum):
    waiting = enum.auto()
    offered = enum.auto()


@dataclass(slots=True, eq=False)
class Caller:
    call_id: CallId
    priority: int
    entered_at: float
    seq: int
    is_callback: bool = False
    state: CallerState = CallerState.waiting
    tried: set[AgentId] = field(default_factory=set)
    next_announce: float | None = None


@dataclass(frozen=True, slots=True)
class Overflow:
    """Tells the orchestrator to take the call to the step's overflow branch."""

    queue_id: QueueId
    call_id: CallId
    reason: OverflowReason
    wait: float
    at: float


@dataclass(frozen=True, slots=True)
class Announce:
    """Time for a periodic announcement (position and estimated wait if known)."""

    queue_id: QueueId
    call_id: CallId
    position: int
    estimated_wait: float | None
    at: float


QueueEvent = QueueFact | Overflow | Announce


class _Lane:
    __slots__ = ("seqs", "start")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.seqs) - self.start

    def head(self) -> int | None:
        return self.seqs[self.start] if self.start < len(self.seqs) else None

    def add(self, seq: int) -> None:
        if not self.seqs or seq > self.seqs[-1]:
            self.seqs.append(seq)
        else:
            insort(self.seqs, seq, lo=self.start)

    def index(self, seq: int) -> int:
        return bisect_left(self.seqs, seq, self.start) - self.start

    def remove(self, seq: int) -> None:
        i = bisect_left(self.seqs, seq, self.start)
        if i == self.start:
            self.start += 1
            if self.start > 512 and self.start * 2 > len(self.seqs):
                del self.seqs[: self.start]
                self.start = 0
        else:
            del self.seqs[i]


class Queue:
    def __init__(self, config: QueueConfig, *, serving: int = 0) -> None:
        self.config = config
        self.id = config.id
        self.handle_time = config.initial_handle_time
        self._lanes: dict[int, _Lane] = {}
        self._prios: list[int] = []  # descending
        self._callers: dict[CallId, Caller] = {}
        self._by_seq: dict[int, Caller] = {}
        self._seq = 0
        self._arrivals: deque[Caller] = deque()
        self._announce: list[tuple[float, int]] = []
        self._clock = float("-inf")
        self.levels = sorted(set(config.tiers.values()) | {1})
        self._opens = [(lv, config.opens_after(lv)) for lv in self.levels]
        #: agents able to take this queue's calls; the dispatcher keeps it current.
        self.serving = serving

    # --- reads ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._callers)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._callers

    def waiting(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def caller(self, call_id: CallId) -> Caller:
        c = self._callers.get(call_id)
        if c is None:
            raise NotFound(f"call {call_id} is not in queue {self.id}")
        return c

    def head(self) -> Caller | None:
        for p in self._prios:
            seq = self._lanes[p].head()
            if seq is not None:
                return self._by_seq[seq]
        return None

    def position(self, call_id: CallId) -> int | None:
        """1-based place among callers not yet being offered; None if being offered."""
        c = self.caller(call_id)
        if c.state is not CallerState.waiting:
            return None
        ahead = 0
        for p in self._prios:
            lane = self._lanes[p]
            if p == c.priority:
                return ahead + lane.index(c.seq) + 1
            ahead += len(lane)
        raise AssertionError("waiting caller without a lane")  # pragma: no cover

    def estimated_wait(self, position: int) -> float | None:
        """Position × average handle time spread over the agents serving; None if nobody is."""
        if self.serving <= 0:
            return None
        return position * self.handle_time / self.serving

    def record_handle_time(self, seconds: float) -> None:
        w = self.config.handle_time_weight
        self.handle_time = (1 - w) * self.handle_time + w * max(0.0, seconds)

    def levels_open(self, caller: Caller, now: float) -> int:
        """Highest tier level the caller's wait has opened (levels open in escalation order)."""
        top = 1
        for level, after in self._opens:
            if caller.entered_at + after <= now and level > top:
                top = level
        return top

    # --- changes --------------------------------------------------------------------------------

    def enter(self, call_id: CallId, now: float, priority: int = 0) -> list[QueueEvent]:
        self.tick(now)
        if call_id in self._callers:
            raise QueueError(f"call {call_id} is already in queue {self.id}")
        limit = self.config.max_length
        if limit is not None and len(self._callers) >= limit:
            reason = OverflowReason.max_length
            return [
                Overflow(self.id, call_id, reason, 0.0, now),
                QueueFact(FactKind.overflowed, self.id, call_id, now, 0.0, reason),
            ]
        self._seq += 1
        c = Caller(call_id, priority, now, self._seq)
        self._callers[call_id] = c
        self._by_seq[c.seq] = c
        self._lane(priority).add(c.seq)
        if self.config.max_wait is not None:
            self._arrivals.append(c)
        if self.config.announce_interval:
            c.next_announce = now + self.config.announce_interval
            heapq.heappush(self._announce, (c.next_announce, c.seq))
        return [QueueFact(FactKind.entered, self.id, call_id, now, priority=priority)]

    def take(self, call_id: CallId) -> Caller:
        """The caller is being offered to agents: out of the lane, still in the queue."""
        c = self.caller(call_id)
        if c.state is not CallerState.waiting:
            raise QueueError(f"call {call_id} is already being offered")
        self._lanes[c.priority].remove(c.seq)
        c.state = CallerState.offered
        return c

    def give_back(
        self, call_id: CallId, now: float, *, check_overflow: bool = True
    ) -> list[QueueEvent]:
        """Nobody answered: back to the same place, unless the max wait ran out meanwhile."""
        self.tick(now)
        c = self.caller(call_id)
        if c.state is not CallerState.offered:
            raise QueueError(f"call {call_id} was not being offered")
        c.state = CallerState.waiting
        self._lanes[c.priority].add(c.seq)
        mw = self.config.max_wait
        if check_overflow and mw is not None and not c.is_callback and now >= c.entered_at + mw:
            return self._overflow(c, OverflowReason.max_wait, now)
        return []

    def answered(self, call_id: CallId, now: float, agent_id: AgentId | None) -> QueueFact:
        self.tick(now)
        c = self._drop(call_id)
        wait = now - c.entered_at
        return QueueFact(
            FactKind.answered, self.id, call_id, now, wait, agent_id=agent_id, priority=c.priority
        )

    def abandon(self, call_id: CallId, now: float) -> QueueFact:
        self.tick(now)
        c = self._drop(call_id)
        wait = now - c.entered_at
        return QueueFact(FactKind.abandoned, self.id, call_id, now, wait, priority=c.priority)

    def exit(self, call_id: CallId, now: float) -> list[QueueEvent]:
        """The caller pressed the exit digit: leave for the overflow branch."""
        self.tick(now)
        return self._overflow(self.caller(call_id), OverflowReason.exit_digit, now)

    def request_callback(self, call_id: CallId, now: float) -> QueueFact:
        """The caller hangs up but keeps their place; they are called back when it is their turn."""
        self.tick(now)
        c = self.caller(call_id)
        if c.is_callback:
            raise QueueError(f"call {call_id} already asked for a callback")
        c.is_callback = True
        c.next_announce = None
        return QueueFact(FactKind.callback_requested, self.id, call_id, now, priority=c.priority)

    # --- timers ---------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        best: float | None = None
        overdue = self._oldest_waiting()
        if overdue is not None and self.config.max_wait is not None:
            best = overdue.entered_at + self.config.max_wait
        announce = self._next_announce()
        if announce is not None and (best is None or announce < best):
            best = announce
        esc = self._next_escalation()
        if esc is not None and (best is None or esc < best):
            best = esc
        return best

    def handle_timer(self, now: float) -> list[QueueEvent]:
        self.tick(now)
        out: list[QueueEvent] = []
        mw = self.config.max_wait
        if mw is not None:
            # Compare against the deadline exactly as next_deadline() states it, so float
            # rounding can never leave a deadline "due" that handle_timer will not act on.
            while (c := self._oldest_waiting()) is not None and now >= c.entered_at + mw:
                self._arrivals.popleft()
                if c.state is CallerState.offered:
                    continue  # being offered: checked again if it comes back (give_back)
                out.extend(self._overflow(c, OverflowReason.max_wait, now))
        interval = self.config.announce_interval
        while (due := self._next_announce()) is not None and due <= now and interval:
            _, seq = heapq.heappop(self._announce)
            c = self._by_seq[seq]
            c.next_announce = due + interval
            heapq.heappush(self._announce, (c.next_announce, seq))
            if c.state is CallerState.waiting:
                pos = self.position(c.call_id) or 0
                out.append(Announce(self.id, c.call_id, pos, self.estimated_wait(pos), now))
        return out

    # --- internals ------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Note the time (deadlines already passed are not announced again)."""
        if now > self._clock:
            self._clock = now

    def _lane(self, priority: int) -> _Lane:
        lane = self._lanes.get(priority)
        if lane is None:
            lane = self._lanes[priority] = _Lane()
            self._prios.append(priority)
            self._prios.sort(reverse=True)
        return lane

    def _drop(self, call_id: CallId) -> Caller:
        c = self.caller(call_id)
        if c.state is CallerState.waiting:
            self._lanes[c.priority].remove(c.seq)
        del self._callers[call_id]
        del self._by_seq[c.seq]
        c.next_announce = None
        return c

    def _overflow(self, c: Caller, reason: OverflowReason, now: float) -> list[QueueEvent]:
        self._drop(c.call_id)
        wait = now - c.entered_at
        return [
            Overflow(self.id, c.call_id, reason, wait, now),
            QueueFact(
                FactKind.overflowed, self.id, c.call_id, now, wait, reason, priority=c.priority
            ),
        ]

    def _oldest_waiting(self) -> Caller | None:
        arrivals = self._arrivals
        while arrivals:
            c = arrivals[0]
            if self._callers.get(c.call_id) is c and not c.is_callback:
                return c
            arrivals.popleft()
        return None

    def _next_announce(self) -> float | None:
        heap = self._announce
        while heap:
            at, seq = heap[0]
            c = self._by_seq.get(seq)
            if c is not None and c.next_announce == at:
                return at
            heapq.heappop(heap)
        return None

    def _next_escalation(self) -> float | None:
        head = self.head()
        if head is None:
            return None
        times = [head.entered_at + after for _, after in self._opens]
        future = [t for t in times if t > self._clock]
        return min(future) if future else None
