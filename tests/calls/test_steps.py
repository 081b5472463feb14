"""Live-route steps in the B2BUA over loopback (calls/steps.py): a scripted route and a fake
queue session stand in for the scheme and the ACD; the caller is a signalling phone with an
RTP phone behind its offer (it sends RFC 4733 digits), the callee EchoPbx users.

Menus collect a digit (barge-in) or time out; prompts end in ``completed``; a queue wait
rings the agents the session offers and tells it who answered, who rang out, that the caller
left or that the call ended; an overflow moves the route on; a callback request ends the
call as ``callback``; the rating is asked after the agent hangs up and published.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.calls.conftest import Phone
from tests.calls.rig import ACCOUNT, Pbx, start_pbx
from tests.calls.test_b2bua import dial, final_status, hang_up, target
from tests.calls.test_voicemail import offer
from tests.media.engine.phone import Phone as RtpPhone
from tests.media.engine.phone import close_all_phones, tone_pcm
from zvonar.calls.events import CallRated, Disposition, HangupSide, Target
from zvonar.calls.legs import CallDtmf
from zvonar.calls.plan import (
    CallStep,
    Enqueue,
    Menu,
    Plan,
    PlayPrompt,
    QueueCallback,
    QueueOffer,
    QueueOverflow,
    QueueSignal,
    Rating,
    Reject,
    StepResult,
    StepResultKind,
    Wave,
)
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.wav import encode_wav
from zvonar.sip.io.testserver import CallLeg


@dataclass(eq=False)
class ScriptedRoute:
    """Gives ``steps`` in order (then a 480) and records what each ended with."""

    steps: list[CallStep]
    results: list[StepResult | None] = field(default_factory=list)
    by: list[Target] = field(default_factory=list)
    rate: Rating | None = None

    async def next(self, result: StepResult | None) -> CallStep:
        self.results.append(result)
        if self.steps:
            return self.steps.pop(0)
        return Reject(480, account_id=ACCOUNT)

    def connected(self, by: Target) -> None:
        self.by.append(by)

    @property
    def path(self) -> tuple[str, ...]:
        return ("scripted",)

    @property
    def rating(self) -> Rating | None:
        return self.rate


@dataclass(eq=False)
class FakeSession:
    """The ACD side of one wait: records the call's reports; the test sends signals."""

    queue: str = "q"
    joined: bool = True
    notify: Callable[[QueueSignal], None] | None = None
    log: list[tuple[str, object]] = field(default_factory=list)

    async def enter(self, notify: Callable[[QueueSignal], None]) -> bool:
        self.notify = notify
        self.log.append(("enter", None))
        return self.joined

    def ringing(self, offer: int, target: Target) -> None:
        self.log.append(("ringing", offer))

    def answered(self, offer: int, target: Target) -> None:
        self.log.append(("answered", offer))

    def not_answered(self, offer: int) -> None:
        self.log.append(("not_answered", offer))

    def withdrawn(self, offer: int) -> None:
        self.log.append(("withdrawn", offer))

    def digit(self, digit: str) -> None:
        self.log.append(("digit", digit))

    def left(self) -> None:
        self.log.append(("left", None))

    def call_ended(self) -> None:
        self.log.append(("call_ended", None))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.log]

    async def wait_for(self, kind: str, within: float = 5.0) -> None:
        for _ in range(int(within / 0.02)):
            if kind in self.kinds():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind}: {self.log}")


@pytest.fixture
async def spbx() -> AsyncIterator[Pbx]:
    engine = EmbeddedMediaEngine(media_timeout=0, host6=None)
    rig = await start_pbx(engine)
    yield rig
    await rig.close()
    await engine.close()
    close_all_phones()


@pytest.fixture
def prompt(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.wav"
    path.write_bytes(encode_wav(tone_pcm(600.0, 0.3)))
    return path


@pytest.fixture
def long_prompt(tmp_path: Path) -> Path:
    path = tmp_path / "long.wav"
    path.write_bytes(encode_wav(tone_pcm(500.0, 5.0)))
    return path


def routed(pbx: Pbx, number: str, route: ScriptedRoute) -> None:
    pbx.resolver.plans[number] = Plan(ACCOUNT, (), route=route)


async def answered(
    pbx: Pbx, caller: Phone, number: str
) -> tuple[CallLeg, RtpPhone, tuple[str, int]]:
    rtp = RtpPhone()
    leg = dial(caller, pbx, number, sdp=offer(rtp))
    assert await final_status(leg) == 200
    (call,) = pbx.b2bua.calls.values()
    assert call.caller.endpoint is not None
    return leg, rtp, (call.caller.endpoint.address, call.caller.endpoint.port)


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- prompts and menus ----------------------------------------------------------------------


async def test_menu_digit_cuts_the_prompt_and_routes(
    spbx: Pbx, phones: tuple[Phone, Phone], long_prompt: Path
) -> None:
    caller, callee = phones
    route = ScriptedRoute([Menu((long_prompt,), 5.0), Wave((target(callee, "answer"),), 5)])
    routed(spbx, "100", route)
    leg, rtp, dest = await answered(spbx, caller, "100")
    await rtp.wait_packets(1)
    await rtp.send_dtmf(dest, "2")  # long before the 5 s prompt is over: barge-in
    await until(lambda: bool(route.by))
    assert route.results[1] == StepResult(StepResultKind.digit, digit="2")
    assert callee.app.calls_answered == 1
    hang_up(caller, leg)
    (ended,) = await spbx.wait_ended()
    assert ended.disposition is Disposition.answered


async def test_a_menu_takes_a_digit_sent_by_sip_info(
    spbx: Pbx, phones: tuple[Phone, Phone], long_prompt: Path
) -> None:
    """Phones set to send DTMF by SIP INFO (application/dtmf-relay) work menus too."""
    caller, callee = phones
    route = ScriptedRoute([Menu((long_prompt,), 5.0), Wave((target(callee, "answer"),), 5)])
    routed(spbx, "100", route)
    leg, rtp, _dest = await answered(spbx, caller, "100")
    await rtp.wait_packets(1)
    ua = caller.runner.ua
    assert leg.dialog is not None
    info = ua.create_request(
        leg.dialog,
        "INFO",
        leg.flow,
        body=b"Signal=2\r\nDuration=160\r\n",
        content_type="application/dtmf-relay",
    )
    ua.send_request(info, leg.flow, caller.runner.loop.time())
    caller.runner.pump()
    await until(lambda: bool(route.by))
    assert route.results[1] == StepResult(StepResultKind.digit, digit="2")
    (pressed,) = spbx.bus.of_type(CallDtmf)
    assert (pressed.digit, pressed.duration) == ("2", 0.16)
    hang_up(caller, leg)
    await spbx.wait_ended()


async def test_menu_without_a_digit_times_out_then_prompts_complete(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path
) -> None:
    caller, _ = phones
    route = ScriptedRoute([Menu((prompt,), 0.3), PlayPrompt((prompt, prompt))])
    routed(spbx, "100", route)
    leg = dial(caller, spbx, "100")
    assert await final_status(leg) == 200
    (ended,) = await spbx.wait_ended()
    assert route.results[1:] == [
        StepResult(StepResultKind.no_input),
        StepResult(StepResultKind.completed),
    ]
    assert ended.disposition is not Disposition.answered
    assert leg.ended is not None and await asyncio.wait_for(leg.ended, 5) == "bye"


# --- queues ---------------------------------------------------------------------------------


async def test_queue_offer_answered_then_call_ended(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path
) -> None:
    caller, callee = phones
    session = FakeSession()
    route = ScriptedRoute([Enqueue(session, prompt)])
    routed(spbx, "100", route)
    leg = dial(caller, spbx, "100")
    assert await final_status(leg) == 200  # answered by us: hold music
    await session.wait_for("enter")
    assert session.notify is not None
    session.notify(QueueOffer(1, (target(callee, "ring"),), 0.3))
    await session.wait_for("not_answered")
    assert ("not_answered", 1) in session.log
    session.notify(QueueOffer(2, (target(callee, "answer"),), 5))
    await session.wait_for("answered")
    assert ("answered", 2) in session.log and route.by
    hang_up(caller, leg)
    (ended,) = await spbx.wait_ended()
    assert ended.disposition is Disposition.answered
    assert session.kinds()[-1] == "call_ended" and "left" not in session.kinds()


async def test_caller_leaving_the_queue_is_told_once(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path
) -> None:
    caller, _ = phones
    session = FakeSession()
    routed(spbx, "100", ScriptedRoute([Enqueue(session, prompt)]))
    leg = dial(caller, spbx, "100")
    assert await final_status(leg) == 200
    await session.wait_for("enter")
    hang_up(caller, leg)
    (ended,) = await spbx.wait_ended()
    assert ended.disposition is Disposition.abandoned
    assert ended.hangup is HangupSide.caller
    assert session.kinds().count("left") == 1


async def test_queue_digits_go_to_the_session_and_overflow_moves_on(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path
) -> None:
    caller, callee = phones
    session = FakeSession()
    route = ScriptedRoute([Enqueue(session, prompt), Wave((target(callee, "answer"),), 5)])
    routed(spbx, "100", route)
    leg, rtp, dest = await answered(spbx, caller, "100")
    await session.wait_for("enter")
    await rtp.send_dtmf(dest, "0")
    await session.wait_for("digit")
    assert ("digit", "0") in session.log
    assert session.notify is not None
    session.notify(QueueOverflow("exit_digit"))
    await until(lambda: bool(route.by))
    assert route.results[1] == StepResult(StepResultKind.overflow)
    hang_up(caller, leg)
    await spbx.wait_ended()
    assert "left" not in session.kinds()  # it overflowed: the queue already let it go


async def test_refused_queue_is_an_overflow(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path
) -> None:
    caller, _ = phones
    route = ScriptedRoute([Enqueue(FakeSession(joined=False), prompt)])
    routed(spbx, "100", route)
    leg = dial(caller, spbx, "100")
    assert await final_status(leg) == 200
    await spbx.wait_ended()
    assert route.results[1] == StepResult(StepResultKind.overflow)


@pytest.mark.parametrize("confirmed", [True, False], ids=["with-prompt", "without-prompt"])
async def test_callback_request_ends_the_call_as_callback(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path, confirmed: bool
) -> None:
    """With or without a confirmation prompt: without one it was journalled failed."""
    caller, _ = phones
    session = FakeSession()
    routed(spbx, "100", ScriptedRoute([Enqueue(session, prompt)]))
    leg = dial(caller, spbx, "100")
    assert await final_status(leg) == 200
    await session.wait_for("enter")
    assert session.notify is not None
    session.notify(QueueCallback(prompt if confirmed else None))  # the confirmation, our BYE
    assert leg.ended is not None and await asyncio.wait_for(leg.ended, 5) == "bye"
    (ended,) = await spbx.wait_ended()
    assert ended.disposition is Disposition.callback
    assert "left" not in session.kinds()  # the place is kept


# --- rating ---------------------------------------------------------------------------------


async def test_rating_after_the_agent_hangs_up(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path
) -> None:
    caller, callee = phones
    route = ScriptedRoute([Wave((target(callee, "answer"),), 5)], rate=Rating(prompt, prompt))
    routed(spbx, "100", route)
    leg, rtp, dest = await answered(spbx, caller, "100")
    await asyncio.sleep(0.1)
    (callee_leg,) = list(callee.app._legs.values())
    callee_leg.dialog = next(
        d for d in callee.runner.ua.dialogs if d.id.local_tag == callee_leg.local_tag
    )
    hang_up(callee, callee_leg)
    await until(lambda: callee.app.calls_ended == 1 or callee_leg.state == "ended")
    await asyncio.sleep(0.5)  # the rating prompt plays
    await rtp.send_dtmf(dest, "4")
    assert leg.ended is not None and await asyncio.wait_for(leg.ended, 5) == "bye"
    (ended,) = await spbx.wait_ended()
    (rated,) = spbx.bus.of_type(CallRated)
    assert rated.score == 4
    assert ended.disposition is Disposition.answered
    kinds = spbx.kinds()
    assert kinds.index("CallRated") < kinds.index("CallEnded")


async def test_no_rating_digit_hangs_up_after_the_timeout(
    spbx: Pbx, phones: tuple[Phone, Phone], prompt: Path
) -> None:
    caller, callee = phones
    route = ScriptedRoute(
        [Wave((target(callee, "answer"),), 5)], rate=Rating(prompt, None, timeout=0.3)
    )
    routed(spbx, "100", route)
    leg, _, _ = await answered(spbx, caller, "100")
    await asyncio.sleep(0.1)
    (callee_leg,) = list(callee.app._legs.values())
    callee_leg.dialog = next(
        d for d in callee.runner.ua.dialogs if d.id.local_tag == callee_leg.local_tag
    )
    hang_up(callee, callee_leg)
    assert leg.ended is not None and await asyncio.wait_for(leg.ended, 5) == "bye"
    await spbx.wait_ended()
    assert spbx.bus.of_type(CallRated) == []
