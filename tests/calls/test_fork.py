"""Pure forking decisions: status → leg-end reason, wave completion, the unanswered verdict."""

from __future__ import annotations

import pytest

from zvonar.calls.events import Disposition, LegEndReason
from zvonar.calls.fork import (
    Bound,
    WaveTracker,
    best_final,
    disposition_for,
    end_reason_for_status,
    relayable,
    step_result_for,
)
from zvonar.calls.plan import Reject, RingTarget, StepResultKind, Wave
from zvonar.sip.ua import Flow


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (486, LegEndReason.busy),
        (600, LegEndReason.busy),
        (603, LegEndReason.rejected),
        (487, LegEndReason.cancelled),
        (408, LegEndReason.no_answer),
        (480, LegEndReason.no_answer),
        (404, LegEndReason.failed),
        (503, LegEndReason.failed),
    ],
)
def test_end_reason_for_status(status: int, reason: LegEndReason) -> None:
    assert end_reason_for_status(status) is reason


def test_first_answer_wins_and_the_rest_stay_live_to_cancel() -> None:
    wave = WaveTracker(["a", "b", "c"])
    assert wave.ringing("a") and not wave.ringing("a")  # one CallRinging per fork
    assert wave.ended("c", LegEndReason.busy)
    assert not wave.over
    assert wave.answered("b")
    assert not wave.answered("a")  # a second 2xx loses
    assert wave.winner == "b" and wave.over
    assert wave.live == ["a"]
    assert not wave.ended("b", LegEndReason.completed)  # the winner is not a failed fork
    assert not wave.answered("c")  # an ended fork cannot win


def test_wave_over_when_every_fork_ended() -> None:
    wave = WaveTracker(["a", "b"])
    assert wave.ended("a", LegEndReason.busy)
    assert not wave.ended("a", LegEndReason.failed)  # counted once
    assert not wave.over
    assert wave.ended("b", LegEndReason.no_answer)
    assert wave.over and wave.winner is None
    assert wave.reasons == {"a": LegEndReason.busy, "b": LegEndReason.no_answer}


def test_a_forks_own_bounds_come_one_timer_at_a_time() -> None:
    """A fork's silence bound and ring limit (seconds from its INVITE) share one timer: the
    tracker says which one fired and how long until the next."""
    wave = WaveTracker(["a", "b", "c", "d"])
    assert wave.bound("a", silence=2, ring=5) == 2
    assert wave.due("a") == (Bound.silence, 3)  # heard in time: 3 s more to its limit
    assert wave.due("a") == (Bound.ring, None)
    assert wave.due("a") == (None, None)  # nothing left (a timer of a fork gone long ago)
    # A silence bound past the ring limit never matters: the fork stops ringing first.
    assert wave.bound("b", silence=6, ring=4) == 4
    assert wave.due("b") == (Bound.ring, None)
    assert wave.bound("c", silence=2, ring=None) == 2
    assert wave.due("c") == (Bound.silence, None)
    assert wave.bound("d", silence=None, ring=None) is None
    assert wave.due("d") == (None, None)


@pytest.mark.parametrize(
    ("reasons", "disposition"),
    [
        ([LegEndReason.busy, LegEndReason.busy], Disposition.busy),
        ([LegEndReason.busy, LegEndReason.no_answer], Disposition.missed),
        ([LegEndReason.cancelled], Disposition.missed),
        ([LegEndReason.rejected, LegEndReason.failed], Disposition.busy),
        ([LegEndReason.failed], Disposition.failed),
        ([], Disposition.failed),
    ],
)
def test_disposition_for(reasons: list[LegEndReason], disposition: Disposition) -> None:
    assert disposition_for(reasons) is disposition


def test_a_call_that_rang_nobody_is_what_its_caller_says() -> None:
    """No fork at all: missed when nobody was available to ring, failed when the call could
    not be placed (teardown.give_up decides which)."""
    assert disposition_for([], nobody=Disposition.missed) is Disposition.missed
    assert disposition_for([LegEndReason.failed], nobody=Disposition.missed) is Disposition.failed


@pytest.mark.parametrize(
    ("reasons", "result"),
    [
        ([LegEndReason.busy, LegEndReason.rejected], StepResultKind.busy),  # 486 + 603
        ([LegEndReason.rejected], StepResultKind.busy),  # declined: they were there, said no
        ([LegEndReason.busy, LegEndReason.busy], StepResultKind.busy),
        ([LegEndReason.busy, LegEndReason.no_answer], StepResultKind.no_answer),
        ([LegEndReason.rejected, LegEndReason.failed], StepResultKind.no_answer),
        ([LegEndReason.failed, LegEndReason.failed], StepResultKind.failed),
        ([], StepResultKind.no_answer),
    ],
)
def test_how_a_ring_step_nobody_answered_ended(
    reasons: list[LegEndReason], result: StepResultKind
) -> None:
    assert step_result_for(reasons) is result


def test_plan_values_are_checked() -> None:
    target = RingTarget("sip:a@127.0.0.1", Flow("UDP", "127.0.0.1", 5060))
    with pytest.raises(ValueError, match="at least one"):
        Wave(())
    with pytest.raises(ValueError, match="timeout"):
        Wave((target,), 0)
    with pytest.raises(ValueError, match="4xx-6xx"):
        Reject(200)
    with pytest.raises(ValueError, match="ring_seconds"):
        RingTarget("sip:a@127.0.0.1", Flow("UDP", "127.0.0.1", 5060), ring_seconds=0)


@pytest.mark.parametrize(
    ("responses", "best"),
    [
        ([(480, "Unavailable"), (486, "Busy Here")], (486, "Busy Here")),  # busy first
        ([(404, "Not Found"), (503, "Unavailable")], (404, "Not Found")),  # the lowest class
        ([(486, "Busy Here"), (603, "Decline")], (603, "Decline")),  # a 6xx wins
        ([(408, "Timeout"), (480, "Unavailable")], (408, "Timeout")),  # first come first
        ([None, (302, "Moved")], None),  # nothing final to relay
    ],
)
def test_the_best_final_response_of_a_wave(
    responses: list[tuple[int, str] | None], best: tuple[int, str] | None
) -> None:
    assert best_final(responses) == best


def test_what_we_relay_of_a_carriers_failure() -> None:
    assert relayable((486, "Busy Here")) == (486, "Busy Here")
    assert relayable((407, "Proxy Authentication Required"))[0] == 403
    assert relayable((503, "Service Unavailable"))[0] == 500
