"""Supervisor actions in the pure dispatcher: move a waiting caller, offer one directly."""

from __future__ import annotations

import pytest

from zvonar.acd import agents as ag
from zvonar.acd.agents import Agent, AgentConfig, Status
from zvonar.acd.dispatcher import (
    AgentUnavailable,
    CallBeingOffered,
    Dispatcher,
    Offer,
    QueueFull,
    facts_of,
)
from zvonar.acd.facts import FactKind
from zvonar.acd.queue import QueueConfig, QueueError, Strategy
from zvonar.core.errors import NotFound


def build() -> Dispatcher:
    """Queue ``a`` served by agent x, queue ``b`` by agent y; both agents offline at first."""
    d = Dispatcher(seed=1)
    for n in "xy":
        d.add_agent(Agent(n, 0.0, AgentConfig(), registered=True))
    d.add_queue(QueueConfig("a", Strategy.in_turn, {"x": 1}))
    d.add_queue(QueueConfig("b", Strategy.in_turn, {"y": 1, "z": 2}, escalation={2: 100}))
    d.events()
    return d


def online(d: Dispatcher, agent: str, now: float) -> None:
    d.agent_input(agent, ag.set_online(), now)


def test_move_keeps_the_entry_time_and_goes_behind_the_target_line() -> None:
    d = build()
    d.enter("b", "early", 5.0)
    d.enter("a", "c1", 10.0, priority=1)
    d.enter("b", "late", 20.0, priority=1)
    d.events()
    d.move("c1", "b", 30.0)
    assert "c1" not in d.queues["a"] and d.queue_of("c1").id == "b"
    moved = d.queues["b"].caller("c1")
    assert moved.entered_at == 10.0 and moved.priority == 1
    # Priority lane first, behind the priority caller already there; then the normal lane.
    assert [d.position(c) for c in ("late", "c1", "early")] == [1, 2, 3]
    facts = facts_of(d.events())
    assert [(f.kind, f.queue_id, f.call_id, f.priority) for f in facts] == [
        (FactKind.entered, "b", "c1", 1)
    ]
    d.abandon("late", 31.0)
    d.events()
    online(d, "y", 40.0)
    (offer,) = d.decide(40.0)
    assert offer.call_id == "c1" and offer.wait == 30.0  # counted from 10, not 30
    d.agent_input("y", ag.answered("c1"), 41.0)
    (answered,) = [f for f in facts_of(d.events()) if f.kind is FactKind.answered]
    assert answered.queue_id == "b" and answered.wait == 31.0 and answered.agent_id == "y"


def test_moved_caller_escalates_on_their_whole_wait() -> None:
    d = build()
    d.add_agent(Agent("z", 0.0, registered=True))
    d.agent_input("z", ag.set_online(), 0.0)
    d.enter("a", "c1", 0.0)
    d.move("c1", "b", 99.0)
    assert d.decide(99.0) == []  # level 2 opens after 100 s of waiting
    (offer,) = d.decide(100.0)
    assert offer.agents == ("z",) and offer.level == 2


def test_move_refusals_change_nothing() -> None:
    d = build()
    online(d, "x", 0.0)
    d.enter("a", "ringing", 1.0)
    d.decide(1.0)
    d.enter("a", "c2", 2.0)
    d.events()
    with pytest.raises(CallBeingOffered) as e:
        d.move("ringing", "b", 3.0)
    assert e.value.code == "call_being_offered"
    with pytest.raises(NotFound) as nf:
        d.move("c2", "nowhere", 3.0)
    assert nf.value.code == "queue_not_found"
    with pytest.raises(NotFound):
        d.move("ghost", "b", 3.0)
    with pytest.raises(QueueError) as same:
        d.move("c2", "a", 3.0)
    assert same.value.code == "same_queue"
    d.add_queue(QueueConfig("full", max_length=0))
    with pytest.raises(QueueFull) as full:
        d.move("c2", "full", 3.0)
    assert full.value.code == "queue_full"
    assert d.queue_of("c2").id == "a" and d.position("c2") == 1
    assert d.offer_of("ringing") == {"x"} and d.events() == []


def test_moved_callback_stays_a_callback() -> None:
    d = build()
    d.enter("a", "cb", 1.0)
    d.request_callback("cb", 2.0)
    d.move("cb", "b", 3.0)
    online(d, "y", 4.0)
    (offer,) = d.decide(4.0)
    assert offer.is_callback and offer.wait == 3.0


def test_direct_offer_skips_the_strategy_and_gives_back_the_place() -> None:
    d = build()
    d.add_agent(Agent("w", 0.0, registered=True))
    d.remove_queue("a")
    d.add_queue(QueueConfig("a", Strategy.in_turn, {"x": 1, "w": 1}))
    online(d, "w", 0.0)
    d.enter("a", "c1", 1.0)
    d.enter("a", "c2", 2.0)
    d.events()
    offer = d.direct_offer("c2", "w", 3.0)
    assert offer == Offer("a", "c2", ("w",), 1, False, 0, 1.0, 3.0)
    assert d.agents["w"].status is Status.ringing and d.position("c2") is None
    assert d.decide(3.0) == []  # w is reserved, x offline: nobody else for c1
    with pytest.raises(CallBeingOffered):
        d.direct_offer("c2", "x", 3.5)
    d.agent_input("w", ag.no_answer("c2"), 10.0)
    assert d.position("c1") == 1 and d.position("c2") == 2
    (next_offer,) = d.decide(10.0)
    assert next_offer.call_id == "c1" and next_offer.agents == ("w",)


def test_direct_offer_to_somebody_in_no_queue() -> None:
    d = build()
    d.enter("a", "c1", 1.0)
    d.events()
    offer = d.direct_offer("c1", "boss", 5.0, AgentConfig(wrapup_seconds=0))
    assert offer.agents == ("boss",) and offer.level == 0 and offer.wait == 4.0
    boss = d.agents["boss"]
    assert boss.status is Status.ringing and boss.registered
    d.agent_input("boss", ag.answered("c1"), 6.0)
    facts = facts_of(d.events())
    assert [(f.kind, f.agent_id, f.wait) for f in facts] == [(FactKind.answered, "boss", 5.0)]
    d.agent_input("boss", ag.call_ended("c1"), 7.0)
    # Online, but a member of nothing: queue offers never go to them.
    d.enter("a", "c2", 8.0)
    assert d.agents["boss"].status is Status.online and d.decide(8.0) == []
    d.agent_input("boss", ag.supervisor_set(Status.dnd), 9.0)
    assert d.agents["boss"].status.value == "dnd"
    d.direct_offer("c2", "boss", 10.0)  # asking for a call again brings them online
    assert d.agents["boss"].status.value == "ringing"


def test_direct_offer_needs_a_free_member() -> None:
    d = build()
    d.enter("a", "c1", 1.0)
    with pytest.raises(AgentUnavailable) as e:
        d.direct_offer("c1", "y", 2.0)  # offline member of another queue
    assert e.value.code == "agent_unavailable" and e.value.details == {"status": "offline"}
    online(d, "x", 2.0)
    d.enter("b", "c2", 2.0)
    online(d, "y", 2.0)
    d.decide(2.0)  # x rings for c1, y for c2
    d.enter("a", "c3", 3.0)
    with pytest.raises(AgentUnavailable):
        d.direct_offer("c3", "x", 3.0)
    assert d.position("c3") == 1 and d.agents["x"].call_id == "c1"
    with pytest.raises(NotFound):
        d.direct_offer("ghost", "x", 3.0)
