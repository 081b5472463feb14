"""The interpreter on menus, queues, play steps and post-call rating."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.routing.scheme_strategies import SCHEMES, scheme_dicts
from tests.routing.test_engine import OUT, WORKING, context, library, ring_refs
from zvonar.routing.engine import (
    Abandoned,
    CallbackRequested,
    Connected,
    Hangup,
    HttpRequest,
    Ivr,
    Outcome,
    Play,
    Queue,
    Ring,
    SchemeRun,
    Voicemail,
)
from zvonar.routing.errors import RoutingStateError
from zvonar.routing.scheme import MAX_GOTO_HOPS
from zvonar.routing.scheme_codec import scheme_from_dict

MENU: dict[str, Any] = {
    "Main": {
        "branches": {
            "working": [
                {
                    "type": "ivr",
                    "label": "Main menu",
                    "prompt": "greeting",
                    "timeout": 4,
                    "invalid_prompt": "invalid_choice",
                    "options": [
                        {
                            "digit": "1",
                            "steps": [{"type": "ring", "targets": [{"employee": "100"}]}],
                        },
                        {"digit": "2", "scheme": "Support"},
                        {
                            "digit": "3",
                            "steps": [
                                {
                                    "type": "ivr",
                                    "prompt": "sales_menu",
                                    "retries": 0,
                                    "options": [
                                        {
                                            "digit": "1",
                                            "steps": [
                                                {"type": "ring", "targets": [{"employee": "201"}]}
                                            ],
                                        },
                                        {"digit": "*", "scheme": "Main"},  # back to the main menu
                                    ],
                                }
                            ],
                        },
                    ],
                    "default": [{"type": "ring", "targets": [{"employee": "101"}]}],
                },
                {"type": "play", "prompt": "goodbye"},
            ]
        },
        "final": {"type": "hangup"},
    },
    "Support": {
        "branches": {"working": [{"type": "queue", "queue": "support", "label": "Support line"}]},
        "rating": True,
    },
}
MAIN_MENU = Ivr("greeting", frozenset("123"), 4.0, 0, None, "invalid_choice", "Main menu")


def menu_run() -> SchemeRun:
    schemes = library(MENU)
    run = SchemeRun(schemes["Main"], context(schemes), WORKING)
    assert run.next_action() == MAIN_MENU
    return run


def feed(run: SchemeRun, kind: OUT, payload: Any = None) -> Any:
    run.on_outcome(Outcome(kind, payload=payload), WORKING)
    return run.next_action()


def test_valid_digit_runs_the_option_then_the_steps_after_the_menu() -> None:
    run = menu_run()
    assert ring_refs(feed(run, OUT.digit, "1")) == ["100"]
    assert feed(run, OUT.no_answer) == Play("goodbye")
    assert feed(run, OUT.completed) == Hangup()
    assert run.describe() == (
        "Main: working → menu Main menu → 1 → ring 100 [no_answer] → play goodbye [completed]"
        " → hang up"
    )
    assert not run.rating


def test_invalid_digit_replays_the_menu_then_a_valid_one_counts() -> None:
    run = menu_run()
    again = feed(run, OUT.digit, "7")
    assert again == Ivr(
        "greeting", frozenset("123"), 4.0, 1, "invalid", "invalid_choice", "Main menu"
    )
    assert ring_refs(feed(run, OUT.digit, "1")) == ["100"]
    assert run.describe() == (
        "Main: working → menu Main menu → 7 [invalid] → menu Main menu (retry 1) → 1 → ring 100"
    )


def test_no_input_until_the_default_steps_then_the_rest() -> None:
    run = menu_run()
    first = feed(run, OUT.no_input)
    assert isinstance(first, Ivr) and (first.attempt, first.retry) == (1, "no_input")
    second = feed(run, OUT.digit, "#")  # a key no option has is as good as none
    assert isinstance(second, Ivr) and (second.attempt, second.retry) == (2, "invalid")
    assert ring_refs(feed(run, OUT.no_input)) == ["101"]  # retries (2) spent: the default
    assert feed(run, OUT.no_answer) == Play("goodbye")
    assert [str(h) for h in run.path[1:5]] == [
        "menu Main menu [no_input]",
        "menu Main menu (retry 1) → # [invalid]",
        "menu Main menu (retry 2) [no_input]",
        "menu Main menu: default",
    ]


def test_nested_menu_without_retries_and_without_default() -> None:
    run = menu_run()
    inner = feed(run, OUT.digit, "3")
    assert inner == Ivr("sales_menu", frozenset({"1", "*"}), 5.0, 0, None, None, None)
    assert feed(run, OUT.no_input) == Play("goodbye")  # no retries, no default: carry on
    run = menu_run()
    feed(run, OUT.digit, "3")
    assert ring_refs(feed(run, OUT.digit, "1")) == ["201"]
    assert feed(run, OUT.busy) == Play("goodbye")  # inner option, inner menu, outer menu: done


def test_option_goes_to_a_scheme_and_back_to_the_main_menu_is_bounded() -> None:
    run = menu_run()
    queue = feed(run, OUT.digit, "2")
    assert queue == Queue("support", None, "Support line")
    assert "menu Main menu → 2 → Support: working → Support line" in run.describe()
    assert feed(run, OUT.answered) == Connected(None) and run.rating
    # "*" in the sales menu goes back to Main: each round waits on the caller, and the run
    # still ends once the jumps are spent.
    run = menu_run()
    menus = 1
    while not run.finished:
        action = feed(run, OUT.digit, "3" if run.next_action() == MAIN_MENU else "*")
        menus += isinstance(action, Ivr)
    assert run.next_action() == Hangup() and menus == 2 * (MAX_GOTO_HOPS + 1)
    assert run.describe().endswith("go to Main [too many jumps] → hang up")


@pytest.mark.parametrize("kind", [OUT.completed, OUT.failed])
def test_a_menu_that_cannot_play_moves_on(kind: OUT) -> None:
    run = menu_run()
    assert feed(run, kind) == Play("goodbye")
    assert run.path[-2].outcome == kind.value


def test_menu_outcomes_outside_the_table_are_refused_and_change_nothing() -> None:
    run = menu_run()
    for bad in (Outcome(OUT.answered), Outcome(OUT.digit), Outcome(OUT.callback)):
        with pytest.raises(RoutingStateError):
            run.on_outcome(bad, WORKING)
    assert run.next_action() == MAIN_MENU
    assert ring_refs(feed(run, OUT.digit, "1")) == ["100"]
    with pytest.raises(RoutingStateError):
        run.on_outcome(Outcome(OUT.digit, payload="1"), WORKING)  # a digit for a ring
    assert feed(menu_run(), OUT.caller_gone) == Abandoned()


QUEUES: dict[str, Any] = {
    "Q": {
        "branches": {
            "working": [
                {
                    "type": "queue",
                    "label": "Sales queue",
                    "queue": "sales",
                    "timeout": 120,
                    "overflow": [{"type": "ring", "targets": [{"employee": "105"}]}],
                },
                {"type": "queue", "queue": "backup"},
                {"type": "play", "prompt": "sorry"},
            ]
        }
    }
}


def queue_run() -> SchemeRun:
    schemes = library(QUEUES)
    run = SchemeRun(schemes["Q"], context(schemes), WORKING)
    assert run.next_action() == Queue("sales", 120.0, "Sales queue")
    return run


@pytest.mark.parametrize("kind", [OUT.no_answer, OUT.busy, OUT.unavailable, OUT.failed])
def test_queue_overflow_runs_the_overflow_steps_then_the_rest(kind: OUT) -> None:
    run = queue_run()
    assert ring_refs(feed(run, kind)) == ["105"]
    assert feed(run, OUT.no_answer) == Queue("backup", None, None)
    assert feed(run, kind) == Play("sorry")  # no overflow steps: straight on
    assert feed(run, OUT.completed) == Voicemail(None, ())
    assert run.describe().startswith(f"Q: working → Sales queue [{kind.value}] → ring 105")


def test_queue_callback_answer_and_caller_gone() -> None:
    run = queue_run()
    assert feed(run, OUT.callback) == CallbackRequested()
    assert run.finished and not run.rating and str(run.path[-1]) == "Sales queue [callback]"
    with pytest.raises(RoutingStateError):
        run.on_outcome(Outcome(OUT.answered), WORKING)
    run = queue_run()
    run.on_outcome(Outcome(OUT.answered, answered_by="employee:100"), WORKING)
    assert run.next_action() == Connected("employee:100")
    assert feed(queue_run(), OUT.caller_gone) == Abandoned()
    with pytest.raises(RoutingStateError):
        queue_run().on_outcome(Outcome(OUT.no_input), WORKING)


RATED: dict[str, Any] = {
    "Main": {
        "branches": {
            "working": [
                {"type": "ring", "targets": [{"employee": "100"}]},
                {"type": "goto", "scheme": "Rated"},
            ]
        }
    },
    "Rated": {
        "branches": {
            "working": [
                {
                    "type": "caller_rule",
                    "rules": [],
                    "default": [{"type": "ring", "targets": [{"employee": "101"}]}],
                },
                {"type": "goto", "scheme": "Plain"},
            ]
        },
        "rating": True,
    },
    "Plain": {"branches": {"working": [{"type": "ring", "targets": [{"employee": "102"}]}]}},
}


@pytest.mark.parametrize(
    ("misses", "rated"),
    [(0, False), (1, True), (2, False)],  # answered in Main, in Rated (nested list), in Plain
)
def test_rating_follows_the_scheme_that_connected(misses: int, rated: bool) -> None:
    schemes = library(RATED)
    run = SchemeRun(schemes["Main"], context(schemes), WORKING)
    for _ in range(misses):
        run.next_action()
        run.on_outcome(Outcome(OUT.no_answer), WORKING)
    assert isinstance(run.next_action(), Ring) and not run.rating
    run.on_outcome(Outcome(OUT.answered), WORKING)
    assert isinstance(run.next_action(), Connected) and run.rating is rated


def test_no_rating_without_a_connection() -> None:
    schemes = library(RATED)
    run = SchemeRun(schemes["Rated"], context(schemes), WORKING)
    while not run.finished:
        run.next_action()
        if not run.finished:
            run.on_outcome(Outcome(OUT.no_answer), WORKING)
    assert isinstance(run.next_action(), Voicemail) and not run.rating


def test_play_steps_move_on_whether_played_or_not() -> None:
    data = {
        "branches": {
            "working": [
                {"type": "play", "label": "Welcome", "prompt": "hello"},
                {"type": "play", "prompt": "missing"},
            ]
        }
    }
    scheme = scheme_from_dict("P", data)
    run = SchemeRun(scheme, context({"P": scheme}), WORKING)
    assert run.next_action() == Play("hello")
    assert feed(run, OUT.completed) == Play("missing")
    assert feed(run, OUT.failed) == Voicemail(None, ())
    assert run.describe() == "P: working → Welcome [completed] → play missing [failed] → voicemail"


# --- any outcome the table allows, in any state, ends the run ------------------------------------

_DIGITS = st.sampled_from("0123456789*#")
_CHOICES: dict[type, list[OUT]] = {
    Ring: [OUT.answered, OUT.no_answer, OUT.busy, OUT.unavailable, OUT.failed, OUT.caller_gone],
    Play: [OUT.completed, OUT.failed, OUT.caller_gone],
    HttpRequest: [OUT.http_reply, OUT.http_error, OUT.caller_gone],
    Queue: [OUT.answered, OUT.no_answer, OUT.failed, OUT.callback, OUT.caller_gone],
    Ivr: [OUT.digit, OUT.digit, OUT.no_input, OUT.completed, OUT.caller_gone],
}
TERMINAL = (Connected, Voicemail, Hangup, Abandoned, CallbackRequested)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme_dicts(), scheme_dicts(), st.data())
def test_any_outcomes_end_the_run(main: dict[str, Any], other: dict[str, Any], data: Any) -> None:
    schemes = {
        name: scheme_from_dict(name, main if name == "Main" else other)
        for name in ("Main", *SCHEMES)
    }
    run = SchemeRun(schemes["Main"], context(schemes), WORKING, rng=random.Random(0))
    now = WORKING
    for _ in range(2000):
        action = run.next_action()
        if run.finished:
            break
        kind = data.draw(st.sampled_from(_CHOICES[type(action)]))
        payload = None
        if kind is OUT.digit:
            payload = data.draw(_DIGITS)
        elif kind is OUT.http_reply:
            payload = data.draw(
                st.sampled_from(
                    [{"scheme": "Other"}, {"employee": "105"}, {"action": "continue"}, []]
                )
            )
        if isinstance(action, Ivr):
            assert action.attempt >= 0 and (action.retry is None) is (action.attempt == 0)
        now += timedelta(seconds=5)
        run.on_outcome(Outcome(kind, payload=payload), now)
    assert run.finished and isinstance(run.next_action(), TERMINAL)
    assert not run.rating or isinstance(run.next_action(), Connected)
