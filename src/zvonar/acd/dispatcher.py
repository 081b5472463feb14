"""The dispatcher: agents, queues and the offers that join them. Sans-IO.

The orchestrator feeds it what happened (``enter``, ``agent_input``, ``abandon``, ``digit``,
``handle_timer``), calls :meth:`Dispatcher.decide` to get offers to ring, and drains
:meth:`Dispatcher.events` for storage and live feeds (status intervals, supervisor alerts,
queue facts, overflows, announcements).

Rules kept here:

* an agent offered a call is *reserved* (status ``ringing``) until they answer, let it ring out,
  or the offer is withdrawn — in every queue they belong to at once, so an agent is never offered
  two calls;
* the head of each queue is matched first; tier level 1 is tried first, higher levels once the
  head caller has waited their escalation time;
* agents who already let this caller's offer ring out are skipped while anybody else is free;
* a caller nobody answered goes back to the very same place — at once, or, for a queue
  callback whose customer could not be reached, after a delay (``retry_later``);
* supervisors may move a waiting caller to another queue (their wait keeps counting from when
  they first joined) or offer them to one agent directly (``direct_offer``: intercept).

Speed: each (queue, level) keeps an index of its free agents, and the set of queues that have
any free agent at all is kept beside them (:mod:`zvonar.acd.availability`); a decision looks
only at those queues' heads, a few index entries and the reserved agent's memberships — never
every caller, every agent or every queue (an agent hanging up makes only their own queues
ready).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from zvonar.acd.agents import (
    BUSY,
    WRAPUP_ELAPSED,
    Agent,
    AgentConfig,
    AgentEvent,
    AgentId,
    AgentInput,
    AgentProtocolError,
    CallId,
    Input,
    Status,
    call_ended,
    no_answer,
    offered,
    set_online,
)
from zvonar.acd.availability import SERVING, Availability
from zvonar.acd.facts import QueueFact, QueueId
from zvonar.acd.queue import (
    Caller,
    CallerState,
    Overflow,
    Queue,
    QueueConfig,
    QueueError,
    QueueEvent,
    Strategy,
)
from zvonar.core.errors import NotFound

#: Statuses from which a supervisor may hand an agent a call directly (wrap-up is theirs to cut).
DIRECTLY_OFFERABLE = frozenset({Status.online, Status.wrap_up})


class CallBeingOffered(QueueError):
    """The caller's offer is ringing: it must be answered or ring out first."""

    code = "call_being_offered"


class AgentUnavailable(QueueError):
    code = "agent_unavailable"


class QueueFull(QueueError):
    code = "queue_full"


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring these agents for this call (several only for ``all_at_once``)."""

    queue_id: QueueId
    call_id: CallId
    agents: tuple[AgentId, ...]
    level: int
    is_callback: bool
    priority: int
    wait: float
    at: float


AcdEvent = AgentEvent | QueueEvent | Offer


@dataclass(slots=True)
class _Pending:
    queue: Queue
    ringing: set[AgentId] = field(default_factory=set)
    retry_at: float | None = None  # when nobody is left ringing: back in line only then


@dataclass(slots=True)
class _Talking:
    queue: Queue
    call_id: CallId
    since: float


class Dispatcher:
    def __init__(self, *, seed: int = 0) -> None:
        self.agents: dict[AgentId, Agent] = {}
        self.queues: dict[QueueId, Queue] = {}
        self.free = Availability(self.agents, random.Random(seed))
        self._queue_of_call: dict[CallId, Queue] = {}
        self._offers: dict[CallId, _Pending] = {}
        self._talking: dict[AgentId, _Talking] = {}
        self._deadlines: list[tuple[float, AgentId]] = []
        self._watched: dict[AgentId, float | None] = {}
        # Callers kept out of offers until a time (out of their lane, still in their queue).
        self._held: dict[CallId, float] = {}
        self._held_heap: list[tuple[float, CallId]] = []
        self._out: list[AcdEvent] = []

    # --- setup ----------------------------------------------------------------------------------

    def add_queue(self, config: QueueConfig) -> Queue:
        if config.id in self.queues:
            raise QueueError(f"queue {config.id} exists")
        q = Queue(config)
        self.queues[q.id] = q
        self.free.add_queue(q)
        return q

    def remove_queue(self, queue_id: QueueId) -> None:
        """Drop an empty queue (its definition changed or went away)."""
        q = self.queues.get(queue_id)
        if q is None:
            raise NotFound(f"queue {queue_id} not found")
        if len(q):
            raise QueueError(f"queue {queue_id} still has callers")
        del self.queues[queue_id]
        self.free.remove_queue(q)

    def add_agent(self, agent: Agent) -> None:
        if agent.id in self.agents:
            raise QueueError(f"agent {agent.id} exists")
        self.agents[agent.id] = agent
        self.free.add_agent(agent)
        self._watch(agent)

    # --- reads ----------------------------------------------------------------------------------

    def events(self) -> list[AcdEvent]:
        """Drain what happened since the last call (offers included, in order)."""
        out, self._out = self._out, []
        return out

    def queue_of(self, call_id: CallId) -> Queue:
        q = self._queue_of_call.get(call_id)
        if q is None:
            raise NotFound(f"call {call_id} is in no queue")
        return q

    def offer_of(self, call_id: CallId) -> frozenset[AgentId]:
        """Agents still ringing for the call (empty when it is not being offered)."""
        p = self._offers.get(call_id)
        return frozenset(p.ringing) if p else frozenset()

    def free_agents(self, queue_id: QueueId, level: int = 1) -> int:
        return self.free.free_agents(queue_id, level)

    def position(self, call_id: CallId) -> int | None:
        return self.queue_of(call_id).position(call_id)

    def estimated_wait(self, call_id: CallId) -> float | None:
        q = self.queue_of(call_id)
        pos = q.position(call_id)
        return None if pos is None else q.estimated_wait(pos)

    def next_deadline(self) -> float | None:
        best: float | None = None
        heap = self._deadlines
        while heap:
            at, agent_id = heap[0]
            if self.agents[agent_id].next_deadline() == at:
                best = at
                break
            heapq.heappop(heap)
        held = self._held_heap
        while held and self._held.get(held[0][1]) != held[0][0]:
            heapq.heappop(held)  # stale: the caller left or was put back already
        if held and (best is None or held[0][0] < best):
            best = held[0][0]
        for q in self.queues.values():
            d = q.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    # --- inputs ---------------------------------------------------------------------------------

    def enter(self, queue_id: QueueId, call_id: CallId, now: float, priority: int = 0) -> bool:
        """Put a call in a queue; False when it was refused (queue full: see the Overflow)."""
        if call_id in self._queue_of_call:
            raise QueueError(f"call {call_id} is already queued")
        q = self.queues.get(queue_id)
        if q is None:
            raise NotFound(f"queue {queue_id} not found")
        events = q.enter(call_id, now, priority)
        refused = any(isinstance(e, Overflow) for e in events)
        if not refused:
            self._queue_of_call[call_id] = q
        self._out.extend(events)
        return not refused

    def abandon(self, call_id: CallId, now: float) -> None:
        """The caller hung up (not a callback request)."""
        q = self.queue_of(call_id)
        self._withdraw(call_id, now)
        self._held.pop(call_id, None)
        self._out.append(q.abandon(call_id, now))
        del self._queue_of_call[call_id]

    def request_callback(self, call_id: CallId, now: float) -> None:
        q = self.queue_of(call_id)
        if call_id in self._offers:
            raise QueueError("a call being offered cannot switch to a callback")
        self._out.append(q.request_callback(call_id, now))

    def retry_later(self, call_id: CallId, at: float) -> None:
        """Keep the caller out of offers until ``at``, then back in their very place.

        For a queue callback whose customer could not be reached: calling them again at once
        would ring the same agent and the same unanswered phone in a loop. Called while the
        caller's offer rings (it applies once nobody rings any more) or while they wait.
        """
        q = self.queue_of(call_id)
        pending = self._offers.get(call_id)
        if pending is not None:
            pending.retry_at = at
            return
        caller = q.caller(call_id)
        if caller.state is CallerState.waiting:
            q.take(call_id)
        self._hold(call_id, at)

    def held_until(self, call_id: CallId) -> float | None:
        """When a caller kept out of offers by ``retry_later`` is back in line (else None)."""
        return self._held.get(call_id)

    def _hold(self, call_id: CallId, at: float) -> None:
        self._held[call_id] = at
        heapq.heappush(self._held_heap, (at, call_id))

    def digit(self, call_id: CallId, digit: str, now: float) -> None:
        """A DTMF digit from a waiting caller: exit or callback, per the queue's settings."""
        q = self.queue_of(call_id)
        if digit == q.config.exit_digit:
            self._withdraw(call_id, now)
            self._queue_events(q.exit(call_id, now))
        elif digit == q.config.callback_digit:
            self.request_callback(call_id, now)

    def agent_input(self, agent_id: AgentId, inp: AgentInput, now: float) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        if inp.kind is Input.offered:
            # Offers are this dispatcher's own decisions; one fed from outside would reserve the
            # agent for a call no queue knows about.
            err = AgentProtocolError(
                agent_id, agent.status, inp.kind, "offers come from decide", now
            )
            self._out.append(err)
            return
        before = agent.status
        call = agent.call_id
        connected_at = agent.connected_at
        self._out.extend(agent.handle(inp, now))
        pending = self._offers.get(call) if before is Status.ringing and call else None
        if pending is not None and agent.status is not Status.ringing and call is not None:
            self._resolve(agent, pending, call, now)
        elif before is Status.on_call and agent.status is not Status.on_call:
            talk = self._talking.pop(agent_id, None)
            if talk is not None and connected_at is not None:
                handle = now - connected_at + agent.config.wrapup_seconds
                talk.queue.record_handle_time(handle)
        self.free.refresh(agent)
        self._watch(agent)

    def handle_timer(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            at, agent_id = heapq.heappop(heap)
            agent = self.agents[agent_id]
            if agent.next_deadline() != at:
                continue
            if agent.status is Status.wrap_up:
                self.agent_input(agent_id, WRAPUP_ELAPSED, now)
            else:
                self.agent_input(agent_id, no_answer(agent.call_id), now)
        held = self._held_heap
        while held and held[0][0] <= now:
            at, call_id = heapq.heappop(held)
            if self._held.get(call_id) != at:
                continue
            del self._held[call_id]
            q = self._queue_of_call.get(call_id)
            if q is not None and call_id in q:
                self._queue_events(q.give_back(call_id, now))
        for q in self.queues.values():
            self._queue_events(q.handle_timer(now))

    # --- supervisor actions ---------------------------------------------------------------------

    def move(self, call_id: CallId, to_queue: QueueId, now: float) -> None:
        """Move a waiting caller to the back of ``to_queue``'s line for their priority.

        Their original entry time is kept, so escalation, max wait, the answer wait in reports
        and the cross-queue order of heads all count from when they first joined. The target
        queue records an ``entered`` fact; the source records nothing (the call was not lost).
        """
        src = self.queue_of(call_id)
        dst = self.queues.get(to_queue)
        if dst is None:
            raise NotFound(f"queue {to_queue} not found", code="queue_not_found")
        if dst is src:
            raise QueueError(f"call {call_id} already waits in {to_queue}", code="same_queue")
        caller = self._waiting(src, call_id)
        limit = dst.config.max_length
        if limit is not None and len(dst) >= limit:
            raise QueueFull(f"queue {to_queue} is full", queue=to_queue)
        entered_at, is_callback = caller.entered_at, caller.is_callback
        src.abandon(call_id, now)  # only drops the caller: a move is no abandon
        self._out.extend(dst.enter(call_id, now, caller.priority))
        moved = dst.caller(call_id)
        moved.entered_at = entered_at
        if is_callback:
            moved.is_callback = True
            moved.next_announce = None
        self._queue_of_call[call_id] = dst

    def direct_offer(
        self, call_id: CallId, agent_id: AgentId, now: float, config: AgentConfig | None = None
    ) -> Offer:
        """Offer a waiting caller to one agent now, whatever the queue's strategy (the agent
        as :meth:`direct_taker` makes them). If the agent does not answer, the caller goes
        back to their place as after any offer."""
        q = self.queue_of(call_id)
        caller = self._waiting(q, call_id)
        self.direct_taker(agent_id, now, config)
        # No pool.picked(): a supervisor's choice does not move a strategy's memory.
        return self._offer(q, caller, (agent_id,), q.config.tiers.get(agent_id, 0), now)

    def direct_taker(
        self, agent_id: AgentId, now: float, config: AgentConfig | None = None
    ) -> None:
        """Make ``agent_id`` ready to be offered a call directly, or raise AgentUnavailable.

        An agent in no queue (a supervisor taking the call themselves) is added with no
        memberships, with ``config``; asking for the call is their choice to be online."""
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = Agent(agent_id, now, config, registered=True)
            self.add_agent(agent)
        idle = agent.status not in BUSY and agent.status is not Status.online
        if idle and not self.free.in_any_queue(agent_id):
            self.agent_input(agent_id, set_online(), now)
        if agent.status not in DIRECTLY_OFFERABLE:
            raise AgentUnavailable(
                f"agent {agent_id} is {agent.status.value}", status=agent.status.value
            )

    def withdraw(self, call_id: CallId, now: float) -> None:
        """Stop the caller's offer without a verdict on the agents (no miss counted) and put
        the caller back in their place (a supervisor is about to take the call)."""
        self.queue_of(call_id)
        self._withdraw(call_id, now)

    def _waiting(self, q: Queue, call_id: CallId) -> Caller:
        caller = q.caller(call_id)
        if call_id in self._offers or caller.state is not CallerState.waiting:
            raise CallBeingOffered(f"call {call_id} is being offered to agents")
        return caller

    # --- decisions ------------------------------------------------------------------------------

    def decide(self, now: float) -> list[Offer]:
        """Offer every queue head that has a free agent; oldest high-priority heads first.

        Only queues with a free agent are looked at (a queue nobody can serve now makes no
        offer, whatever its head); their clocks are left to their own inputs and timers.
        """
        order: list[tuple[int, float, int, Queue]] = []
        ready, rank = self.free.ready, self.free.rank
        for q in ready.values():
            q.tick(now)
            h = q.head()
            if h is not None:
                order.append((-h.priority, h.entered_at, rank[q.id], q))
        if not order:
            return []
        heapq.heapify(order)
        offers: list[Offer] = []
        while order:
            _, _, i, q = order[0]
            # An offer just made may have taken the queue's last free agent (shared ones too).
            head = q.head() if q.id in ready else None
            offer = self._match(q, head, now) if head is not None else None
            if offer is None:
                heapq.heappop(order)
                continue
            offers.append(offer)
            nxt = q.head()
            if nxt is None:
                heapq.heappop(order)
            else:
                heapq.heapreplace(order, (-nxt.priority, nxt.entered_at, i, q))
        return offers

    def _match(self, q: Queue, caller: Caller, now: float) -> Offer | None:
        top = q.levels_open(caller, now)
        pools = self.free.pools[q.id]
        all_at_once = q.config.strategy is Strategy.all_at_once
        exclude: set[AgentId] = caller.tried
        for _ in range(2):
            for level in q.levels:
                if level > top:
                    break
                pool = pools[level]
                if not len(pool):
                    continue
                if all_at_once:
                    wave = pool.wave(exclude)
                    if wave:
                        return self._offer(q, caller, tuple(wave), level, now)
                else:
                    agent_id = pool.pick(exclude)
                    if agent_id is not None:
                        pool.picked(agent_id)
                        return self._offer(q, caller, (agent_id,), level, now)
            if not exclude:
                return None
            # Everybody free has already let this caller ring out: start the round again.
            exclude.clear()
        return None

    def _offer(
        self, q: Queue, caller: Caller, agents: tuple[AgentId, ...], level: int, now: float
    ) -> Offer:
        q.take(caller.call_id)
        pending = _Pending(q, set(agents))
        self._offers[caller.call_id] = pending
        offer = Offer(
            q.id,
            caller.call_id,
            agents,
            level,
            caller.is_callback,
            caller.priority,
            now - caller.entered_at,
            now,
        )
        self._out.append(offer)
        inp = offered(caller.call_id)
        for agent_id in agents:
            agent = self.agents[agent_id]
            self._out.extend(agent.handle(inp, now))
            self.free.refresh(agent)
            self._watch(agent)
        return offer

    # --- internals ------------------------------------------------------------------------------

    def _resolve(self, agent: Agent, pending: _Pending, call: CallId, now: float) -> None:
        """``agent`` stopped ringing for ``call``: answered, rang out or withdrawn."""
        pending.ringing.discard(agent.id)
        q = pending.queue
        if agent.status is Status.on_call:
            del self._offers[call]
            del self._queue_of_call[call]
            self._out.append(q.answered(call, now, agent.id))
            self._talking[agent.id] = _Talking(q, call, now)
            self._cancel(pending.ringing, call, now)
            return
        q.caller(call).tried.add(agent.id)
        if not pending.ringing:
            del self._offers[call]
            if pending.retry_at is not None and pending.retry_at > now:
                self._hold(call, pending.retry_at)  # stays "offered" (out of line) until then
            else:
                self._queue_events(q.give_back(call, now))

    def _withdraw(self, call_id: CallId, now: float) -> None:
        pending = self._offers.pop(call_id, None)
        if pending is not None:
            # Back in the lane without the max-wait check: the caller is leaving anyway.
            pending.queue.give_back(call_id, now, check_overflow=False)
            self._cancel(pending.ringing, call_id, now)

    def _cancel(self, agent_ids: Iterable[AgentId], call: CallId, now: float) -> None:
        inp = call_ended(call)
        for agent_id in list(agent_ids):
            agent = self.agents[agent_id]
            self._out.extend(agent.handle(inp, now))
            self.free.refresh(agent)
            self._watch(agent)

    def _queue_events(self, events: list[QueueEvent]) -> None:
        for e in events:
            if isinstance(e, Overflow):
                self._queue_of_call.pop(e.call_id, None)
        self._out.extend(events)

    def _watch(self, agent: Agent) -> None:
        d = agent.next_deadline()
        if d is not None and self._watched.get(agent.id) != d:
            heapq.heappush(self._deadlines, (d, agent.id))
        self._watched[agent.id] = d


def facts_of(events: Iterable[AcdEvent]) -> list[QueueFact]:
    return [e for e in events if isinstance(e, QueueFact)]


__all__ = [
    "SERVING",
    "AcdEvent",
    "AgentUnavailable",
    "CallBeingOffered",
    "Dispatcher",
    "Input",
    "Offer",
    "QueueFull",
    "facts_of",
]
