"""Any sequence of inputs keeps the dispatcher's invariants.

* an agent rings for at most one call, and "ringing" means exactly "in one pending offer";
* every accepted call is, at any moment, either in its queue or has exactly one final fact
  (answered, abandoned, overflowed) — never lost, never duplicated;
* each agent's stored intervals are contiguous, positive and non-overlapping;
* queue positions are exactly 1..n over the callers not being offered.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from zvonar.acd import agents as ag
from zvonar.acd.agents import Agent, AgentConfig, AgentInput, Input, Status, StatusInterval
from zvonar.acd.dispatcher import Dispatcher
from zvonar.acd.facts import FactKind, QueueFact
from zvonar.acd.queue import QueueConfig, QueueError, Strategy

AGENTS = ["a", "b", "c", "d"]
FINAL = {FactKind.answered, FactKind.abandoned, FactKind.overflowed}

ops = st.one_of(
    st.tuples(st.just("enter"), st.sampled_from(["q1", "q2"]), st.integers(0, 2)),
    st.tuples(st.just("decide")),
    st.tuples(st.just("input"), st.sampled_from(AGENTS), st.sampled_from(list(Input))),
    st.tuples(st.just("answer"), st.sampled_from(AGENTS)),
    st.tuples(st.just("answer"), st.sampled_from(AGENTS)),
    st.tuples(st.just("decide")),
    st.tuples(st.just("hangup"), st.integers(0, 30)),
    st.tuples(st.just("callback"), st.integers(0, 30)),
    st.tuples(st.just("exit"), st.integers(0, 30)),
    st.tuples(st.just("time"), st.floats(0.1, 40)),
)


def agent_input(kind: Input, agent: Agent) -> AgentInput:
    call = agent.call_id or "direct"
    return {
        Input.set_break: ag.set_break("coffee"),
        Input.supervisor_set: ag.supervisor_set(Status.away),
        Input.offered: ag.offered("rogue"),
    }.get(kind, AgentInput(kind, call_id=call))


def build() -> Dispatcher:
    d = Dispatcher(seed=1)
    for i, n in enumerate(AGENTS):
        cfg = AgentConfig(wrapup_seconds=5 * i, max_no_answers=2, ring_timeout=10 + i)
        d.add_agent(Agent(n, 0.0, cfg, registered=True))
        d.agent_input(n, ag.set_online(), 0.0)
    d.add_queue(
        QueueConfig(
            "q1", Strategy.round_robin, {"a": 1, "b": 1, "c": 2}, {2: 15}, max_wait=60,
            max_length=5, announce_interval=20, exit_digit="0", callback_digit="1",
        )
    )  # fmt: skip
    d.add_queue(
        QueueConfig("q2", Strategy.all_at_once, {"c": 1, "d": 1, "a": 2}, respect_wrapup=False)
    )
    return d


def check(d: Dispatcher, accepted: set[str], facts: list[QueueFact]) -> None:
    ringing = Counter(a for call in list(d._offers) for a in d.offer_of(call))
    for n, agent in d.agents.items():
        assert ringing[n] <= 1
        assert (agent.status is Status.ringing) == (ringing[n] == 1)
        if ringing[n]:
            assert n in d.offer_of(agent.call_id or "")
    final = Counter(f.call_id for f in facts if f.kind in FINAL)
    assert all(v == 1 for v in final.values())
    for call in accepted:
        queued = sum(call in q for q in d.queues.values())
        assert queued + final[call] == 1, call
    for q in d.queues.values():
        waiting = [c for c in q._callers if q.position(c) is not None]
        assert sorted(q.position(c) for c in waiting) == list(range(1, len(waiting) + 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=60))
def test_any_sequence_keeps_invariants(steps: list[tuple[object, ...]]) -> None:
    d = build()
    now = 0.0
    n_calls = 0
    accepted: set[str] = set()
    events: list[object] = []
    for step in steps:
        op = step[0]
        try:
            if op == "enter":
                call = f"k{n_calls}"
                n_calls += 1
                if d.enter(str(step[1]), call, now, int(step[2])):  # type: ignore[call-overload]
                    accepted.add(call)
            elif op == "decide":
                d.decide(now)
            elif op == "input":
                agent = d.agents[str(step[1])]
                d.agent_input(agent.id, agent_input(step[2], agent), now)  # type: ignore[arg-type]
            elif op == "answer":
                agent = d.agents[str(step[1])]
                if agent.status is Status.ringing:
                    d.agent_input(agent.id, ag.answered(agent.call_id or ""), now)
            elif op in ("hangup", "callback", "exit"):
                call = f"k{step[1]}"
                if call in d._queue_of_call:
                    if op == "hangup":
                        d.abandon(call, now)
                    else:
                        d.digit(call, "1" if op == "callback" else "0", now)
            elif op == "time":
                now += float(step[1])  # type: ignore[arg-type]
                while (dl := d.next_deadline()) is not None and dl <= now:
                    d.handle_timer(dl)
                d.handle_timer(now)
        except QueueError:
            pass  # refused by rule (e.g. callback while ringing): state must still hold
        events.extend(d.events())
        check(d, accepted, [e for e in events if isinstance(e, QueueFact)])
    by_agent: dict[str, list[StatusInterval]] = defaultdict(list)
    for e in events:
        if isinstance(e, StatusInterval):
            by_agent[e.agent_id].append(e)
    for n, intervals in by_agent.items():
        prev_end = 0.0
        for iv in intervals:
            assert iv.start == prev_end and iv.end > iv.start, (n, intervals)
            prev_end = iv.end
        assert d.agents[n].since == prev_end
