"""A scheme walked live by the route the resolver hands a call (``pbx/route.py``), as a call
nobody answers walks it (pure: no database, no SIP)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.routes import unroll
from zvonar.calls.events import Disposition, Target, TargetKind
from zvonar.calls.plan import (
    CallStep,
    Plan,
    PlayPrompt,
    Reject,
    RingTarget,
    StepResult,
    StepResultKind,
    Wave,
)
from zvonar.media.prompts import prompt_path
from zvonar.pbx.route import RouteSetup, SchemeRoute, wave_of
from zvonar.routing.engine import (
    CallContext,
    Dial,
    GroupInfo,
    HttpRequest,
    Outcome,
    OutcomeKind,
    Ring,
    SchemeRun,
)
from zvonar.routing.schedule import WorkCalendar, calendar_from_dict
from zvonar.routing.scheme import Scheme
from zvonar.routing.scheme import TargetKind as SchemeKind
from zvonar.routing.scheme_codec import scheme_from_dict
from zvonar.routing.strategies import MemberState, Presence, Strategy
from zvonar.sip.ua import Flow

MONDAY_10 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)  # a working hour in Moscow
SUNDAY_10 = datetime(2024, 3, 3, 10, 0, tzinfo=UTC)
CALENDAR = calendar_from_dict({}, tz="Europe/Moscow", default_country="RU")
REGISTERED = {"101": 1, "102": 2, "104": 1}  # extension → live contacts; 103 is offline


@dataclass(frozen=True)
class Walked:
    waves: tuple[Wave, ...]
    final: Reject
    steps: tuple[CallStep, ...]
    path: str
    memory: dict[str, int]


def expand(dial: Dial) -> list[RingTarget]:
    if dial.kind.value == "number":  # through the trunk, as the resolver rings it
        flow = Flow("UDP", "192.0.2.1", 5060)
        return [RingTarget(f"sip:{dial.ref}@192.0.2.1", flow, Target(TargetKind.external, "x"))]
    if dial.kind.value != "employee":
        return []
    n = REGISTERED.get(dial.ref, 0)
    employee = Target(TargetKind.employee, dial.ref)
    return [
        RingTarget(f"sip:{dial.ref}@10.0.0.{i}", Flow("UDP", f"10.0.0.{i}", 5060), employee)
        for i in range(1, n + 1)
    ]


def presence() -> dict[str, MemberState]:
    out = {}
    for ext in ("101", "102", "103", "104"):
        key = f"employee:{ext}"
        state = Presence.available if ext in REGISTERED else Presence.unregistered
        out[key] = MemberState(key, state)
    return out


async def walk(
    schemes: dict[str, dict[str, Any]],
    *,
    at: datetime = MONDAY_10,
    strategy: Strategy = Strategy.in_turn,
    memory: dict[str, int] | None = None,
    tags: frozenset[str] = frozenset(),
    http: Callable[[HttpRequest], Outcome] | None = None,
    call_id: str = "c1",
) -> Walked:
    library = {name: scheme_from_dict(name, data) for name, data in schemes.items()}
    ctx = CallContext(
        call_id=call_id,
        caller="+79161234567",
        called="+74951234567",
        calendar=CALENDAR,
        schemes=library,
        caller_known=bool(tags),
        caller_tags=tags,
        presence=presence(),
        groups={"Sales": GroupInfo(strategy, (("102", 1), ("103", 1), ("104", 1)))},
        memory=memory or {},
    )
    run = SchemeRun(library["Main"], ctx, at, rng=random.Random(1))

    async def ask(request: HttpRequest) -> Outcome:
        return http(request) if http else Outcome(OutcomeKind.http_error)

    setup = RouteSetup(
        account_id=uuid.uuid4(),
        call_id=call_id,
        language="en",
        expand=expand,
        ask=ask,
        agent_targets=lambda _agent: (),
        caller_tags=tags,
    )
    got = await unroll(Plan(setup.account_id, (), route=SchemeRoute(run, setup, at)))
    return Walked(got.waves, got.final, got.steps, run.describe(), dict(run.memory))


def is_voicemail(final: Reject) -> bool:
    return final.disposition is Disposition.voicemail and final.voicemail is not None


def is_hangup(final: Reject) -> bool:
    return final.disposition is None and final.voicemail is None and final.prompt is None


def _main(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {"Main": {"branches": {"working": steps}, "final": {"type": "hangup"}}}


def uris(result: Walked) -> list[list[str]]:
    return [[t.uri for t in w.targets] for w in result.waves]


async def test_ring_steps_become_waves_in_order_and_offline_members_are_skipped() -> None:
    result = await walk(
        {
            "Main": {
                "branches": {
                    "working": [
                        {"type": "ring", "targets": [{"employee": "101"}], "timeout": 20},
                        {"type": "ring", "targets": [{"group": "Sales"}], "target_timeout": 12},
                    ]
                }
            }
        }
    )
    assert uris(result) == [
        ["sip:101@10.0.0.1"],
        ["sip:102@10.0.0.1", "sip:102@10.0.0.2"],  # both phones of 102 in one wave
        ["sip:104@10.0.0.1"],  # 103 is not registered: no wave for it
    ]
    assert [w.timeout for w in result.waves] == [20, 12, 12]
    assert is_voicemail(result.final)  # the scheme's default final step
    assert "Main: working" in result.path


async def test_a_confirming_step_asks_only_its_outside_targets_to_press_1() -> None:
    ring = {"type": "ring", "targets": [{"employee": "101"}, {"number": "+79161112233"}]}
    result = await walk({"Main": {"branches": {"working": [{**ring, "confirm": True}, ring]}}})
    first, second = result.waves
    asked = {t.uri: t.accept_prompt for t in first.targets}
    assert asked["sip:101@10.0.0.1"] is None  # the account's own phone: its answer counts
    assert asked["sip:+79161112233@192.0.2.1"] == prompt_path("accept_call", "en")
    assert all(t.accept_prompt is None for t in second.targets)  # a step without confirm


async def test_an_announcing_step_announces_to_every_target() -> None:
    ring = {"type": "ring", "targets": [{"employee": "101"}, {"number": "+79161112233"}]}
    result = await walk({"Main": {"branches": {"working": [{**ring, "announce": "n1"}]}}})
    (wave,) = result.waves
    assert {t.announce for t in wave.targets} == {prompt_path("n1", "en")}
    assert all(t.accept_prompt is None for t in wave.targets)  # nobody must press 1


async def test_all_at_once_rings_everyone_in_one_wave_without_duplicates() -> None:
    result = await walk(
        {
            "Main": {
                "branches": {
                    "working": [
                        {
                            "type": "ring",
                            "targets": [{"employee": "102"}, {"group": "Sales"}],
                            "strategy": "all_at_once",
                            "timeout": 25,
                        }
                    ]
                },
                "final": {"type": "hangup"},
            }
        }
    )
    assert uris(result) == [["sip:102@10.0.0.1", "sip:102@10.0.0.2", "sip:104@10.0.0.1"]]
    assert result.waves[0].timeout == 25
    assert is_hangup(result.final)


async def test_nobody_reachable_gives_no_waves_and_the_final_step() -> None:
    result = await walk(
        {
            "Main": {
                "branches": {"working": [{"type": "ring", "targets": [{"employee": "103"}]}]},
                "final": {"type": "voicemail", "greeting": "off_hours"},
            }
        }
    )
    assert result.waves == ()
    assert is_voicemail(result.final)
    greeting = result.final.voicemail.greeting if result.final.voicemail else None
    assert greeting is not None and greeting.name == "off_hours.wav"


async def test_schedule_branch_goto_and_play_steps() -> None:
    schemes: dict[str, dict[str, Any]] = {
        "Main": {
            "branches": {
                "working": [{"type": "ring", "targets": [{"employee": "101"}]}],
                "off": [
                    {"type": "play", "prompt": "off_hours"},
                    {"type": "goto", "scheme": "Night"},
                ],
            }
        },
        "Night": {
            "branches": {"working": [{"type": "ring", "targets": [{"employee": "104"}]}]},
            "final": {"type": "hangup"},
        },
    }
    day = await walk(schemes)
    assert uris(day) == [["sip:101@10.0.0.1"]]
    night = await walk(schemes, at=SUNDAY_10)
    assert uris(night) == [["sip:104@10.0.0.1"]]
    played = [s.prompts[0].name for s in night.steps if isinstance(s, PlayPrompt)]
    assert played == ["off_hours.wav"]  # played live now, before the goto
    assert is_hangup(night.final)  # Night's final step, where the run ended


async def test_caller_rules_pick_steps_by_contact_tags() -> None:
    schemes: dict[str, dict[str, Any]] = {
        "Main": {
            "branches": {
                "working": [
                    {
                        "type": "caller_rule",
                        "rules": [
                            {
                                "tags": ["vip"],
                                "steps": [{"type": "ring", "targets": [{"employee": "102"}]}],
                            }
                        ],
                        "default": [{"type": "ring", "targets": [{"employee": "101"}]}],
                    }
                ]
            }
        }
    }
    assert uris(await walk(schemes, tags=frozenset({"vip"})))[0][0] == "sip:102@10.0.0.1"
    assert uris(await walk(schemes))[0] == ["sip:101@10.0.0.1"]


async def test_round_robin_memory_comes_back_for_the_next_call() -> None:
    schemes = {
        "Main": {"branches": {"working": [{"type": "ring", "targets": [{"group": "Sales"}]}]}}
    }
    first = await walk(schemes, strategy=Strategy.round_robin)
    assert uris(first)[0] == ["sip:102@10.0.0.1", "sip:102@10.0.0.2"]
    assert first.memory == {"group:Sales": 1}
    second = await walk(schemes, strategy=Strategy.round_robin, memory=first.memory)
    # Pointer 1 is 103 (offline): 104 starts, then round to 102.
    assert uris(second) == [["sip:104@10.0.0.1"], ["sip:102@10.0.0.1", "sip:102@10.0.0.2"]]
    assert second.memory == {"group:Sales": 0}  # after 104 (index 2) comes index 0


HTTP_SCHEME = {
    "Main": {
        "branches": {
            "working": [
                {
                    "type": "http_route",
                    "url": "https://crm.example/route",
                    "timeout": 2,
                    "fallback": [{"type": "ring", "targets": [{"employee": "101"}]}],
                }
            ]
        },
        "final": {"type": "hangup"},
    }
}


async def test_http_route_is_asked_and_its_reply_rings() -> None:
    asked: list[HttpRequest] = []

    def crm(request: HttpRequest) -> Outcome:
        asked.append(request)
        return Outcome(OutcomeKind.http_reply, payload={"employee": "104"})

    result = await walk(HTTP_SCHEME, http=crm, call_id="c9")
    (request,) = asked
    assert request.url == "https://crm.example/route" and request.timeout == 2
    assert request.payload["call_id"] == "c9"
    assert uris(result) == [["sip:104@10.0.0.1"]]


async def test_http_failure_runs_the_fallback() -> None:
    result = await walk(HTTP_SCHEME, http=lambda _req: Outcome(OutcomeKind.http_error))
    assert uris(result) == [["sip:101@10.0.0.1"]]
    assert is_hangup(result.final)


async def test_a_target_rung_with_others_keeps_its_own_timeout() -> None:
    """An all-at-once step's wave lasts the step's timeout (8 s), and a target with a shorter
    one of its own rings only that long (``RingTarget.ring_seconds``), on every contact it
    has; one whose own is longer is capped by the step (the wave's end)."""
    ring = {
        "type": "ring",
        "targets": [{"employee": "101", "timeout": 4}, {"employee": "102", "timeout": 12}],
        "timeout": 8,
    }
    result = await walk(_main([ring]))
    (wave,) = result.waves
    assert wave.timeout == 8
    assert [(t.uri, t.ring_seconds) for t in wave.targets] == [
        ("sip:101@10.0.0.1", 4),
        ("sip:102@10.0.0.1", None),
        ("sip:102@10.0.0.2", None),
    ]


async def test_an_all_at_once_step_ends_with_its_longest_target() -> None:
    """Every target has a shorter time than the step's 10 s: the wave lasts the longest of
    them (6 s, a group's members each), and only the shorter ones get a time of their own; a
    contact two targets share rings once, for the longer of their times."""
    ring = {
        "type": "ring",
        "targets": [{"employee": "101", "timeout": 4}, {"group": "Sales", "timeout": 6}],
        "strategy": "all_at_once",
        "timeout": 10,
    }
    (wave,) = (await walk(_main([ring]))).waves
    assert wave.timeout == 6
    assert [(t.uri, t.ring_seconds) for t in wave.targets] == [
        ("sip:101@10.0.0.1", 4),
        ("sip:102@10.0.0.1", None),
        ("sip:102@10.0.0.2", None),
        ("sip:104@10.0.0.1", None),
    ]
    shared = {
        "type": "ring",
        "targets": [{"employee": "102", "timeout": 4}, {"group": "Sales", "timeout": 3}],
        "strategy": "all_at_once",
        "timeout": 10,
    }
    (wave,) = (await walk(_main([shared]))).waves
    assert wave.timeout == 4
    assert [(t.uri, t.ring_seconds) for t in wave.targets] == [
        ("sip:102@10.0.0.1", None),  # its own 4 s (the wave's), not the group's 3 s
        ("sip:102@10.0.0.2", None),
        ("sip:104@10.0.0.1", 3),
    ]


def test_a_contact_two_targets_share_rings_once_for_the_longer_time() -> None:
    """Two targets reaching one contact (a shared desk phone) ring it once, as long as the
    longer of their times; as long as the wave when either has no shorter time of its own."""

    def desk(_dial: Dial) -> list[RingTarget]:
        return [RingTarget("sip:desk@10.0.0.9", Flow("UDP", "10.0.0.9", 5060))]

    def both(first: float, second: float) -> Wave | None:
        dials = (Dial(SchemeKind.employee, "101", first), Dial(SchemeKind.employee, "102", second))
        return wave_of(Ring(dials, 10), desk)

    shorter = both(4, 6)
    assert shorter is not None
    assert [(t.uri, t.ring_seconds) for t in shorter.targets] == [("sip:desk@10.0.0.9", 6)]
    whole = both(4, 10)
    assert whole is not None and [t.ring_seconds for t in whole.targets] == [None]


async def test_the_path_says_how_a_ring_step_ended_busy_or_answered() -> None:
    """What the journal's scheme_path shows: a step whose phones refused (486, 603: the call
    reports ``busy``, calls/fork.py ``step_result_for``) is ``[busy]``; one somebody took —
    its own phone or a colleague picking it up — is ``[answered]``."""
    ring = {"type": "ring", "targets": [{"employee": "101"}], "timeout": 8, "label": "only101"}
    library = {
        "Main": scheme_from_dict(
            "Main", {"branches": {"working": [ring, ring]}, "final": {"type": "hangup"}}
        )
    }
    route = live_route(library, CALENDAR, MONDAY_10)
    assert isinstance(await route.next(None), Wave)
    assert isinstance(await route.next(StepResult(StepResultKind.busy)), Wave)
    route.connected(Target(TargetKind.employee, "Boris"))
    assert route.path[-2:] == ("ring only101 (8s) [busy]", "ring only101 (8s) [answered]")


def live_route(library: dict[str, Scheme], calendar: WorkCalendar, at: datetime) -> SchemeRoute:
    """The route of a call to "Main" that arrives ``at``, with no clock of its own (as the
    PBX builds it) and no HTTP step."""
    ctx = CallContext(
        call_id="c1",
        caller="+79161234567",
        called="+74951234567",
        calendar=calendar,
        schemes=library,
        presence=presence(),
    )
    setup = RouteSetup(
        account_id=uuid.uuid4(),
        call_id="c1",
        language="en",
        expand=expand,
        ask=lambda _r: _never(),
        agent_targets=lambda _agent: (),
    )
    return SchemeRoute(SchemeRun(library["Main"], ctx, at), setup, at)


async def _never() -> Outcome:
    raise AssertionError("no HTTP step here")


async def test_the_calls_time_runs_on_without_an_injected_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live call's route has no clock of its own: the step's cap counts the time the
    earlier targets rang (4 s, then 6 s, so the third gets 2 s of the 12), and a go-to after
    ringing chooses its branch at that moment, not when the call arrived."""
    now = [1000.0]
    # Only the route's own view of the clock: the event loop keeps the real one.
    monkeypatch.setattr("zvonar.pbx.route.time", SimpleNamespace(monotonic=lambda: now[0]))
    in_turn = {
        "type": "ring",
        "strategy": "in_turn",
        "targets": [{"employee": "101", "timeout": 4}, {"employee": "102"}, {"employee": "104"}],
        "timeout": 12,
        "target_timeout": 6,
    }
    library = {
        "Main": scheme_from_dict(
            "Main",
            {
                "branches": {"working": [in_turn, {"type": "goto", "scheme": "Night"}]},
                "final": {"type": "hangup"},
            },
        ),
        "Night": scheme_from_dict(
            "Night",
            {
                "branches": {
                    "working": [{"type": "ring", "targets": [{"employee": "101"}]}],
                    "off": [{"type": "ring", "targets": [{"employee": "104"}]}],
                },
                "final": {"type": "hangup"},
            },
        ),
    }
    closing = datetime(2024, 3, 4, 14, 59, 55, tzinfo=UTC)  # 17:59:55 in Moscow: 5 s to close
    calendar = calendar_from_dict(
        {"hours": {"mon": ["09:00-18:00"]}}, tz="Europe/Moscow", default_country="RU"
    )
    route = live_route(library, calendar, closing)
    timeouts: list[float] = []
    wave = await route.next(None)
    while isinstance(wave, Wave) and len(timeouts) < 3:
        timeouts.append(wave.timeout)
        now[0] += wave.timeout  # nobody answers: the wave rings out
        wave = await route.next(StepResult(StepResultKind.no_answer))
    assert timeouts == [4, 6, 2]
    assert isinstance(wave, Wave) and [t.uri for t in wave.targets] == ["sip:104@10.0.0.1"]
    assert "Night: off" in route.path
