"""Dispatcher decisions: strategies, tiers, reservations, no-answers, abandons, callbacks."""

from __future__ import annotations

from collections import Counter

import pytest

from zvonar.acd import agents as ag
from zvonar.acd.agents import Agent, AgentConfig, Status, SupervisorAlert
from zvonar.acd.dispatcher import Dispatcher, Offer, facts_of
from zvonar.acd.facts import FactKind, OverflowReason
from zvonar.acd.queue import Overflow, QueueConfig, QueueError, Strategy


def build(
    strategy: Strategy = Strategy.in_turn,
    names: str = "abc",
    *,
    tiers: dict[str, int] | None = None,
    wrapup: float = 0.0,
    **qkw: object,
) -> Dispatcher:
    d = Dispatcher(seed=7)
    for n in names:
        a = Agent(n, 0.0, AgentConfig(wrapup_seconds=wrapup), registered=True)
        d.add_agent(a)
        d.agent_input(n, ag.set_online(), 0.0)
    d.add_queue(
        QueueConfig("q", strategy, tiers or dict.fromkeys(names, 1), **qkw)  # type: ignore[arg-type]
    )
    d.events()
    return d


def serve(d: Dispatcher, offer: Offer, agent: str, now: float) -> None:
    """``agent`` answers the offer and hangs up at once."""
    d.agent_input(agent, ag.answered(offer.call_id), now)
    d.agent_input(agent, ag.call_ended(offer.call_id), now)


def picks(d: Dispatcher, n: int, t0: float = 1.0) -> list[str]:
    out = []
    for i in range(n):
        now = t0 + i
        d.enter("q", f"call{t0}-{i}", now)
        (offer,) = d.decide(now)
        assert len(offer.agents) == 1
        out.append(offer.agents[0])
        serve(d, offer, offer.agents[0], now)
    return out


def test_in_turn_always_starts_from_the_top() -> None:
    d = build(Strategy.in_turn)
    assert picks(d, 3) == ["a", "a", "a"]
    d.enter("q", "x", 10)
    d.enter("q", "y", 10)
    d.enter("q", "z", 10)
    assert [o.agents for o in d.decide(10)] == [("a",), ("b",), ("c",)]


def test_round_robin_remembers_where_it_stopped() -> None:
    d = build(Strategy.round_robin)
    assert picks(d, 4) == ["a", "b", "c", "a"]
    d.agent_input("b", ag.set_dnd(), 20)
    assert picks(d, 3, t0=30) == ["c", "a", "c"]


def test_least_recent_picks_the_longest_idle() -> None:
    d = build(Strategy.least_recent)
    assert picks(d, 3) == ["a", "b", "c"]  # never called: queue order breaks the tie
    assert picks(d, 3, t0=10) == ["a", "b", "c"]
    # c ends a long call late; a and b are then fresher than... nobody: order by last call end
    d.enter("q", "long", 20)
    (o,) = d.decide(20)
    d.agent_input(o.agents[0], ag.answered("long"), 20)
    d.agent_input(o.agents[0], ag.call_ended("long"), 50)
    assert o.agents == ("a",)
    assert picks(d, 3, t0=60) == ["b", "c", "a"]


def test_fewest_calls_balances_counts() -> None:
    d = build(Strategy.fewest_calls)
    d.agents["a"].calls_taken = 5
    d.agents["b"].calls_taken = 1
    d.agents["c"].calls_taken = 2
    # Re-index with the new counts (they only change while an agent is busy in real use).
    for n in "abc":
        d.agent_input(n, ag.set_dnd(), 0.5)
        d.agent_input(n, ag.set_online(), 0.5)
    assert picks(d, 4) == ["b", "c", "b", "c"]
    # b:3 c:4 a:5 → b; then b:4 c:4 tie, c's last call ended earlier → c
    assert picks(d, 2, t0=10) == ["b", "c"]
    # b:4 → b; then all at 5, a never called (longest idle) → a
    assert picks(d, 2, t0=20) == ["b", "a"]


def test_random_is_seeded_and_only_picks_free_agents() -> None:
    def run() -> list[str]:
        d = build(Strategy.random, "abcdef")
        d.agent_input("f", ag.set_break("lunch"), 0.5)
        return picks(d, 300)

    first = run()
    assert first == run()
    counts = Counter(first)
    assert set(counts) == set("abcde")
    assert min(counts.values()) > 30


def test_all_at_once_rings_every_free_agent_and_releases_the_others() -> None:
    d = build(Strategy.all_at_once, "abcd")
    d.agent_input("c", ag.set_dnd(), 0.5)
    d.enter("q", "x", 1)
    (o,) = d.decide(1)
    assert o.agents == ("a", "b", "d")
    assert {d.agents[n].status for n in "abd"} == {Status.ringing}
    d.agent_input("b", ag.answered("x"), 4)
    assert d.agents["b"].status is Status.on_call
    assert d.agents["a"].status is Status.online and d.agents["d"].status is Status.online
    assert d.agents["a"].no_answers == 0  # withdrawn, not ignored
    (fact,) = [f for f in facts_of(d.events()) if f.kind is FactKind.answered]
    assert (fact.wait, fact.agent_id) == (3, "b")


def test_unavailable_agents_are_never_offered() -> None:
    d = build(Strategy.all_at_once, "abcde", wrapup=30)
    d.agent_input("a", ag.set_dnd(), 1)
    d.agent_input("b", ag.set_break("lunch"), 1)
    d.agent_input("c", ag.DEVICES_UNREGISTERED, 1)
    d.enter("q", "w", 1)
    (o,) = d.decide(1)
    serve(d, o, "d", 2)  # d now in wrap-up until 32; e released
    d.enter("q", "x", 3)
    (o,) = d.decide(3)
    assert o.agents == ("e",)
    serve(d, o, "e", 3)
    d.enter("q", "y", 4)
    assert d.decide(4) == []
    assert d.next_deadline() == 32
    d.handle_timer(32)
    assert [o.agents for o in d.decide(32)] == [("d",)]


def test_queue_may_ignore_wrap_up() -> None:
    d = build(Strategy.in_turn, "a", wrapup=30, respect_wrapup=False)
    d.enter("q", "x", 1)
    (o,) = d.decide(1)
    serve(d, o, "a", 2)
    assert d.agents["a"].status is Status.wrap_up
    d.enter("q", "y", 3)
    assert [o.agents for o in d.decide(3)] == [("a",)]


def test_higher_tiers_join_after_their_escalation_wait() -> None:
    d = build(Strategy.in_turn, "abc", tiers={"a": 1, "b": 2, "c": 3}, escalation={2: 20, 3: 60})
    d.agent_input("a", ag.set_dnd(), 1)
    d.agent_input("b", ag.set_dnd(), 1)
    d.enter("q", "x", 100)
    d.enter("q", "y", 101)
    assert d.decide(100) == []
    assert d.next_deadline() == 120
    d.agent_input("b", ag.set_online(), 110)
    assert d.decide(119.9) == []
    assert [o.agents for o in d.decide(120)] == [("b",)]
    # y's own wait counts: c (level 3) only at 101 + 60.
    assert d.decide(160) == []
    assert d.next_deadline() == 161
    assert [(o.call_id, o.agents, o.level) for o in d.decide(161)] == [("y", ("c",), 3)]


def test_level_one_is_preferred_once_higher_levels_are_open() -> None:
    d = build(Strategy.in_turn, "ab", tiers={"b": 2, "a": 1}, escalation={2: 0})
    d.enter("q", "x", 1)
    assert [o.agents for o in d.decide(1)] == [("a",)]


def test_agent_in_two_queues_is_offered_one_call_only() -> None:
    d = build(Strategy.in_turn, "a")
    d.add_queue(QueueConfig("q2", Strategy.in_turn, {"a": 1}))
    d.enter("q", "x", 5)
    d.enter("q2", "y", 3)  # older: served first
    assert [(o.queue_id, o.call_id) for o in d.decide(5)] == [("q2", "y")]
    d.agent_input("a", ag.no_answer("y"), 10)
    # y let a ring out; a is the only free agent, so the round starts again (oldest first).
    assert [(o.queue_id, o.call_id) for o in d.decide(10)] == [("q2", "y")]


def test_no_answer_puts_the_caller_back_and_tries_somebody_else() -> None:
    d = build(Strategy.in_turn, "ab")
    d.enter("q", "x", 1)
    d.enter("q", "y", 2)
    d.agent_input("b", ag.set_dnd(), 2)
    assert [(o.call_id, o.agents) for o in d.decide(2)] == [("x", ("a",))]
    assert d.position("y") == 1 and d.position("x") is None
    d.agent_input("b", ag.set_online(), 3)
    d.agent_input("a", ag.no_answer("x"), 5)
    assert (d.position("x"), d.position("y")) == (1, 2)
    # x is first again, and skips a (who let it ring out) for b; y then gets a.
    assert [(o.call_id, o.agents) for o in d.decide(5)] == [("x", ("b",)), ("y", ("a",))]
    d.agent_input("b", ag.no_answer("x"), 9)
    d.agent_input("a", ag.answered("y"), 9)
    # Only a ringer-out is free (b): the round starts again rather than leaving x waiting.
    assert [(o.call_id, o.agents) for o in d.decide(9)] == [("x", ("b",))]


def test_ring_timeout_and_away_rule_via_dispatcher() -> None:
    d = Dispatcher()
    d.add_agent(Agent("a", 0, AgentConfig(ring_timeout=15, max_no_answers=2), registered=True))
    d.agent_input("a", ag.set_online(), 0)
    d.add_queue(QueueConfig("q", Strategy.in_turn, {"a": 1}))
    d.enter("q", "x", 0)
    d.decide(0)
    assert d.next_deadline() == 15
    d.handle_timer(15)
    assert d.offer_of("x") == frozenset() and d.position("x") == 1
    d.decide(15)
    d.handle_timer(30)
    assert d.agents["a"].status is Status.away
    assert any(isinstance(e, SupervisorAlert) for e in d.events())
    assert d.decide(31) == []


def test_abandon_while_ringing_releases_agents_and_records_wait() -> None:
    d = build(Strategy.all_at_once, "ab")
    d.enter("q", "x", 10)
    d.decide(10)
    d.events()
    d.abandon("x", 17.5)
    assert {d.agents[n].status for n in "ab"} == {Status.online}
    (fact,) = facts_of(d.events())
    assert (fact.kind, fact.wait) == (FactKind.abandoned, 7.5)
    with pytest.raises(Exception, match="no queue"):
        d.abandon("x", 18)


def test_callback_keeps_place_and_is_offered_flagged() -> None:
    d = build(Strategy.in_turn, "a", callback_digit="1", exit_digit="0")
    d.agent_input("a", ag.set_dnd(), 0)
    for i, c in enumerate(["x", "y", "z"]):
        d.enter("q", c, float(i))
    d.digit("y", "1", 5)
    d.digit("z", "0", 6)
    assert d.position("y") == 2
    evs = d.events()
    assert [e.reason for e in evs if isinstance(e, Overflow)] == [OverflowReason.exit_digit]
    assert FactKind.callback_requested in {f.kind for f in facts_of(evs)}
    d.agent_input("a", ag.set_online(), 7)
    (o,) = d.decide(7)
    serve(d, o, "a", 8)
    (o,) = d.decide(9)
    assert (o.call_id, o.is_callback, o.wait) == ("y", True, 8)
    with pytest.raises(QueueError):
        d.request_callback("y", 9)


def test_handle_time_feeds_estimated_wait() -> None:
    d = build(Strategy.in_turn, "ab", initial_handle_time=100, handle_time_weight=0.5)
    d.enter("q", "x", 0)
    d.decide(0)
    d.agent_input("a", ag.answered("x"), 10)
    d.agent_input("a", ag.call_ended("x"), 310)
    assert d.queues["q"].handle_time == 200
    for c in "pqr":
        d.enter("q", c, 320)
    assert d.queues["q"].serving == 2
    assert d.estimated_wait("r") == 3 * 200 / 2
    d.agent_input("a", ag.set_dnd(), 321)
    assert d.estimated_wait("r") == 3 * 200
    d.agent_input("b", ag.set_break("x"), 321)
    assert d.estimated_wait("r") is None  # nobody serving: unknown, not zero


def test_offers_only_come_from_decide() -> None:
    d = build(Strategy.in_turn, "a")
    d.agent_input("a", ag.offered("rogue"), 1)
    assert d.agents["a"].status is Status.online
    (err,) = d.events()
    assert isinstance(err, ag.AgentProtocolError) and err.input is ag.Input.offered


def test_queue_strategies_mirror_ring_group_strategies() -> None:
    from zvonar.routing.strategies import Strategy as RingStrategy

    assert {s.value for s in Strategy} == {s.value for s in RingStrategy} - {"weighted_random"}


def test_decisions_touch_only_the_heads() -> None:
    # 2,000 waiting callers and one free agent: one decide makes exactly one offer, to the
    # oldest highest-priority caller, and leaves the rest in order.
    d = build(Strategy.round_robin, "a")
    for i in range(2000):
        d.enter("q", f"c{i}", float(i), priority=1 if i == 1500 else 0)
    (o,) = d.decide(3000)
    assert (o.call_id, o.priority, o.wait) == ("c1500", 1, 1500)
    assert d.position("c0") == 1 and d.position("c1999") == 1999


def test_retry_later_holds_a_callback_out_of_offers_then_back_in_its_place() -> None:
    """A callback whose customer was not reached: the agent is free at once, the caller is
    offered again only at the retry time, ahead of those who joined after them."""
    d = build(Strategy.in_turn, "a", callback_digit="1")
    d.enter("q", "y", 0)
    d.digit("y", "1", 1)
    (o,) = d.decide(2)
    assert o.call_id == "y"
    d.retry_later("y", 32)  # while it rings: applies once nobody rings for it
    d.agent_input("a", ag.call_ended("y"), 3)  # the agent answered; the customer did not
    assert d.agents["a"].status is Status.online
    assert d.held_until("y") == 32 and d.position("y") is None
    d.enter("q", "z", 4)
    assert d.position("z") == 1
    assert d.next_deadline() == 32
    (o,) = d.decide(5)
    assert o.call_id == "z"  # the agent serves the next caller meanwhile
    serve(d, o, "a", 6)
    d.enter("q", "w", 7)
    d.handle_timer(31.9)
    assert d.held_until("y") == 32 and d.position("y") is None
    d.handle_timer(32)
    assert d.held_until("y") is None and d.position("y") == 1 and d.position("w") == 2
    assert d.next_deadline() is None
    (o,) = d.decide(33)
    assert (o.call_id, o.is_callback, o.wait) == ("y", True, 33)


def test_retry_later_of_a_waiting_caller_and_abandon_while_held() -> None:
    d = build(Strategy.in_turn, "a", callback_digit="1")
    d.agent_input("a", ag.set_dnd(), 0)
    d.enter("q", "y", 0)
    d.digit("y", "1", 1)
    d.retry_later("y", 50)
    d.agent_input("a", ag.set_online(), 2)
    assert d.decide(3) == []  # held: nobody else waits, the free agent stays free
    d.events()
    d.abandon("y", 10)
    (fact,) = facts_of(d.events())
    assert (fact.kind, fact.wait) == (FactKind.abandoned, 10)
    assert d.held_until("y") is None and d.next_deadline() is None
    d.handle_timer(60)  # the stale retry does nothing
    assert d.events() == []
    with pytest.raises(Exception, match="no queue"):
        d.retry_later("y", 70)
