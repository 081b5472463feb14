"""A target's own ring time inside a wave (``RingTarget.ring_seconds``), over loopback UDP:
that fork alone is CANCELled when its time is up, the others ring on until the wave's timer;
its journal leg ends as not answered; a wave whose every target has a shorter time of its own
is over at the last of them, not at its timer."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

from tests.calls.conftest import Phone, make_phone
from tests.calls.rig import ACCOUNT, Pbx
from zvonar.calls.events import Disposition, LegEnded, LegEndReason
from zvonar.calls.plan import Plan, RingTarget, Wave
from zvonar.sip.io.testserver import CallLeg
from zvonar.sip.ua import CancelRequested, Flow, UaEvent


def target(phone: Phone, user: str, ring_seconds: float | None = None) -> RingTarget:
    return RingTarget(phone.uri(user), phone.flow, ring_seconds=ring_seconds)


def dial(caller: Phone, pbx: Pbx, user: str) -> CallLeg:
    leg = caller.app.originate(f"sip:{user}@{pbx.address}", pbx.flow, caller.runner.loop.time())
    caller.runner.pump()
    return leg


def cancels(phone: Phone) -> list[float]:
    """When (loop time) each CANCEL reached ``phone``."""
    seen: list[float] = []

    def hook(event: UaEvent) -> None:
        if isinstance(event, CancelRequested):
            seen.append(asyncio.get_running_loop().time())

    phone.runner.add_event_hook(hook)
    return seen


def ends(pbx: Pbx) -> list[tuple[str, LegEndReason]]:
    return [(e.leg_id.rsplit(".", 1)[-1], e.reason) for e in pbx.bus.of_type(LegEnded)]


async def test_a_target_stops_ringing_at_its_own_time_and_the_wave_rings_on(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, short = phones
    long = await make_phone()
    try:
        short_cancels, long_cancels = cancels(short), cancels(long)
        wave = Wave((target(short, "ring", 0.4), target(long, "ring")), 1.2)
        pbx.resolver.plans["100"] = Plan(ACCOUNT, (wave,))
        loop = asyncio.get_running_loop()
        began = loop.time()
        leg = dial(caller, pbx, "100")
        assert leg.answered is not None
        assert await asyncio.wait_for(leg.answered, 5) == 480
        (ended,) = await pbx.wait_ended()
    finally:
        await long.runner.close()
    (cut,), (rang_out,) = short_cancels, long_cancels
    assert 0.35 <= cut - began < 0.9  # its own 0.4 s, not the wave's 1.2 s
    assert 1.15 <= rang_out - began < 2.0  # the other rang the wave's whole time
    assert ends(pbx) == [("w0t0", LegEndReason.no_answer), ("w0t1", LegEndReason.no_answer)]
    assert ended.disposition is Disposition.missed


async def test_a_wave_whose_targets_all_gave_up_is_over_before_its_timer(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """Both targets' own times (0.3 s, 0.6 s) end before the wave's 5 s: the next wave rings
    at 0.6 s, and its answer takes the call; the first two stay unanswered in the journal."""
    caller, callee = phones
    first = Wave((target(callee, "ring", 0.3), target(callee, "ring", 0.6)), 5)
    pbx.resolver.plans["100"] = Plan(ACCOUNT, (first, Wave((target(callee, "answer"),), 5)))
    loop = asyncio.get_running_loop()
    began = loop.time()
    leg = dial(caller, pbx, "100")
    assert leg.answered is not None
    assert await asyncio.wait_for(leg.answered, 5) == 200
    assert 0.55 <= loop.time() - began < 2.0
    caller.app.hangup(leg, caller.runner.loop.time())
    caller.runner.pump()
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    assert ends(pbx) == [
        ("w0t0", LegEndReason.no_answer),
        ("w0t1", LegEndReason.no_answer),
        ("w1t0", LegEndReason.completed),
    ]


async def test_a_target_that_answers_our_invite_goes_on_to_its_ring_limit(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    """Silence bound and ring limit share the fork's timer: a ringing target passes the
    silence bound (0.2 s) and is CANCELled at its own limit (0.5 s); a silent one is passed
    over at the silence bound, whatever its limit."""
    caller, callee = phones
    seen = cancels(callee)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))  # bound, never read: that INVITE goes nowhere
        port = hole.getsockname()[1]
        dead = RingTarget(f"sip:dead@127.0.0.1:{port}", Flow("UDP", "127.0.0.1", port))
        wave = Wave((replace(dead, ring_seconds=0.8), target(callee, "ring", 0.5)), 3, silence=0.2)
        pbx.resolver.plans["100"] = Plan(ACCOUNT, (wave,))
        loop = asyncio.get_running_loop()
        began = loop.time()
        leg = dial(caller, pbx, "100")
        assert leg.answered is not None
        assert await asyncio.wait_for(leg.answered, 5) == 480
        over = loop.time() - began
        await pbx.wait_ended()
    (cut,) = seen
    assert 0.45 <= cut - began < 1.0
    assert over < 2.0  # not the wave's 3 s: both forks were over by then
    assert ends(pbx) == [("w0t0", LegEndReason.no_answer), ("w0t1", LegEndReason.no_answer)]


def test_a_redirects_contact_rings_within_what_is_left_of_the_targets_own_time() -> None:
    """A phone with 4 s of its own answers 302 after 1.5 s: its Contact rings 2.5 s more,
    not the rest of the wave (redirect.py); without a limit of its own, the wave's."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from zvonar.calls import redirect

    t0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    call = SimpleNamespace(now=lambda: t0 + timedelta(seconds=1.5))
    limited = SimpleNamespace(
        target=RingTarget("sip:a@127.0.0.1", Flow("UDP", "127.0.0.1", 5060), ring_seconds=4),
        invited_at=t0,
    )
    free = SimpleNamespace(target=replace(limited.target, ring_seconds=None), invited_at=t0)
    assert redirect._ring_left(call, limited) == 2.5  # type: ignore[arg-type]
    assert redirect._ring_left(call, free) is None  # type: ignore[arg-type]
