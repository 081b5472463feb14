"""The scheme codec for menus, queues and rating: canonical round trips and error paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from tests.routing.scheme_strategies import scheme_dicts
from zvonar.core.errors import InvalidInput
from zvonar.routing.schedule import Branch
from zvonar.routing.scheme import (
    HangupStep,
    IvrOption,
    IvrStep,
    PlayStep,
    QueueStep,
    RingStep,
    Target,
    TargetKind,
    VoicemailStep,
    validate_library,
    walk,
)
from zvonar.routing.scheme_codec import scheme_from_dict, scheme_to_dict

RING = {"type": "ring", "targets": [{"employee": "100"}]}

# The canonical form: what a dump gives back, defaults left out.
FULL: dict[str, Any] = {
    "branches": {
        "working": [
            {
                "type": "ivr",
                "label": "Main menu",
                "prompt": "greeting",
                "timeout": 4,
                "retries": 0,
                "invalid_prompt": "invalid_choice",
                "options": [
                    {"digit": "1", "steps": [RING]},
                    {"digit": "2", "scheme": "Support"},
                    {
                        "digit": "#",
                        "steps": [
                            {
                                "type": "queue",
                                "label": "Sales queue",
                                "queue": "sales.main_1",
                                "timeout": 120,
                                "overflow": [{"type": "voicemail", "greeting": "busy"}],
                            }
                        ],
                    },
                ],
                "default": [{"type": "play", "label": "Bye", "prompt": "goodbye"}],
            },
            {"type": "queue", "queue": "backup"},
            {
                "type": "ring",
                "targets": [{"number": "+79161112233"}],
                "confirm": True,
                "announce": "resorts_line",
            },
            {"type": "ring", "targets": [{"manager": "contact"}, {"manager": "last"}]},
            {"type": "play", "prompt": "sorry"},
        ]
    },
    "final": {"type": "hangup"},
    "rating": True,
}


def test_full_scheme_round_trips_in_canonical_form() -> None:
    scheme = scheme_from_dict("Main", copy.deepcopy(FULL))
    assert scheme_to_dict(scheme) == FULL
    assert scheme.rating is True
    menu = scheme.branches[next(iter(scheme.branches))][0]
    assert menu == IvrStep(
        prompt="greeting",
        options=(
            IvrOption("1", (RingStep((Target(TargetKind.employee, "100"),)),)),
            IvrOption("2", scheme="Support"),
            IvrOption(
                "#",
                (
                    QueueStep(
                        "sales.main_1",
                        120.0,
                        (VoicemailStep(greeting="busy"),),
                        "Sales queue",
                    ),
                ),
            ),
        ),
        timeout=4.0,
        retries=0,
        invalid_prompt="invalid_choice",
        default=(PlayStep("goodbye", "Bye"),),
        label="Main menu",
    )


def test_defaults_are_left_out_of_the_dump() -> None:
    verbose = {
        "branches": {
            "working": [
                {
                    "type": "ivr",
                    "prompt": "greeting",
                    "timeout": 5,
                    "retries": 2,
                    "options": [{"digit": 1, "steps": [RING]}],  # YAML reads an unquoted 1
                    "default": [],
                },
                {"type": "queue", "queue": "sales", "overflow": []},
                {**RING, "confirm": False},
            ]
        },
        "rating": False,
    }
    assert scheme_to_dict(scheme_from_dict("S", verbose)) == {
        "branches": {
            "working": [
                {"type": "ivr", "prompt": "greeting", "options": [{"digit": "1", "steps": [RING]}]},
                {"type": "queue", "queue": "sales"},
                RING,
            ]
        }
    }


def _ivr(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "ivr",
        "prompt": "p",
        "options": [{"digit": "1", "steps": [RING]}],
    }
    out.update(kw)
    return out


def _opts(*digits: Any) -> list[dict[str, Any]]:
    return [{"digit": d, "steps": [RING]} for d in digits]


W0 = "branches.working[0]"
BAD_STEPS: list[tuple[dict[str, Any], str]] = [
    ({"type": "ivr", "options": _opts("1")}, f"{W0}.prompt"),
    ({"type": "ivr", "prompt": "p"}, f"{W0}.options"),
    (_ivr(options=[]), f"{W0}.options"),
    (_ivr(options={"1": RING}), f"{W0}.options"),
    (_ivr(options=_opts(*"0123456789*#", "1")), f"{W0}.options"),
    (_ivr(options=_opts("10")), f"{W0}.options[0].digit"),
    (_ivr(options=_opts("a")), f"{W0}.options[0].digit"),
    (_ivr(options=[{"steps": [RING]}]), f"{W0}.options[0].digit"),
    (_ivr(options=_opts("1", "2", 1)), f"{W0}.options[2].digit"),
    (_ivr(options=[{"digit": "1", "steps": [RING], "scheme": "S"}]), f"{W0}.options[0]"),
    (_ivr(options=[{"digit": "1"}]), f"{W0}.options[0]"),
    (_ivr(options=[{"digit": "1", "steps": []}]), f"{W0}.options[0]"),
    (_ivr(options=[{"digit": "1", "press": [RING]}]), f"{W0}.options[0].press"),
    (_ivr(options=["1"]), f"{W0}.options[0]"),
    (
        _ivr(options=[{"digit": "1", "scheme": "S"}, {"digit": "2", "steps": [RING, {}]}]),
        f"{W0}.options[1].steps[1]",
    ),
    (
        _ivr(
            options=[
                {"digit": "1", "scheme": "S"},
                {"digit": "2", "steps": [{"type": "ring", "targets": []}]},
            ]
        ),
        f"{W0}.options[1].steps[0].targets",
    ),
    (_ivr(timeout=0), f"{W0}.timeout"),
    (_ivr(timeout=31), f"{W0}.timeout"),
    (_ivr(timeout="5"), f"{W0}.timeout"),
    (_ivr(retries=-1), f"{W0}.retries"),
    (_ivr(retries=6), f"{W0}.retries"),
    (_ivr(retries=1.5), f"{W0}.retries"),
    (_ivr(retries=True), f"{W0}.retries"),
    (_ivr(invalid_prompt=["x"]), f"{W0}.invalid_prompt"),
    (_ivr(default="x"), f"{W0}.default"),
    (_ivr(default=[{"type": "play"}]), f"{W0}.default[0].prompt"),
    (_ivr(menu="main"), f"{W0}.menu"),  # the placeholder form is gone
    ({"type": "ring", "targets": [{"manager": "boss"}]}, f"{W0}.targets[0].manager"),
    ({"type": "ring", "targets": [{"manager": "last", "employee": "1"}]}, f"{W0}.targets[0]"),
    ({"type": "queue"}, f"{W0}.queue"),
    ({"type": "queue", "queue": "sales team"}, f"{W0}.queue"),
    ({"type": "queue", "queue": "q" * 65}, f"{W0}.queue"),
    ({"type": "queue", "queue": "продажи"}, f"{W0}.queue"),
    ({"type": "queue", "queue": "sales", "timeout": 0}, f"{W0}.timeout"),
    ({"type": "queue", "queue": "sales", "overflow": RING}, f"{W0}.overflow"),
    (
        {"type": "queue", "queue": "sales", "overflow": [{"type": "ring", "targets": []}]},
        f"{W0}.overflow[0].targets",
    ),
]


@pytest.mark.parametrize(("step", "path"), BAD_STEPS)
def test_bad_menus_and_queues_name_the_field(step: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInput) as err:
        scheme_from_dict("X", {"branches": {"working": [step]}})
    assert err.value.code == "invalid_scheme"
    assert err.value.details["path"] == path


def test_error_paths_reach_into_nested_lists() -> None:
    nested = {
        "type": "caller_rule",
        "rules": [
            {
                "tags": ["vip"],
                "steps": [
                    _ivr(
                        options=[
                            {"digit": "1", "scheme": "S"},
                            {"digit": "2", "steps": [{"type": "queue", "queue": "a b"}]},
                        ]
                    )
                ],
            }
        ],
    }
    with pytest.raises(InvalidInput) as err:
        scheme_from_dict("X", {"branches": {"holiday": [RING, nested]}})
    assert (
        err.value.details["path"]
        == "branches.holiday[1].rules[0].steps[0].options[1].steps[0].queue"
    )


@pytest.mark.parametrize("rating", ["yes", 1, None, []])
def test_rating_is_a_boolean(rating: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        scheme_from_dict("X", {"branches": {"working": [RING]}, "rating": rating})
    assert err.value.details["path"] == "rating"


def test_menus_nest_up_to_the_limit() -> None:
    def menu(inner: list[dict[str, Any]]) -> dict[str, Any]:
        return _ivr(options=[{"digit": "1", "steps": inner}])

    deepest_allowed = [menu([menu([menu([RING])])])]  # ring at nesting level 3
    scheme = scheme_from_dict("X", {"branches": {"working": deepest_allowed}})
    depths = [depth for _, _, depth in walk(scheme.branches[next(iter(scheme.branches))], "")]
    assert max(depths) == 3
    with pytest.raises(InvalidInput) as err:
        scheme_from_dict("X", {"branches": {"working": [menu(deepest_allowed)]}})
    assert err.value.code == "too_deep"
    assert err.value.details["path"] == (
        "branches.working[0].options[0].steps[0].options[0].steps[0].options[0].steps[0]"
        ".options[0].steps"
    )


def test_library_checks_menu_and_overflow_jumps() -> None:
    main = {
        "branches": {
            "working": [
                {"type": "play", "prompt": "hello"},
                _ivr(options=[{"digit": "1", "steps": [RING]}, {"digit": "9", "scheme": "Nope"}]),
            ]
        }
    }
    with pytest.raises(InvalidInput) as err:
        validate_library({"Main": scheme_from_dict("Main", main)})
    assert err.value.code == "unknown_scheme"
    assert err.value.details["path"] == "branches.working[1].options[1].scheme"
    # "Back to the main menu" (from a menu option or a queue's overflow) waits on the caller
    # or on agents every time round: allowed, and bounded at run time by MAX_GOTO_HOPS.
    back = {
        "branches": {
            "working": [
                _ivr(
                    options=[
                        {"digit": "9", "scheme": "Main"},
                        {"digit": "1", "steps": [{"type": "goto", "scheme": "Main"}]},
                    ]
                ),
                {"type": "queue", "queue": "q", "overflow": [{"type": "goto", "scheme": "Main"}]},
            ]
        }
    }
    validate_library({"Main": scheme_from_dict("Main", back)})
    back["branches"]["working"][1]["overflow"][0]["scheme"] = "Nope"
    with pytest.raises(InvalidInput) as err:
        validate_library({"Main": scheme_from_dict("Main", back)})
    assert err.value.details["path"] == "branches.working[1].overflow[0]"
    # A jump before any menu or ring still loops silently.
    silent = {"branches": {"working": [{"type": "goto", "scheme": "Main"}, _ivr()]}}
    with pytest.raises(InvalidInput) as err:
        validate_library({"Main": scheme_from_dict("Main", silent)})
    assert err.value.code == "goto_cycle"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme_dicts())
def test_any_valid_scheme_round_trips(data: dict[str, Any]) -> None:
    scheme = scheme_from_dict("S", copy.deepcopy(data))
    canonical = scheme_to_dict(scheme)
    again = scheme_from_dict("S", copy.deepcopy(canonical))
    assert again == scheme
    assert scheme_to_dict(again) == canonical
    assert scheme.rating is bool(data.get("rating"))
    assert ("rating" in canonical) is scheme.rating


def test_walk_visits_options_defaults_and_overflows() -> None:
    scheme = scheme_from_dict("Main", copy.deepcopy(FULL))
    w = "branches.working"
    assert [
        (path, depth) for path, _, depth in walk(scheme.branches[next(iter(scheme.branches))], w)
    ] == [
        (f"{w}[0]", 0),
        (f"{w}[0].options[0].steps[0]", 1),
        (f"{w}[0].options[2].steps[0]", 1),
        (f"{w}[0].options[2].steps[0].overflow[0]", 2),
        (f"{w}[0].default[0]", 1),
        (f"{w}[1]", 0),
        (f"{w}[2]", 0),
        (f"{w}[3]", 0),
        (f"{w}[4]", 0),
    ]


def test_an_unquoted_yaml_off_branch_is_the_off_branch() -> None:
    data = yaml.safe_load("branches:\n  off: [{type: hangup}]\n  working: [{type: hangup}]\n")
    assert False in data["branches"]  # what PyYAML makes of it
    scheme = scheme_from_dict("S", data)
    assert scheme.branches[Branch.off] == (HangupStep(),)
    assert list(scheme_to_dict(scheme)["branches"]) == ["working", "off"]
