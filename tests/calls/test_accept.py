"""Answer confirmation on forwarded legs (calls/accept.py) over loopback: a fork whose target
carries an accept prompt is asked ("press 1") before it wins; "1" wins, "2", silence or its
BYE let the call go on, another winner or the caller leaving end it with a BYE. The keys are
the engine's DtmfReceived events put to the call (the SIPp e2e test sends real RFC 4733)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.calls.test_steps import FakeSession, ScriptedRoute, routed
from tests.calls.test_steps import prompt as prompt  # a fixture
from tests.calls.test_steps import spbx as spbx  # a fixture
from zvonar.calls import accept
from zvonar.calls.call import Call
from zvonar.calls.events import CallAnswered, Disposition, LegEnded, LegEndReason
from zvonar.calls.legs import CalleeLeg
from zvonar.calls.plan import Enqueue, Plan, QueueOffer, RingTarget, Wave
from zvonar.media.engine import DtmfReceived
from zvonar.media.prompts import prompt_path
from zvonar.sip.io.testserver import CallLeg

PROMPT = prompt_path("accept_call", "en")


def asking(phone: Phone, user: str = "answer") -> RingTarget:
    return replace(target(phone, user), accept_prompt=PROMPT)


async def asked(pbx: Pbx, count: int = 1, within: float = 5.0) -> tuple[Call, list[CalleeLeg]]:
    """The call once ``count`` of its forks answered and are being asked."""
    for _ in range(int(within / 0.01)):
        for call in pbx.b2bua.calls.values():
            forks = [f for f in call.forks.values() if f.accept_timer is not None]
            if len(forks) >= count:
                return call, forks
        await asyncio.sleep(0.01)
    raise AssertionError(f"no call with {count} forks being asked within {within} s")


def press(call: Call, fork: CalleeLeg, digit: str) -> None:
    call.put(DtmfReceived(fork.media_id, digit, 0.1))


def ends(pbx: Pbx) -> dict[str, LegEndReason]:
    return {e.leg_id: e.reason for e in pbx.bus.of_type(LegEnded)}


async def until(check: object, within: float = 5.0) -> None:
    for _ in range(int(within / 0.01)):
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_the_prompt_ships_in_every_language() -> None:
    for lang in ("en", "ru", "uk"):
        assert prompt_path("accept_call", lang).stat().st_size > 8000


async def test_one_wins_the_call_only_when_pressed(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["700"] = Plan(ACCOUNT, (Wave((asking(callee),), 10),))
    leg = dial(caller, pbx, "700")
    call, (fork,) = await asked(pbx)
    await asyncio.sleep(0.2)
    # answered by the mobile, but not the caller's yet: still ringing, nothing in the journal
    assert leg.answered is not None and not leg.answered.done()
    assert not pbx.bus.of_type(CallAnswered) and call.winner is None
    engine_leg = pbx.b2bua.engine._legs[fork.media_id]  # type: ignore[attr-defined]
    assert engine_leg.player is not None  # the prompt plays to it
    press(call, fork, "7")  # any other key: nothing
    await asyncio.sleep(0.1)
    assert fork.accept_timer is not None and call.winner is None
    press(call, fork, "1")
    assert await final_status(leg) == 200
    assert call.winner is fork and fork.accept_timer is None
    assert [a.leg_id for a in pbx.bus.of_type(CallAnswered)] == [fork.leg_id]
    assert engine_leg.player is None  # the prompt stopped: the two talk
    hang_up(caller, leg)
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.answered
    assert ends(pbx) == {fork.leg_id: LegEndReason.completed}


@pytest.mark.parametrize(
    ("how", "reason"),
    [("2", LegEndReason.rejected), ("silence", LegEndReason.no_answer)],
)
async def test_a_decline_or_silence_moves_on_to_the_next_wave(
    pbx: Pbx, phones: tuple[Phone, Phone], monkeypatch: pytest.MonkeyPatch, how: str, reason: str
) -> None:
    monkeypatch.setattr(accept, "ACCEPT_SECONDS", 0.3)
    caller, callee = phones
    waves = (Wave((asking(callee),), 10), Wave((target(callee, "answer"),), 10))
    pbx.resolver.plans["701"] = Plan(ACCOUNT, waves)
    leg = dial(caller, pbx, "701")
    call, (fork,) = await asked(pbx)
    if how != "silence":
        press(call, fork, how)
    assert await final_status(leg) == 200  # the second wave's phone
    assert call.winner is not None and call.winner.wave == 1
    assert ends(pbx) == {fork.leg_id: reason}
    await until(lambda: callee.app.calls_ended >= 1)  # our BYE reached the asked phone
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_hang_up_while_asked_moves_on(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    waves = (Wave((asking(callee),), 10), Wave((target(callee, "answer"),), 10))
    pbx.resolver.plans["702"] = Plan(ACCOUNT, waves)
    leg = dial(caller, pbx, "702")
    _call, (fork,) = await asked(pbx)
    (callee_leg,) = list(callee.app._legs.values())
    callee_leg.dialog = next(
        d for d in callee.runner.ua.dialogs if d.id.local_tag == callee_leg.local_tag
    )
    hang_up(callee, callee_leg)  # a voicemail box that hangs up on silence
    assert await final_status(leg) == 200
    assert ends(pbx) == {fork.leg_id: LegEndReason.no_answer}
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_the_wave_timeout_spares_a_fork_being_asked(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    wave = Wave((asking(callee), target(callee, "ring")), 0.3)
    pbx.resolver.plans["703"] = Plan(ACCOUNT, (wave,))
    leg = dial(caller, pbx, "703")
    call, (fork,) = await asked(pbx)
    await asyncio.sleep(0.6)  # the wave timed out: the ringing phone is cancelled, not this
    assert ends(pbx) == {f"{call.call_id}.w0t1": LegEndReason.no_answer}
    assert fork.accept_timer is not None
    press(call, fork, "1")
    assert await final_status(leg) == 200
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_the_first_to_press_wins_and_the_other_is_hung_up(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    pbx.resolver.plans["704"] = Plan(ACCOUNT, (Wave((asking(callee), asking(callee)), 10),))
    leg = dial(caller, pbx, "704")
    call, forks = await asked(pbx, 2)
    press(call, forks[1], "1")
    assert await final_status(leg) == 200
    assert call.winner is forks[1]
    assert ends(pbx) == {forks[0].leg_id: LegEndReason.cancelled}
    assert forks[0].accept_timer is None
    await until(lambda: callee.app.calls_ended >= 1)
    press(call, forks[0], "1")  # too late: nothing
    await asyncio.sleep(0.1)
    assert call.winner is forks[1]
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_the_caller_leaving_hangs_up_a_fork_being_asked(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    pbx.resolver.plans["705"] = Plan(ACCOUNT, (Wave((asking(callee),), 10),))
    leg: CallLeg = dial(caller, pbx, "705")
    _call, (fork,) = await asked(pbx)
    hang_up(caller, leg)  # CANCEL
    assert await final_status(leg) == 487
    (ended,) = await pbx.wait_ended()
    assert ended.disposition is Disposition.abandoned
    assert ends(pbx) == {fork.leg_id: LegEndReason.cancelled}
    await until(lambda: callee.app.calls_ended >= 1)  # BYE, not a CANCEL: it had answered
    await until(lambda: pbx.b2bua.engine.leg_count == 0)  # type: ignore[attr-defined]


async def test_a_key_sent_by_sip_info_accepts_too(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["706"] = Plan(ACCOUNT, (Wave((asking(callee),), 10),))
    leg = dial(caller, pbx, "706")
    call, (fork,) = await asked(pbx)
    (callee_leg,) = list(callee.app._legs.values())
    ua = callee.runner.ua
    dialog = next(d for d in ua.dialogs if d.id.local_tag == callee_leg.local_tag)
    body = b"Signal=1\r\nDuration=160\r\n"
    info = ua.create_request(
        dialog, "INFO", callee_leg.flow, body=body, content_type="application/dtmf-relay"
    )
    ua.send_request(info, callee_leg.flow, callee.runner.loop.time())
    callee.runner.pump()
    assert await final_status(leg) == 200
    assert call.winner is fork
    hang_up(caller, leg)
    await pbx.wait_ended()


SHORT = prompt_path("n1", "en")  # "one": about half a second


def announced(phone: Phone, user: str = "answer", *, confirm: bool = False) -> RingTarget:
    return replace(target(phone, user), announce=SHORT, accept_prompt=PROMPT if confirm else None)


async def test_an_announcement_plays_before_the_call_is_theirs(
    pbx: Pbx, phones: tuple[Phone, Phone]
) -> None:
    caller, callee = phones
    pbx.resolver.plans["707"] = Plan(ACCOUNT, (Wave((announced(callee),), 10),))
    leg = dial(caller, pbx, "707")
    call, (fork,) = await asked(pbx)
    started = asyncio.get_running_loop().time()
    press(call, fork, "1")  # no key is asked for: nothing
    await asyncio.sleep(0.1)
    assert leg.answered is not None and not leg.answered.done() and call.winner is None
    assert await final_status(leg) == 200  # once "one" was said
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert call.winner is fork and fork.accept_timer is None
    assert [a.leg_id for a in pbx.bus.of_type(CallAnswered)] == [fork.leg_id]
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_an_announcement_then_the_key(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    pbx.resolver.plans["708"] = Plan(ACCOUNT, (Wave((announced(callee, confirm=True),), 10),))
    leg = dial(caller, pbx, "708")
    call, (fork,) = await asked(pbx)
    announcing = fork.playback
    await until(lambda: fork.playback not in (None, announcing))  # "press 1" loops now
    assert leg.answered is not None and not leg.answered.done()
    press(call, fork, "1")
    assert await final_status(leg) == 200
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_key_during_the_announcement_counts(pbx: Pbx, phones: tuple[Phone, Phone]) -> None:
    caller, callee = phones
    slow = replace(announced(callee, confirm=True), announce=PROMPT)  # 4 s long
    pbx.resolver.plans["709"] = Plan(ACCOUNT, (Wave((slow,), 10),))
    leg = dial(caller, pbx, "709")
    call, (fork,) = await asked(pbx)
    press(call, fork, "1")
    assert await final_status(leg, within=1.0) == 200
    assert call.winner is fork
    hang_up(caller, leg)
    await pbx.wait_ended()


async def test_a_queue_offer_to_a_mobile_waits_for_its_key(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue's offer (its own short timeout) spares a fork being asked; silence ends the
    offer unanswered, a later offer's "1" is answered by the agent."""
    monkeypatch.setattr(accept, "ACCEPT_SECONDS", 0.5)
    caller, callee = phones
    session = FakeSession()
    routed(spbx, "100", ScriptedRoute([Enqueue(session, prompt)]))
    leg = dial(caller, spbx, "100")
    assert await final_status(leg) == 200  # answered by us: hold music
    await session.wait_for("enter")
    assert session.notify is not None
    loop = asyncio.get_running_loop()
    offered = loop.time()
    session.notify(QueueOffer(1, (asking(callee),), 0.2))
    call, (fork,) = await asked(spbx)
    await session.wait_for("not_answered")  # after the silence, not at the offer's 0.2 s
    assert loop.time() - offered >= 0.45
    assert fork.accept_timer is None and ("answered", 1) not in session.log
    session.notify(QueueOffer(2, (asking(callee),), 0.2))
    call, (fork,) = await asked(spbx)
    press(call, fork, "1")
    await session.wait_for("answered")
    assert ("answered", 2) in session.log and call.winner is fork
    hang_up(caller, leg)
    await spbx.wait_ended()
