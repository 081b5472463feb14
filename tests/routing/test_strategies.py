"""Ring strategies: order, skipping, round-robin memory, weighted draws with a seeded RNG."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from zvonar.routing.strategies import MemberState, Plan, Presence, Strategy, plan

T0 = datetime(2024, 3, 15, 9, 0, tzinfo=UTC)


def keys(p: Plan) -> list[list[str]]:
    return [[m.key for m in w.members] for w in p.waves]


def run(members: list[MemberState], strategy: Strategy, **kw: object) -> Plan:
    rng = kw.pop("rng", random.Random(1))
    return plan(members, strategy, rng=rng, ring_timeout=30, member_timeout=15, **kw)  # type: ignore[arg-type]


A, B, C, D = (MemberState(k) for k in "abcd")


def test_all_at_once_is_one_wave_without_unavailable() -> None:
    busy = MemberState("b", Presence.busy)
    off = MemberState("c", Presence.unregistered)
    p = run([A, busy, off, D], Strategy.all_at_once)
    assert keys(p) == [["a", "d"]] and p.waves[0].timeout == 30
    assert run([busy, off], Strategy.all_at_once).waves == ()


def test_in_turn_one_per_wave_with_own_timeouts() -> None:
    slow = MemberState("c", timeout=40)
    p = run([A, MemberState("b", Presence.busy), slow], Strategy.in_turn)
    assert keys(p) == [["a"], ["c"]]
    assert [w.timeout for w in p.waves] == [15, 40]


def test_round_robin_remembers_across_calls() -> None:
    members = [A, B, C]
    firsts = []
    pointer = 0
    for _ in range(4):
        p = run(members, Strategy.round_robin, pointer=pointer)
        firsts.append(keys(p)[0][0])
        pointer = p.pointer
    assert firsts == ["a", "b", "c", "a"]
    # B is busy on the second call: C goes first and the next call starts after C.
    p1 = run(members, Strategy.round_robin, pointer=0)
    p2 = run([A, MemberState("b", Presence.busy), C], Strategy.round_robin, pointer=p1.pointer)
    assert keys(p2) == [["c"], ["a"]]
    assert keys(run(members, Strategy.round_robin, pointer=p2.pointer))[0] == ["a"]


def test_least_recent_and_fewest_calls() -> None:
    from datetime import timedelta

    m = [
        MemberState("a", last_call_end=T0, calls_today=5),
        MemberState("b", last_call_end=T0 - timedelta(hours=1), calls_today=2),
        MemberState("c", last_call_end=None, calls_today=9),
        MemberState("d", last_call_end=T0 - timedelta(minutes=5), calls_today=2),
    ]
    assert keys(run(m, Strategy.least_recent)) == [["c"], ["b"], ["d"], ["a"]]
    assert keys(run(m, Strategy.fewest_calls)) == [["b"], ["d"], ["a"], ["c"]]


def test_random_is_a_permutation_driven_by_the_rng() -> None:
    m = [A, B, C, D]
    one = keys(run(m, Strategy.random, rng=random.Random(7)))
    assert sorted(x[0] for x in one) == ["a", "b", "c", "d"]
    assert one == keys(run(m, Strategy.random, rng=random.Random(7)))
    firsts = {keys(run(m, Strategy.random, rng=random.Random(s)))[0][0] for s in range(40)}
    assert firsts == {"a", "b", "c", "d"}


def test_weighted_random_distribution() -> None:
    m = [MemberState("a", weight=1), MemberState("b", weight=3), MemberState("c", weight=6)]
    rng = random.Random(42)
    n = 5000
    firsts = Counter(keys(run(m, Strategy.weighted_random, rng=rng))[0][0] for _ in range(n))
    for key, share in (("a", 0.1), ("b", 0.3), ("c", 0.6)):
        assert abs(firsts[key] / n - share) < 0.03, firsts
    # Every member still gets a turn after the first.
    assert sorted(keys(run(m, Strategy.weighted_random))) == [["a"], ["b"], ["c"]]


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_member_in_do_not_disturb_is_never_rung(strategy: Strategy) -> None:
    dnd = MemberState("b", Presence.dnd)
    assert [k for wave in keys(run([A, dnd, C], strategy)) for k in wave] in (
        ["a", "c"],
        ["c", "a"],
    )
    # Unlike a busy one (call waiting: their phone's choice), not even as the step's only member.
    assert run([dnd], strategy).waves == ()
    assert keys(run([MemberState("b", Presence.busy)], strategy)) == [["b"]]
