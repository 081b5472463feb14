"""Who is free for which queue tier, kept current as agents change status. Sans-IO.

The dispatcher decides; this keeps the indexes its decisions read, so a decision never scans
every agent or every queue:

* per (queue, level), a :mod:`~zvonar.acd.pools` index of the agents free for it now;
* the queues with at least one free agent in any tier (``ready``: what ``decide`` looks at),
  the number of (agent, tier) entries in their pools, and a stable rank for ties;
* each agent's memberships, so a status change touches only their own tiers;
* how many agents serve each queue (``Queue.serving``: its estimated wait).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from zvonar.acd.agents import Agent, AgentId, Status
from zvonar.acd.facts import QueueId
from zvonar.acd.pools import Pool, pool_for
from zvonar.acd.queue import Queue

__all__ = ["SERVING", "Availability"]

#: Statuses in which an agent counts as serving a queue (for estimated wait).
SERVING = frozenset({Status.online, Status.ringing, Status.on_call, Status.wrap_up})


class Availability:
    def __init__(self, agents: Mapping[AgentId, Agent], rng: random.Random) -> None:
        self._agents = agents  # the dispatcher's own registry, read only
        self._rng = rng
        self.pools: dict[QueueId, dict[int, Pool]] = {}
        self.ready: dict[QueueId, Queue] = {}
        self.rank: dict[QueueId, int] = {}
        self._ranks = 0
        self._free: dict[QueueId, int] = {}
        self._memberships: dict[AgentId, list[tuple[Queue, Pool]]] = {}
        self._serving: dict[AgentId, bool] = {}

    def add_queue(self, q: Queue) -> None:
        positions = {a: i for i, a in enumerate(q.config.tiers)}
        strategy = q.config.strategy
        pools = {lv: pool_for(strategy, positions, self._agents, self._rng) for lv in q.levels}
        self.pools[q.id] = pools
        self._free[q.id] = 0
        self._ranks += 1
        self.rank[q.id] = self._ranks
        for agent_id, level in q.config.tiers.items():
            self._memberships.setdefault(agent_id, []).append((q, pools[level]))
            agent = self._agents.get(agent_id)
            if agent is not None:
                if self._serving.get(agent_id):
                    q.serving += 1
                self.refresh(agent)

    def remove_queue(self, q: Queue) -> None:
        del self.pools[q.id]
        del self._free[q.id]
        del self.rank[q.id]
        self.ready.pop(q.id, None)
        for memberships in self._memberships.values():
            memberships[:] = [(mq, pool) for mq, pool in memberships if mq is not q]

    def add_agent(self, agent: Agent) -> None:
        self._serving[agent.id] = False
        self.refresh(agent)

    def in_any_queue(self, agent_id: AgentId) -> bool:
        return bool(self._memberships.get(agent_id))

    def free_agents(self, queue_id: QueueId, level: int = 1) -> int:
        return len(self.pools[queue_id][level])

    def refresh(self, agent: Agent) -> None:
        """Put the agent in or out of each of their tiers' free-agent indexes."""
        status = agent.status
        memberships = self._memberships.get(agent.id, ())
        serving = status in SERVING
        if serving != self._serving[agent.id]:
            self._serving[agent.id] = serving
            for q, _ in memberships:
                q.serving += 1 if serving else -1
        agent_id = agent.id
        for q, pool in memberships:
            free = status is Status.online or (
                status is Status.wrap_up and not q.config.respect_wrapup
            )
            if free == (agent_id in pool):
                continue
            qid = q.id
            if free:
                pool.add(agent_id)
                self._free[qid] += 1
                self.ready[qid] = q
            else:
                pool.discard(agent_id)
                self._free[qid] -= 1
                if not self._free[qid]:
                    del self.ready[qid]
