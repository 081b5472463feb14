"""Throughput of the pure ACD core (zvonar.acd) on one core.

Run: .venv/bin/python bench/bench_acd.py [--agents 1000] [--callers 10000] [--seconds 2.0]

Scenario: ``--agents`` agents over 10 queues (strategies round robin, least recent, fewest calls,
random, in turn, twice each); every agent is level 1 in one queue and level 2 (escalation 30 s)
in the next, so each agent sits in two queues' indexes. ``--callers`` callers wait at all times
(priorities 0–2).

The headline figure is measured the way the runtime drives the dispatcher: every agent is on a
call and ``--callers`` wait; one agent hangs up, ``decide`` is called and must make exactly one
offer (the decision: which waiting caller, in which queue and level, goes to that agent), the
agent answers and a new caller enters, so the queue stays 10,000 long. The process is
single-threaded: one core.

Reports:
  * decisions/s, one at a time — offers per second of ``decide`` time, one offer per call
    (the target: >= 50,000/s with 1,000 agents and 10,000 waiting callers);
  * per call, one at a time — the same loop with everything the pure code does per call timed:
    hang-up, decide, the runtime's second ``decide`` that finds nothing more, answer, a new
    caller entering, draining the events;
  * decisions/s, batch — every agent freed at once and one ``decide`` making ~``--agents``
    offers (the per-call overhead shared by many offers; an upper bound, not the steady case);
  * cycle/s, batch — the batch loop including answer + hang-up + re-entry of a caller;
  * all_at_once waves/s — one queue of 100 agents ringing everyone;
  * enqueue/s, dequeue/s (head + take), abandon-from-the-middle/s on one 10,000-caller queue.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque

from zvonar.acd import agents as ag
from zvonar.acd.agents import Agent
from zvonar.acd.dispatcher import Dispatcher
from zvonar.acd.queue import Queue, QueueConfig, Strategy

STRATEGIES = [
    Strategy.round_robin,
    Strategy.least_recent,
    Strategy.fewest_calls,
    Strategy.random,
    Strategy.in_turn,
]


def build(n_agents: int, n_callers: int, n_queues: int = 10) -> tuple[Dispatcher, list[str]]:
    d = Dispatcher(seed=1)
    names = [f"agent{i}" for i in range(n_agents)]
    for n in names:
        d.add_agent(Agent(n, 0.0, registered=True))
        d.agent_input(n, ag.set_online(), 0.0)
    qids = [f"q{k}" for k in range(n_queues)]
    for k, qid in enumerate(qids):
        tiers = {}
        for i, n in enumerate(names):
            if i % n_queues == k:
                tiers[n] = 1
            elif (i + 1) % n_queues == k:
                tiers[n] = 2
        cfg = QueueConfig(qid, STRATEGIES[k % len(STRATEGIES)], tiers, {2: 30.0})
        d.add_queue(cfg)
    rng = random.Random(2)
    for c in range(n_callers):
        d.enter(qids[c % n_queues], f"c{c}", 0.0, rng.choice((0, 0, 0, 1, 2)))
    d.events()
    return d, qids


def bench_decisions(n_agents: int, n_callers: int, seconds: float) -> tuple[float, float]:
    d, qids = build(n_agents, n_callers)
    rng = random.Random(3)
    decide_time = total_time = 0.0
    offers_n = 0
    now = 1.0
    next_call = n_callers
    while total_time < seconds:
        t0 = time.perf_counter()
        offers = d.decide(now)
        t1 = time.perf_counter()
        for o in offers:
            agent = o.agents[0]
            d.agent_input(agent, ag.answered(o.call_id), now)
            d.agent_input(agent, ag.call_ended(o.call_id), now + 0.5)
            d.enter(qids[next_call % len(qids)], f"c{next_call}", now, rng.choice((0, 0, 1)))
            next_call += 1
        d.events()
        t2 = time.perf_counter()
        decide_time += t1 - t0
        total_time += t2 - t0
        offers_n += len(offers)
        now += 1.0
        if not offers:
            raise SystemExit("no offers made: the scenario is broken")
    waiting = sum(q.waiting() for q in d.queues.values())
    if waiting != n_callers:
        raise SystemExit(f"expected {n_callers} waiting, found {waiting}")
    return offers_n / decide_time, offers_n / total_time


def bench_one_at_a_time(n_agents: int, n_callers: int, seconds: float) -> tuple[float, float]:
    d, qids = build(n_agents, n_callers)
    rng = random.Random(5)
    now = 60.0  # past the 30 s escalation: level 2 is open for the callers waiting since 0
    next_call = n_callers
    talking: deque[tuple[str, str]] = deque()
    # Everybody takes a call; as many new callers enter, so --callers still wait.
    for o in d.decide(now):
        d.agent_input(o.agents[0], ag.answered(o.call_id), now)
        talking.append((o.agents[0], o.call_id))
        d.enter(qids[next_call % len(qids)], f"c{next_call}", now, rng.choice((0, 0, 1)))
        next_call += 1
    if len(talking) != n_agents:
        raise SystemExit(f"expected every agent on a call, got {len(talking)}")
    d.events()
    decide_time = total_time = 0.0
    n = 0
    perf = time.perf_counter
    while total_time < seconds:
        for _ in range(1000):
            agent, call = talking.popleft()
            now += 0.001
            t0 = perf()
            d.agent_input(agent, ag.call_ended(call), now)
            t1 = perf()
            offers = d.decide(now)
            t2 = perf()
            if len(offers) != 1 or offers[0].agents != (agent,):
                raise SystemExit(f"expected one offer to {agent}, got {offers}")
            offer = offers[0]
            if d.decide(now):  # the runtime decides again until nothing is left to do
                raise SystemExit("a second offer with no free agent")
            d.agent_input(agent, ag.answered(offer.call_id), now)
            d.enter(qids[next_call % len(qids)], f"c{next_call}", now, rng.choice((0, 0, 1)))
            d.events()
            t3 = perf()
            next_call += 1
            talking.append((agent, offer.call_id))
            decide_time += t2 - t1
            total_time += t3 - t0
            n += 1
    waiting = sum(q.waiting() for q in d.queues.values())
    if waiting != n_callers:
        raise SystemExit(f"expected {n_callers} waiting, found {waiting}")
    return n / decide_time, n / total_time


def bench_waves(seconds: float, n_agents: int = 100) -> float:
    d = Dispatcher()
    names = [f"a{i}" for i in range(n_agents)]
    for n in names:
        d.add_agent(Agent(n, 0.0, registered=True))
        d.agent_input(n, ag.set_online(), 0.0)
    d.add_queue(QueueConfig("q", Strategy.all_at_once, dict.fromkeys(names, 1)))
    spent, waves, i = 0.0, 0, 0
    while spent < seconds:
        d.enter("q", f"c{i}", float(i))
        t0 = time.perf_counter()
        (offer,) = d.decide(float(i))
        d.agent_input(offer.agents[0], ag.answered(offer.call_id), float(i))
        d.agent_input(offer.agents[0], ag.call_ended(offer.call_id), float(i))
        spent += time.perf_counter() - t0
        d.events()
        waves += 1
        i += 1
    return waves / spent


def bench_queue(n: int) -> tuple[float, float, float]:
    q = Queue(QueueConfig("q"))
    rng = random.Random(4)
    prios = [rng.choice((0, 0, 0, 1, 2)) for _ in range(n)]
    t0 = time.perf_counter()
    for i in range(n):
        q.enter(f"c{i}", float(i), prios[i])
    enq = n / (time.perf_counter() - t0)
    victims = rng.sample(range(n), n // 2)
    t0 = time.perf_counter()
    for i in victims:
        q.abandon(f"c{i}", float(n))
    abandon = len(victims) / (time.perf_counter() - t0)
    left = len(q)
    t0 = time.perf_counter()
    while (h := q.head()) is not None:
        q.take(h.call_id)
    deq = left / (time.perf_counter() - t0)
    return enq, deq, abandon


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--callers", type=int, default=10000)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    one, per_call = bench_one_at_a_time(args.agents, args.callers, args.seconds)
    decisions, cycle = bench_decisions(args.agents, args.callers, args.seconds)
    print(f"agents={args.agents} waiting callers={args.callers} queues=10 (2 per agent)")
    print(f"decisions/s, one at a time       {one:12,.0f}   target >= 50,000")
    print(f"per call, one at a time (all)    {per_call:12,.0f}   calls/s")
    print(f"decisions/s, batch               {decisions:12,.0f}")
    print(f"cycle/s, batch                   {cycle:12,.0f}")
    print(f"all_at_once waves/s (100 agents) {bench_waves(args.seconds / 2):12,.0f}")
    enq, deq, abandon = bench_queue(args.callers)
    print(f"enqueue/s                        {enq:12,.0f}")
    print(f"dequeue/s (head+take)            {deq:12,.0f}")
    print(f"abandon from the middle/s        {abandon:12,.0f}")


if __name__ == "__main__":
    main()
