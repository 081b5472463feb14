"""The step-chain interpreter: the seeds' chain, moving on, goto, caller rules, HTTP routes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zvonar.core.errors import InvalidInput
from zvonar.routing.engine import (
    Abandoned,
    CallContext,
    Connected,
    GroupInfo,
    Hangup,
    HttpRequest,
    Outcome,
    OutcomeKind,
    Play,
    Ring,
    SchemeRun,
    Voicemail,
)
from zvonar.routing.errors import RoutingStateError
from zvonar.routing.schedule import WorkCalendar
from zvonar.routing.scheme import Scheme, validate_library
from zvonar.routing.scheme_codec import scheme_from_dict, scheme_to_dict
from zvonar.routing.strategies import MemberState, Presence, Strategy

WORKING = datetime(2024, 3, 15, 10, 0, tzinfo=UTC)  # Friday 13:00 Moscow
NIGHT = datetime(2024, 3, 15, 20, 0, tzinfo=UTC)
CAL = WorkCalendar(tz="Europe/Moscow")
OUT = OutcomeKind

SEEDS: dict[str, Any] = {
    "Main": {
        "branches": {
            "working": [
                {
                    "type": "ring",
                    "label": "Office",
                    "targets": [{"employee": "100"}],
                    "timeout": 20,
                },
                {"type": "ring", "targets": [{"group": "Managers' mobiles"}]},
                {"type": "ring", "label": "Head of sales", "targets": [{"employee": "105"}]},
                {"type": "goto", "scheme": "Shop"},
            ],
            "off": [{"type": "voicemail", "greeting": "closed", "notify": ["Boss@Example.com"]}],
        }
    },
    "Shop": {
        "branches": {"working": [{"type": "ring", "targets": [{"number": "+74951112233"}]}]},
        "final": {"type": "hangup"},
    },
}


def library(data: dict[str, Any]) -> dict[str, Scheme]:
    schemes = {name: scheme_from_dict(name, d) for name, d in data.items()}
    validate_library(schemes)
    return schemes


def context(schemes: dict[str, Scheme], **kw: Any) -> CallContext:
    presence = {
        f"employee:{ext}": MemberState(f"employee:{ext}")
        for ext in ("100", "101", "102", "105", "201", "202")
    }
    presence.update(kw.pop("presence", {}))
    groups = {
        "Managers' mobiles": GroupInfo(Strategy.all_at_once, (("101", 1), ("102", 1))),
        "Sales": GroupInfo(Strategy.in_turn, (("201", 1), ("202", 1))),
    }
    return CallContext(
        call_id="c1",
        caller="+79161234567",
        called="+74950000000",
        calendar=CAL,
        schemes=schemes,
        presence=presence,
        groups=groups,
        **kw,
    )


def ring_refs(action: Any) -> list[str]:
    assert isinstance(action, Ring), action
    return [d.ref for d in action.targets]


def test_seeds_chain_rings_in_order_and_ends_at_the_shop() -> None:
    schemes = library(SEEDS)
    run = SchemeRun(schemes["Main"], context(schemes), WORKING, rng=random.Random(1))
    first = run.next_action()
    assert ring_refs(first) == ["100"] and isinstance(first, Ring) and first.timeout == 20
    assert run.next_action() is first  # same action until an outcome comes
    now = WORKING + timedelta(seconds=20)
    run.on_outcome(Outcome(OUT.no_answer), now)
    managers = run.next_action()
    assert ring_refs(managers) == ["101", "102"] and isinstance(managers, Ring)
    assert managers.timeout == 30
    run.on_outcome(Outcome(OUT.no_answer), now)
    assert ring_refs(run.next_action()) == ["105"]
    run.on_outcome(Outcome(OUT.busy), now)  # busy head of sales: move on, never a busy tone
    shop = run.next_action()
    assert isinstance(shop, Ring) and shop.targets[0].kind.value == "number"
    assert shop.targets[0].ref == "+74951112233"
    run.on_outcome(Outcome(OUT.answered, answered_by="number:+74951112233"), now)
    assert run.finished and run.next_action() == Connected("number:+74951112233")
    assert run.describe() == (
        "Main: working → ring Office (20s) [no_answer] → ring Managers' mobiles [no_answer]"
        " → ring Head of sales [busy] → go to Shop → Shop: working → ring +74951112233 [answered]"
    )
    with pytest.raises(RoutingStateError):
        run.on_outcome(Outcome(OUT.answered), now)


def test_nobody_answers_ends_with_final_step() -> None:
    schemes = library(SEEDS)
    run = SchemeRun(schemes["Main"], context(schemes), WORKING)
    actions = []
    while not run.finished:
        action = run.next_action()
        actions.append(action)
        if not run.finished:
            run.on_outcome(Outcome(OUT.unavailable), WORKING)
    assert isinstance(actions[-1], Hangup)  # the Shop scheme's final step
    assert sum(isinstance(a, Ring) for a in actions) == 4


def test_off_hours_branch_and_default_voicemail() -> None:
    schemes = library(SEEDS)
    run = SchemeRun(schemes["Main"], context(schemes), NIGHT)
    assert run.next_action() == Voicemail("closed", ("boss@example.com",))
    assert run.path[0].text == "Main: off"
    # A scheme without off steps rings its working steps at night ("holiday" falls back too).
    shop = SchemeRun(schemes["Shop"], context(schemes), NIGHT)
    assert ring_refs(shop.next_action()) == ["+74951112233"]
    assert shop.path[0].text == "Shop: off (as working)"


def test_unavailable_members_are_skipped_and_empty_steps_pass() -> None:
    schemes = library(SEEDS)
    presence = {
        "employee:100": MemberState("employee:100", Presence.unregistered),
        "employee:101": MemberState("employee:101", Presence.busy),
        "employee:102": MemberState("employee:102", Presence.busy),
    }
    run = SchemeRun(schemes["Main"], context(schemes, presence=presence), WORKING)
    assert ring_refs(run.next_action()) == ["105"]
    assert [h.outcome for h in run.path[1:3]] == ["nobody available", "nobody available"]


def _one_ring(step: dict[str, Any]) -> Ring:
    schemes = library({"S": {"branches": {"working": [{"type": "ring", **step}]}}})
    ring = SchemeRun(schemes["S"], context(schemes), WORKING).next_action()
    assert isinstance(ring, Ring)
    return ring


def test_all_at_once_targets_keep_their_own_timeouts_within_the_step() -> None:
    """Rung together, each target keeps its own timeout, and the step's caps them all: 101
    rings 4 s, 102 the step's 8 s (not its own 12), and the step lasts 8 s, not 12."""
    own = [{"employee": "101", "timeout": 4}, {"employee": "102", "timeout": 12}]
    capped = _one_ring({"targets": own, "timeout": 8})
    assert capped.timeout == 8
    assert [(d.ref, d.timeout) for d in capped.targets] == [("101", 4), ("102", 8)]
    # No step timeout: the step lasts as long as its longest target; one without a timeout
    # of its own rings the default 30 s.
    free = _one_ring({"targets": [{"employee": "101", "timeout": 45}, {"employee": "102"}]})
    assert free.timeout == 45
    assert [(d.ref, d.timeout) for d in free.targets] == [("101", 45), ("102", 30)]
    short = _one_ring({"targets": [{"employee": "101", "timeout": 4}, {"employee": "102"}]})
    assert short.timeout == 30 and [d.timeout for d in short.targets] == [4, 30]


def test_group_strategy_and_step_cap() -> None:
    schemes = library(
        {
            "S": {
                "branches": {
                    "working": [
                        {
                            "type": "ring",
                            "targets": [{"group": "Sales"}],
                            "timeout": 25,
                            "target_timeout": 15,
                        },
                        {"type": "play", "prompt": "sorry"},
                    ]
                }
            }
        }
    )
    run = SchemeRun(schemes["S"], context(schemes), WORKING)
    a = run.next_action()
    assert ring_refs(a) == ["201"] and isinstance(a, Ring) and a.timeout == 15
    run.on_outcome(Outcome(OUT.no_answer), WORKING + timedelta(seconds=15))
    b = run.next_action()
    assert ring_refs(b) == ["202"] and isinstance(b, Ring) and b.timeout == 10  # capped at 25 s
    run.on_outcome(Outcome(OUT.no_answer), WORKING + timedelta(seconds=25))
    assert run.next_action() == Play("sorry")
    run.on_outcome(Outcome(OUT.completed), WORKING + timedelta(seconds=30))
    assert isinstance(run.next_action(), Voicemail)


def test_round_robin_memory_is_returned() -> None:
    schemes = library(
        {
            "RR": {
                "branches": {
                    "working": [
                        {"type": "ring", "targets": [{"group": "Sales"}], "strategy": "round_robin"}
                    ]
                }
            }
        }
    )
    memory: dict[str, int] = {}
    firsts = []
    for _ in range(3):
        run = SchemeRun(schemes["RR"], context(schemes, memory=memory), WORKING)
        firsts.append(ring_refs(run.next_action())[0])
        memory = {**memory, **run.memory}
    assert firsts == ["201", "202", "201"] and memory == {"group:Sales": 1}


def test_round_robin_turns_are_the_groups_across_steps_and_schemes() -> None:
    """What docs/configuration.md says: a step ringing one group takes the group's turn, which
    every step and scheme ringing it shares (a call through the menu and one straight to the
    group take turns among the same members); a list of targets keeps its own, per scheme."""
    rr = {"type": "ring", "targets": [{"group": "Sales"}], "strategy": "round_robin"}
    both = [{"employee": "201"}, {"employee": "202"}]
    listed = {"type": "ring", "targets": both, "strategy": "round_robin"}
    schemes = library(
        {
            "Line": {"branches": {"working": [rr]}},
            "Menu": {"branches": {"working": [{"type": "play", "prompt": "hi"}, rr]}},
            "ListA": {"branches": {"working": [listed]}},
            "ListB": {"branches": {"working": [listed]}},
        }
    )
    memory: dict[str, int] = {}

    def first_rung(name: str) -> str:
        nonlocal memory
        run = SchemeRun(schemes[name], context(schemes, memory=memory), WORKING)
        action = run.next_action()
        if isinstance(action, Play):
            run.on_outcome(Outcome(OUT.completed), WORKING)
            action = run.next_action()
        memory = {**memory, **run.memory}
        return ring_refs(action)[0]

    assert [first_rung(n) for n in ("Line", "Menu", "Line")] == ["201", "202", "201"]
    assert [first_rung(n) for n in ("ListA", "ListB", "ListA")] == ["201", "201", "202"]
    assert set(memory) == {
        "group:Sales",
        "ring:ListA:employee:201,employee:202",
        "ring:ListB:employee:201,employee:202",
    }


CALLER_RULES: dict[str, Any] = {
    "Rules": {
        "branches": {
            "working": [
                {
                    "type": "caller_rule",
                    "rules": [
                        {
                            "tags": ["unknown"],
                            "steps": [{"type": "ring", "targets": [{"group": "Sales"}]}],
                        },
                        {"tags": ["supplier"], "scheme": "Production"},
                    ],
                    "default": [{"type": "play", "prompt": "hello"}],
                },
                {"type": "hangup"},
            ]
        }
    },
    "Production": {"branches": {"working": [{"type": "ring", "targets": [{"employee": "105"}]}]}},
}


def test_caller_rule_by_tags() -> None:
    schemes = library(CALLER_RULES)
    unknown = SchemeRun(schemes["Rules"], context(schemes), WORKING)
    assert ring_refs(unknown.next_action()) == ["201"]
    unknown.on_outcome(Outcome(OUT.no_answer), WORKING)
    assert ring_refs(unknown.next_action()) == ["202"]
    unknown.on_outcome(Outcome(OUT.no_answer), WORKING)
    assert unknown.next_action() == Hangup()  # rule steps done, then the steps after the rule

    supplier = SchemeRun(
        schemes["Rules"],
        context(schemes, caller_known=True, caller_tags=frozenset({"supplier", "vip"})),
        WORKING,
    )
    assert ring_refs(supplier.next_action()) == ["105"]
    assert "caller rule: supplier" in supplier.describe()

    other = SchemeRun(schemes["Rules"], context(schemes, caller_known=True), WORKING)
    assert other.next_action() == Play("hello")
    other.on_outcome(Outcome(OUT.caller_gone), WORKING)
    assert other.next_action() == Abandoned()


HTTP: dict[str, Any] = {
    "Api": {
        "branches": {
            "working": [
                {
                    "type": "http_route",
                    "url": "https://crm.example/route",
                    "timeout": 2,
                    "fallback": [{"type": "ring", "targets": [{"employee": "100"}]}],
                },
                {"type": "ring", "targets": [{"employee": "105"}]},
            ]
        }
    },
    "Vip": {"branches": {"working": [{"type": "ring", "targets": [{"employee": "101"}]}]}},
}


def http_run(**kw: Any) -> SchemeRun:
    schemes = library(HTTP)
    run = SchemeRun(schemes["Api"], context(schemes, **kw), WORKING)
    req = run.next_action()
    assert isinstance(req, HttpRequest) and req.url == "https://crm.example/route"
    assert req.timeout == 2 and req.payload["caller"] == "+79161234567"
    assert req.payload["branch"] == "working" and req.payload["scheme"] == "Api"
    return run


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"scheme": "Vip"}, ["101"]),
        ({"employee": "102"}, ["102"]),
        ({"group": "Sales"}, ["201"]),
        ({"number": "+74951112233"}, ["+74951112233"]),
        ({"action": "continue"}, ["105"]),
        ({"scheme": "Nope"}, ["100"]),  # unknown names fall back
        ({"group": "Nope"}, ["100"]),
        ({"number": "12"}, ["100"]),
        ({"what": 1}, ["100"]),
        ("garbage", ["100"]),
    ],
)
def test_http_route_replies(reply: Any, expected: list[str]) -> None:
    run = http_run()
    run.on_outcome(Outcome(OUT.http_reply, payload=reply), WORKING)
    assert ring_refs(run.next_action()) == expected


def test_http_route_error_then_fallback_then_the_rest() -> None:
    run = http_run()
    run.on_outcome(Outcome(OUT.http_error), WORKING + timedelta(seconds=2))
    assert ring_refs(run.next_action()) == ["100"]
    run.on_outcome(Outcome(OUT.failed), WORKING)
    assert ring_refs(run.next_action()) == ["105"]
    hangup = http_run()
    hangup.on_outcome(Outcome(OUT.http_reply, payload={"action": "hangup"}), WORKING)
    assert hangup.next_action() == Hangup()


def test_why_the_back_office_failed_is_in_the_path() -> None:
    """The resolver names the reason (integrations/http_route.py's FallbackReason): the
    customer's integrator reads it in the journal instead of a bare http_error."""
    run = http_run()
    run.on_outcome(Outcome(OUT.http_error, payload="unsafe_target"), WORKING)
    assert "[unsafe_target]" in run.describe()
    bare = http_run()
    bare.on_outcome(Outcome(OUT.http_error), WORKING)
    assert "[http_error]" in bare.describe()


def test_outcomes_outside_the_table_are_refused() -> None:
    run = http_run()
    with pytest.raises(RoutingStateError):
        run.on_outcome(Outcome(OUT.answered), WORKING)


def test_goto_loops_are_refused_unless_they_ring_and_are_bounded() -> None:
    with pytest.raises(InvalidInput) as err:
        library(
            {
                "A": {"branches": {"working": [{"type": "goto", "scheme": "B"}]}},
                "B": {
                    "branches": {
                        "working": [
                            {"type": "play", "prompt": "x"},
                            {"type": "goto", "scheme": "A"},
                        ]
                    }
                },
            }
        )
    assert err.value.code == "goto_cycle"
    with pytest.raises(InvalidInput) as err:
        library({"A": {"branches": {"working": [{"type": "goto", "scheme": "Z"}]}}})
    assert err.value.code == "unknown_scheme" and err.value.details["path"] == "branches.working[0]"
    loop = library(
        {
            "A": {
                "branches": {
                    "working": [
                        {"type": "ring", "targets": [{"employee": "100"}]},
                        {"type": "goto", "scheme": "A"},
                    ]
                }
            }
        }
    )
    run = SchemeRun(loop["A"], context(loop), WORKING)
    rings = 0
    while not run.finished:
        if isinstance(run.next_action(), Ring):
            rings += 1
            run.on_outcome(Outcome(OUT.no_answer), WORKING)
    assert rings == 11 and isinstance(run.next_action(), Voicemail)


def test_codec_round_trip_and_error_paths() -> None:
    for name, data in {**SEEDS, **CALLER_RULES, **HTTP}.items():
        scheme = scheme_from_dict(name, data)
        assert scheme_from_dict(name, scheme_to_dict(scheme)) == scheme
    cases = [
        ({"branches": {"lunch": []}}, "branches.lunch"),
        ({"branches": {"working": [{"type": "dance"}]}}, "branches.working[0]"),
        (
            {"branches": {"working": [{"type": "ring", "targets": []}]}},
            "branches.working[0].targets",
        ),
        (
            {"branches": {"working": [{"type": "ring", "targets": [{"number": "8495"}]}]}},
            "branches.working[0].targets[0].number",
        ),
        (
            {
                "branches": {
                    "working": [{"type": "ring", "targets": [{"employee": "1"}], "timeout": 0}]
                }
            },
            "branches.working[0].timeout",
        ),
        (
            {"branches": {"working": [{"type": "play", "prompt": "x", "colour": 1}]}},
            "branches.working[0].colour",
        ),
        (
            {"branches": {"working": [{"type": "http_route", "url": "ftp://x", "fallback": []}]}},
            "branches.working[0].url",
        ),
        (
            {"branches": {"working": [{"type": "caller_rule", "rules": [{"tags": ["a"]}]}]}},
            "branches.working[0].rules[0]",
        ),
        (
            {
                "branches": {"working": [{"type": "hangup"}]},
                "final": {"type": "play", "prompt": "x"},
            },
            "final",
        ),
    ]
    for bad, path in cases:
        with pytest.raises(InvalidInput) as err:
            scheme_from_dict("X", bad)
        assert err.value.details["path"] == path, bad
