"""Queue order, positions, overflow, callbacks, announcements and facts."""

from __future__ import annotations

import pytest

from zvonar.acd.facts import FactKind, OverflowReason, QueueFact
from zvonar.acd.queue import Announce, Overflow, Queue, QueueConfig, QueueError


def order(q: Queue) -> list[str]:
    """Drain the queue head by head (taking each), returning call ids in service order."""
    out = []
    while (h := q.head()) is not None:
        q.take(h.call_id)
        out.append(h.call_id)
    return out


def test_fifo_within_priority_and_higher_priority_first() -> None:
    q = Queue(QueueConfig("q"))
    for i, prio in enumerate([0, 0, 5, 0, 5, 1]):
        q.enter(f"c{i}", float(i), prio)
    assert [q.position(f"c{i}") for i in range(6)] == [4, 5, 1, 6, 2, 3]
    assert order(q) == ["c2", "c4", "c5", "c0", "c1", "c3"]


def test_entering_records_a_fact_and_duplicates_are_refused() -> None:
    q = Queue(QueueConfig("q"))
    assert q.enter("c1", 3.0, 2) == [QueueFact(FactKind.entered, "q", "c1", 3.0, priority=2)]
    with pytest.raises(QueueError):
        q.enter("c1", 4.0)


def test_max_length_refuses_at_entry() -> None:
    q = Queue(QueueConfig("q", max_length=2))
    q.enter("a", 0)
    q.enter("b", 0)
    events = q.enter("c", 1.0)
    assert events == [
        Overflow("q", "c", OverflowReason.max_length, 0.0, 1.0),
        QueueFact(FactKind.overflowed, "q", "c", 1.0, 0.0, OverflowReason.max_length),
    ]
    assert "c" not in q and len(q) == 2


def test_max_wait_overflows_exactly_on_time() -> None:
    q = Queue(QueueConfig("q", max_wait=60))
    q.enter("a", 10.0)
    q.enter("b", 25.0, priority=9)
    assert q.next_deadline() == 70.0
    assert q.handle_timer(69.999) == []
    ev = q.handle_timer(70.0)
    assert ev == [
        Overflow("q", "a", OverflowReason.max_wait, 60.0, 70.0),
        QueueFact(FactKind.overflowed, "q", "a", 70.0, 60.0, OverflowReason.max_wait),
    ]
    assert q.next_deadline() == 85.0
    assert [type(e) for e in q.handle_timer(85.0)] == [Overflow, QueueFact]
    assert len(q) == 0 and q.next_deadline() is None


def test_caller_being_offered_overflows_when_given_back_late() -> None:
    q = Queue(QueueConfig("q", max_wait=30))
    q.enter("a", 0.0)
    q.take("a")
    assert q.handle_timer(31.0) == []  # ringing an agent: not cut
    ev = q.give_back("a", 35.0)
    assert ev[0] == Overflow("q", "a", OverflowReason.max_wait, 35.0, 35.0)
    assert "a" not in q


def test_abandon_records_its_wait_from_any_place() -> None:
    q = Queue(QueueConfig("q"))
    q.enter("a", 1.0)
    q.enter("b", 2.0)
    q.enter("c", 3.0)
    assert q.abandon("b", 12.5) == QueueFact(FactKind.abandoned, "q", "b", 12.5, 10.5)
    assert q.position("c") == 2
    q.take("a")
    assert q.abandon("a", 20.0).wait == 19.0
    assert order(q) == ["c"]


def test_given_back_caller_returns_to_the_same_place() -> None:
    q = Queue(QueueConfig("q"))
    for i in range(5):
        q.enter(f"c{i}", float(i))
    q.take("c0")
    q.take("c1")
    q.give_back("c1", 9.0)
    q.give_back("c0", 9.0)
    assert [q.position(f"c{i}") for i in range(5)] == [1, 2, 3, 4, 5]


def test_callback_keeps_its_place_and_never_overflows() -> None:
    q = Queue(QueueConfig("q", max_wait=100))
    for i in range(3):
        q.enter(f"c{i}", float(i))
    fact = q.request_callback("c1", 50.0)
    assert fact == QueueFact(FactKind.callback_requested, "q", "c1", 50.0)
    assert q.caller("c1").is_callback
    assert q.position("c1") == 2
    ev = q.handle_timer(500.0)
    assert [e.call_id for e in ev if isinstance(e, Overflow)] == ["c0", "c2"]
    assert order(q) == ["c1"]
    assert q.answered("c1", 600.0, "agent").wait == 599.0
    q.enter("x", 601.0)
    q.request_callback("x", 601.0)
    with pytest.raises(QueueError):
        q.request_callback("x", 602.0)


def test_exit_digit_overflows_with_its_reason() -> None:
    q = Queue(QueueConfig("q"))
    q.enter("a", 0.0)
    ev = q.exit("a", 7.0)
    assert ev[0] == Overflow("q", "a", OverflowReason.exit_digit, 7.0, 7.0)


def test_announcements_repeat_with_position_and_estimate() -> None:
    q = Queue(QueueConfig("q", announce_interval=30, initial_handle_time=120), serving=2)
    q.enter("a", 0.0)
    q.enter("b", 10.0)
    assert q.next_deadline() == 30.0
    assert q.handle_timer(30.0) == [Announce("q", "a", 1, 60.0, 30.0)]
    assert q.next_deadline() == 40.0
    assert q.handle_timer(40.0) == [Announce("q", "b", 2, 120.0, 40.0)]
    q.request_callback("b", 41.0)  # a callback hears nothing
    assert q.handle_timer(70.0) == [Announce("q", "a", 1, 60.0, 70.0)]
    assert q.next_deadline() == 90.0


def test_estimated_wait_follows_the_handle_time_average() -> None:
    q = Queue(QueueConfig("q", initial_handle_time=100, handle_time_weight=0.5))
    assert q.estimated_wait(3) is None  # nobody serving: unknown, not zero
    q.serving = 4
    q.record_handle_time(200)
    assert q.handle_time == 150
    assert q.estimated_wait(4) == 150


def test_escalation_deadline_is_announced_for_the_head() -> None:
    q = Queue(QueueConfig("q", tiers={"a": 1, "b": 2, "c": 3}, escalation={2: 20, 3: 45}))
    q.enter("x", 100.0)
    head = q.head()
    assert head is not None
    assert q.levels_open(head, 119.0) == 1
    assert q.levels_open(head, 120.0) == 2
    assert q.levels_open(head, 145.0) == 3
    assert q.next_deadline() == 120.0
    q.handle_timer(120.0)
    assert q.next_deadline() == 145.0
    q.handle_timer(145.0)
    assert q.next_deadline() is None


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        QueueConfig("q", tiers={"a": 0})
    with pytest.raises(ValueError):
        QueueConfig("q", escalation={2: -1})
