"""The agent state machine: the whole (status × input) table, timers, no-answer rule, intervals."""

from __future__ import annotations

import pytest

from zvonar.acd import agents as ag
from zvonar.acd.agents import (
    Agent,
    AgentConfig,
    AgentInput,
    AgentProtocolError,
    Input,
    Status,
    StatusChanged,
    StatusInterval,
    SupervisorAlert,
)

S = Status


def make(status: Status, *, now: float = 0.0) -> Agent:
    """An agent brought into ``status`` through ordinary inputs (registered unless unreachable)."""
    a = Agent("a1", now, AgentConfig(wrapup_seconds=10, max_no_answers=3), registered=True)
    steps: dict[Status, list[AgentInput]] = {
        S.offline: [],
        S.online: [ag.set_online()],
        S.dnd: [ag.set_dnd()],
        S.on_break: [ag.set_break("lunch")],
        S.away: [ag.supervisor_set(S.away, "check")],
        S.unreachable: [ag.DEVICES_UNREGISTERED, ag.set_online()],
        S.ringing: [ag.set_online(), ag.offered("c1")],
        S.on_call: [ag.set_online(), ag.offered("c1"), ag.answered("c1")],
        S.wrap_up: [ag.set_online(), ag.offered("c1"), ag.answered("c1"), ag.call_ended("c1")],
    }
    for inp in steps[status]:
        events = a.handle(inp, now)
        assert not [e for e in events if isinstance(e, AgentProtocolError)]
    assert a.status is status
    return a


INPUTS: dict[Input, AgentInput] = {
    Input.set_online: ag.set_online(),
    Input.set_offline: ag.set_offline(),
    Input.set_dnd: ag.set_dnd(),
    Input.set_break: ag.set_break("lunch"),
    Input.offered: ag.offered("c2"),
    Input.answered: ag.answered("c1"),
    Input.call_ended: ag.call_ended("c1"),
    Input.wrapup_elapsed: ag.WRAPUP_ELAPSED,
    Input.no_answer: ag.no_answer("c1"),
    Input.devices_registered: ag.DEVICES_REGISTERED,
    Input.devices_unregistered: ag.DEVICES_UNREGISTERED,
    Input.supervisor_set: ag.supervisor_set(S.dnd),
}
E = None  # protocol error expected
# Columns follow INPUTS' order:
# online offline dnd break offered answered ended wrapup no_answer reg unreg supervisor(dnd)
EXPECTED: dict[Status, tuple[Status | None, ...]] = {
    S.offline: (S.online, S.offline, S.dnd, S.on_break, E, E, E, E, E, S.offline, S.offline, S.dnd),
    S.online: (
        S.online, S.offline, S.dnd, S.on_break, S.ringing, S.on_call, E, E, E,
        S.online, S.unreachable, S.dnd,
    ),
    S.dnd: (S.online, S.offline, S.dnd, S.on_break, E, S.on_call, E, E, E, S.dnd, S.dnd, S.dnd),
    S.on_break: (
        S.online, S.offline, S.dnd, S.on_break, E, S.on_call, E, E, E,
        S.on_break, S.on_break, S.dnd,
    ),
    S.away: (S.online, S.offline, S.dnd, S.on_break, E, S.on_call, E, E, E, S.away, S.away, S.dnd),
    S.unreachable: (
        S.unreachable, S.offline, S.dnd, S.on_break, E, E, E, E, E,
        S.online, S.unreachable, S.dnd,
    ),
    S.ringing: (
        S.ringing, S.ringing, S.ringing, S.ringing, E, S.on_call, S.online, E, S.online,
        S.ringing, S.ringing, S.ringing,
    ),
    S.on_call: (
        S.on_call, S.on_call, S.on_call, S.on_call, E, E, S.wrap_up, E, E,
        S.on_call, S.on_call, S.on_call,
    ),
    S.wrap_up: (
        S.online, S.offline, S.dnd, S.on_break, S.ringing, S.on_call, E, S.online, E,
        S.wrap_up, S.wrap_up, S.dnd,
    ),
}  # fmt: skip


CASES = [(status, kind, EXPECTED[status][i]) for status in Status for i, kind in enumerate(INPUTS)]


@pytest.mark.parametrize(("status", "kind", "expected"), CASES)
def test_every_status_by_every_input(status: Status, kind: Input, expected: Status | None) -> None:
    a = make(status)
    before = (a.status, a.call_id, a.presence, a.no_answers, a.since)
    events = a.handle(INPUTS[kind], 5.0)
    errors = [e for e in events if isinstance(e, AgentProtocolError)]
    if expected is None:
        assert errors == [AgentProtocolError("a1", status, kind, "no transition", 5.0)]
        assert (a.status, a.call_id, a.presence, a.no_answers, a.since) == before
    else:
        assert errors == []
        assert a.status is expected
        assert ((status, kind) in ag.TABLE) is True


def test_table_covers_exactly_the_expected_pairs() -> None:
    allowed = {(s, k) for s, k, exp in CASES if exp is not None}
    assert set(ag.TABLE) == allowed


def test_bad_input_data_is_a_protocol_error_not_an_exception() -> None:
    a = make(S.online)
    assert isinstance(a.handle(ag.supervisor_set(S.on_call), 1)[0], AgentProtocolError)
    assert isinstance(a.handle(AgentInput(Input.set_break), 1)[0], AgentProtocolError)
    assert isinstance(a.handle(AgentInput(Input.offered), 1)[0], AgentProtocolError)
    a.handle(ag.offered("c1"), 1)
    assert isinstance(a.handle(ag.answered("other"), 2)[0], AgentProtocolError)
    assert a.status is S.ringing and a.call_id == "c1"


def test_wrap_up_lasts_exactly_n_seconds() -> None:
    a = Agent("a1", 0.0, AgentConfig(wrapup_seconds=30), registered=True)
    a.handle(ag.set_online(), 0.0)
    a.handle(ag.offered("c1"), 10.0)
    a.handle(ag.answered("c1"), 12.0)
    assert a.next_deadline() is None
    a.handle(ag.call_ended("c1"), 100.0)
    assert a.status is S.wrap_up and a.next_deadline() == 130.0
    assert not a.available(129.0)
    assert a.handle_timer(129.999) == []
    events = a.handle_timer(130.0)
    assert a.status is S.online and a.available(130.0)
    assert StatusInterval("a1", S.wrap_up, None, 100.0, 130.0) in events
    assert a.next_deadline() is None
    assert a.last_call_end == 100.0 and a.calls_taken == 1


def test_without_wrap_up_the_agent_is_online_at_once() -> None:
    a = make(S.on_call)
    a.config = AgentConfig(wrapup_seconds=0)
    a.handle(ag.call_ended("c1"), 3.0)
    assert a.status is S.online


def test_ring_timeout_reports_no_answer() -> None:
    a = Agent("a1", 0.0, AgentConfig(ring_timeout=20), registered=True)
    a.handle(ag.set_online(), 0.0)
    a.handle(ag.offered("c1"), 5.0)
    assert a.next_deadline() == 25.0
    a.handle_timer(25.0)
    assert a.status is S.online and a.no_answers == 1


def test_n_no_answers_in_a_row_set_away_and_alert() -> None:
    a = Agent("a1", 0.0, AgentConfig(max_no_answers=3), registered=True)
    a.handle(ag.set_online(), 0.0)
    t = 1.0
    for _ in range(2):
        a.handle(ag.offered("c"), t)
        ev = a.handle(ag.no_answer("c"), t + 1)
        assert not any(isinstance(e, SupervisorAlert) for e in ev)
        t += 2
    # An answered call resets the streak.
    a.handle(ag.offered("c"), t)
    a.handle(ag.answered("c"), t + 1)
    a.handle(ag.call_ended("c"), t + 2)
    assert a.no_answers == 0
    t += 3
    for _ in range(3):
        a.handle(ag.offered("c"), t)
        ev = a.handle(ag.no_answer("c"), t + 1)
        t += 2
    assert a.status is S.away and a.reason == "no_answer"
    assert SupervisorAlert("a1", "no_answer", 3, t - 1) in ev
    a.handle(ag.set_online(), t)
    assert a.status is S.online and a.no_answers == 0


def test_presence_change_during_call_applies_after_it() -> None:
    a = make(S.on_call)
    a.handle(ag.set_break("lunch"), 1.0)
    assert a.status is S.on_call
    a.handle(ag.call_ended("c1"), 2.0)
    assert a.status is S.wrap_up
    a.handle_timer(12.0)
    assert (a.status, a.reason) == (S.on_break, "lunch")


def test_lost_devices_make_an_online_agent_unreachable_until_they_return() -> None:
    a = make(S.online)
    a.handle(ag.DEVICES_UNREGISTERED, 1.0)
    assert a.status is S.unreachable and not a.available(1.0)
    a.handle(ag.DEVICES_REGISTERED, 2.0)
    assert a.status is S.online and a.available(2.0)


def test_intervals_chain_and_carry_reasons() -> None:
    a = Agent("a1", 0.0, registered=True)
    out: list[object] = []
    out += a.handle(ag.set_online(), 10.0)
    out += a.handle(ag.set_break("lunch"), 25.0)
    out += a.handle(ag.set_break("training"), 40.0)  # a new reason is a new interval
    out += a.handle(ag.set_offline(), 70.0)
    intervals = [e for e in out if isinstance(e, StatusInterval)]
    assert intervals == [
        StatusInterval("a1", S.offline, None, 0.0, 10.0),
        StatusInterval("a1", S.online, None, 10.0, 25.0),
        StatusInterval("a1", S.on_break, "lunch", 25.0, 40.0),
        StatusInterval("a1", S.on_break, "training", 40.0, 70.0),
    ]
    assert a.open_interval(80.0) == StatusInterval("a1", S.offline, None, 70.0, 80.0)
    changes = [e for e in out if isinstance(e, StatusChanged)]
    assert [c.new for c in changes] == [S.online, S.on_break, S.on_break, S.offline]


def test_two_changes_at_one_instant_leave_no_empty_interval() -> None:
    a = Agent("a1", 0.0, registered=True)
    a.handle(ag.set_online(), 5.0)
    ev = a.handle(ag.set_dnd(), 5.0)
    assert not [e for e in ev if isinstance(e, StatusInterval)]
    ev = a.handle(ag.set_online(), 9.0)
    assert [e for e in ev if isinstance(e, StatusInterval)] == [
        StatusInterval("a1", S.dnd, None, 5.0, 9.0)
    ]
