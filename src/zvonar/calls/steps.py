"""Live-route steps (call.py's actor): prompts, menus, queue waits, and the post-call rating.

When the plan carries a route (``Plan.route``), the call asks it for one step at a time and
reports how each ended: a wave of forks (waves.py), prompts played to the caller, a menu
waiting for a digit, a wait in a queue, or the final answer (teardown.give_up). Prompts,
menus and queues need the caller answered: we answer with a media leg of our own (``.m``),
which later forks bridge to once somebody picks up — the same path a transfer takes.

Everything here runs in the call's one task; timers and media events come back through its
inbox, tagged with the step they belong to, so a late event of a finished step is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zvonar.calls import early
from zvonar.calls.answering import answer_caller, caller_sdp
from zvonar.calls.events import CallRated, Disposition, HangupSide, LegEndReason
from zvonar.calls.fork import step_result_for
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.plan import (
    CallStep,
    Enqueue,
    Menu,
    PlayPrompt,
    QueueAnnounce,
    QueueCallback,
    QueueOffer,
    QueueOverflow,
    QueueSignal,
    QueueWithdraw,
    Reject,
    StepResult,
    StepResultKind,
    Wave,
)
from zvonar.calls.teardown import end_winner, finish, give_up, hangup_all, stop_fork
from zvonar.calls.waves import ring_wave
from zvonar.media.engine import PlaybackFinished, PlaybackReason
from zvonar.media.errors import MediaError

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = [
    "StepTimeout",
    "advance",
    "after_wave",
    "connected",
    "on_digit",
    "on_playback",
    "on_queue_signal",
    "on_timeout",
    "start_rating",
    "wrap_up",
]

log = logging.getLogger(__name__)

RATING_DIGITS = frozenset("12345")


@dataclass(frozen=True)
class StepTimeout:
    step: int


@dataclass(eq=False)
class Live:
    """The step being performed and what it waits for."""

    step: CallStep | None = None
    seq: int = 0
    prompts: tuple[Path, ...] = ()  # still to play, in order
    playback: str | None = None  # the playback id we wait on
    playing: str | None = None  # "step", "announce", "music", "rating", "thanks"
    timer: asyncio.TimerHandle | None = None
    offer: int | None = None  # the queue offer being rung
    queue_over: bool = False  # the session was told the caller left / the call ended
    rating: bool = False  # asking the caller for a rating


def live(call: Call) -> Live:
    state = call.live
    if state is None:
        state = call.live = Live()
    return state


# -- the route -----------------------------------------------------------------------------------


async def advance(call: Call, result: StepResult | None) -> None:
    """Ask the route for the next step and start it."""
    route = call.route
    if route is None or call.done:
        return
    s = live(call)
    _cancel(s)
    s.seq += 1
    s.offer = None
    try:
        step = await route.next(result)
    except Exception:
        log.exception("call %s: the route failed", call.call_id)
        step = Reject(
            480,
            "Temporarily Unavailable",
            account_id=call.account_id,
            disposition=Disposition.failed,  # ours, not "nobody was available"
        )
    s.step = step
    if isinstance(step, Wave):
        if call.caller.state is LegState.CONFIRMED:
            await _play(call, s, (), then="music", music=_ringback())
        await ring_wave(call, step)
    elif isinstance(step, PlayPrompt | Menu):
        if await _answer(call):
            await _play(call, s, step.prompts, then="step")
        else:
            await advance(call, StepResult(StepResultKind.failed))
    elif isinstance(step, Enqueue):
        await _enqueue(call, step)
    else:
        call.final = step
        await give_up(call)


async def after_wave(call: Call) -> None:
    """A wave ended without a winner (waves.py): a queue offer rang out, or the ring step is
    over."""
    s = live(call)
    if isinstance(s.step, Enqueue) and s.offer is not None:
        offer, s.offer = s.offer, None
        s.step.session.not_answered(offer)
        return
    await advance(call, StepResult(step_result_for(call.tracker.reasons.values())))


async def connected(call: Call, fork: CalleeLeg) -> None:
    """A fork won: tell the route (path, rating) and the queue (the agent took the call)."""
    s = live(call)
    _cancel(s)
    s.prompts, s.playback, s.playing = (), None, None
    if call.route is not None:
        call.route.connected(fork.target.target)
    if isinstance(s.step, Enqueue) and s.offer is not None:
        s.step.session.answered(s.offer, fork.target.target)
        s.offer = None


# -- answering the caller ourselves --------------------------------------------------------------


async def _answer(call: Call) -> bool:
    """Answer the caller with our own media leg (once); False if that failed."""
    caller = call.caller
    if await early.confirm(call):  # on the leg it hears early media on, with the same SDP
        return True
    if caller.state is LegState.CONFIRMED:
        return caller.media_id is not None
    if caller.invite is None:
        return False
    engine, media = call.host.engine, f"{call.call_id}.m"
    try:
        endpoint = await engine.allocate(media, media)
        call.host.track_media(media, call)
        call.local_media = media
        sdp = await caller_sdp(call, media, endpoint)
    except MediaError as exc:
        log.warning("call %s: cannot answer the caller: %s", call.call_id, exc)
        return False
    await answer_caller(call, sdp)
    return True


async def _play(
    call: Call, s: Live, prompts: tuple[Path, ...], *, then: str, music: Path | None = None
) -> None:
    """Play ``prompts`` one after another (``then`` names what their end means); with
    ``music`` loop it instead (hold music, ringback)."""
    media = call.caller.media_id
    if media is None:
        return
    engine = call.host.engine
    s.prompts, s.playing = prompts, then
    try:
        if music is not None:
            s.playback = await engine.play(media, music, loop=True)
            s.playing = "music"
            return
        if not prompts:
            s.playback = None
            await engine.stop_playback(media)
            await on_playback_end(call, s)
            return
        s.playback = await engine.play(media, prompts[0])
        s.prompts = prompts[1:]
    except MediaError as exc:
        log.warning("call %s: cannot play: %s", call.call_id, exc)
        s.playback, s.prompts = None, ()
        await on_playback_end(call, s)


async def on_playback(call: Call, event: PlaybackFinished) -> bool:
    """A playback ended on the caller's leg; True when it was one of ours."""
    s = call.live
    if s is None or event.playback_id != s.playback:
        return False
    s.playback = None
    if event.reason is PlaybackReason.COMPLETED and s.prompts and s.playing != "music":
        next_prompt, s.prompts = s.prompts[0], s.prompts[1:]
        media = call.caller.media_id
        if media is not None:
            try:
                s.playback = await call.host.engine.play(media, next_prompt)
                return True
            except MediaError as exc:
                log.warning("call %s: cannot play: %s", call.call_id, exc)
    if event.reason in (PlaybackReason.STOPPED, PlaybackReason.RELEASED):
        return True  # we stopped it ourselves; whoever did knows what comes next
    await on_playback_end(call, s)
    return True


async def on_playback_end(call: Call, s: Live) -> None:
    """The prompts of the current phase are over (or could not be played)."""
    playing, s.playing = s.playing, None
    step = s.step
    if playing == "step":
        if isinstance(step, Menu):
            _arm(call, s, step.timeout)
        elif isinstance(step, PlayPrompt):
            await advance(call, StepResult(StepResultKind.completed))
    elif playing == "announce" and isinstance(step, Enqueue):
        await _hold_music(call, s, step)
    elif playing == "rating":
        rating = call.route.rating if call.route is not None else None
        _arm(call, s, rating.timeout if rating is not None else 8.0)
    elif playing == "thanks" or playing == "final":
        await hangup_all(call, HangupSide.callee)


def _arm(call: Call, s: Live, seconds: float) -> None:
    _cancel(s)
    loop = asyncio.get_running_loop()
    s.timer = loop.call_later(seconds, call.put, StepTimeout(s.seq))


def _cancel(s: Live) -> None:
    if s.timer is not None:
        s.timer.cancel()
        s.timer = None


async def on_timeout(call: Call, event: StepTimeout) -> None:
    s = call.live
    if s is None or event.step != s.seq or call.done:
        return
    s.timer = None
    if s.rating:
        await hangup_all(call, HangupSide.callee)
    elif isinstance(s.step, Menu):
        await advance(call, StepResult(StepResultKind.no_input))


async def on_digit(call: Call, digit: str) -> None:
    """A digit from the caller: a menu choice, a queue key, or a rating."""
    s = call.live
    if s is None or call.done:
        return
    if s.rating:
        if digit in RATING_DIGITS:
            s.rating = False
            _cancel(s)
            await call.publish(CallRated, score=int(digit), at=call.now())
            rating = call.route.rating if call.route is not None else None
            await _stop(call, s)
            thanks = rating.thanks if rating is not None else None
            if thanks is not None:
                await _play(call, s, (thanks,), then="thanks")
            else:
                await hangup_all(call, HangupSide.callee)
        return
    step = s.step
    if isinstance(step, Menu):
        await _stop(call, s)
        await advance(call, StepResult(StepResultKind.digit, digit=digit))
    elif isinstance(step, Enqueue) and not s.queue_over:
        step.session.digit(digit)


async def _stop(call: Call, s: Live) -> None:
    s.prompts, s.playback, s.playing = (), None, None
    media = call.caller.media_id
    if media is not None:
        with contextlib.suppress(MediaError):
            await call.host.engine.stop_playback(media)


# -- queues ----------------------------------------------------------------------------------


async def _enqueue(call: Call, step: Enqueue) -> None:
    s = live(call)
    if not await _answer(call):
        await advance(call, StepResult(StepResultKind.failed))
        return
    try:
        joined = await step.session.enter(call.put)
    except Exception:
        log.exception("call %s: the queue refused the caller", call.call_id)
        joined = False
    if not joined:
        s.queue_over = True
        await advance(call, StepResult(StepResultKind.overflow))
        return
    s.queue_over = False
    call.queued = step.session
    await _hold_music(call, s, step)


async def _hold_music(call: Call, s: Live, step: Enqueue) -> None:
    if step.hold_music is not None:
        await _play(call, s, (), then="music", music=step.hold_music)


async def on_queue_signal(call: Call, signal: QueueSignal) -> None:
    s = call.live
    if s is None or call.done or not isinstance(s.step, Enqueue) or s.queue_over:
        return
    step = s.step
    if isinstance(signal, QueueOffer):
        if call.winner is not None:
            step.session.not_answered(signal.offer)
            return
        s.offer = signal.offer
        await ring_wave(call, Wave(signal.targets, signal.timeout))
    elif isinstance(signal, QueueWithdraw):
        # Too late when an agent answered meanwhile: the answer stands, the intercept lapses.
        if s.offer == signal.offer and call.winner is None:
            await _stop_offer(call, s)
            step.session.withdrawn(signal.offer)
    elif isinstance(signal, QueueAnnounce):
        if signal.prompts and call.winner is None:
            await _play(call, s, signal.prompts, then="announce")
    elif isinstance(signal, QueueOverflow):
        s.queue_over = True
        call.queued = None
        await _stop_offer(call, s)
        await _stop(call, s)
        await advance(call, StepResult(StepResultKind.overflow))
    elif isinstance(signal, QueueCallback):
        s.queue_over = True
        call.queued = None
        await _stop_offer(call, s)
        await _stop(call, s)
        call.final_disposition = Disposition.callback
        call.final = Reject(480, account_id=call.account_id, disposition=Disposition.callback)
        if signal.prompt is not None:
            call.prompt_media = call.caller.media_id
            await _play(call, s, (signal.prompt,), then="final")
        else:  # nothing to confirm with: end it now, as the prompt's end would (a callback)
            await finish(call, Disposition.callback, HangupSide.system, caller_status=480)


async def _stop_offer(call: Call, s: Live) -> None:
    s.offer = None
    for leg_id in call.tracker.live:
        await stop_fork(call, call.forks[leg_id], LegEndReason.cancelled)
    call.cancel_timer()


def wrap_up(call: Call) -> None:
    """The call is ending: a waiting caller leaves the queue, an answered one frees the
    agent into wrap-up. Never raises (teardown must go on)."""
    s = call.live
    if s is not None:
        _cancel(s)
    session = call.queued
    if session is None or (s is not None and s.queue_over):
        return
    call.queued = None
    if s is not None:
        s.queue_over = True
    try:
        if call.winner is not None:
            session.call_ended()
        else:
            session.left()
    except Exception:
        log.exception("call %s: the queue failed to let the caller go", call.call_id)


def agent_left(call: Call) -> None:
    """The answered agent handed the call on (a blind or attended transfer): their queue
    session ends now, so they go into wrap-up and get the next caller, rather than count as
    on the call until the customer hangs up. Never raises."""
    session, s = call.queued, call.live
    if session is None or call.winner is None:
        return
    call.queued = None
    if s is not None:
        s.queue_over = True
    try:
        session.call_ended()
    except Exception:
        log.exception("call %s: the queue failed to let the agent go", call.call_id)


# -- post-call rating -------------------------------------------------------------------------


async def start_rating(call: Call, fork: CalleeLeg) -> bool:
    """The person the caller talked to hung up: ask the caller for a rating when the scheme
    wants one. False when not (the call then ends as usual)."""
    route = call.route
    rating = route.rating if route is not None else None
    media = call.caller.media_id
    if rating is None or media is None or call.caller.state is not LegState.CONFIRMED:
        return False
    s = live(call)
    wrap_up(call)  # the agent is free from now on
    try:
        await call.host.engine.unbridge(media)
    except MediaError as exc:
        log.warning("call %s: no rating: %s", call.call_id, exc)
        return False
    await end_winner(call, fork)  # the talk is over: its leg ends now, not after the rating
    s.seq += 1
    s.step, s.rating = None, True
    await _play(call, s, (rating.prompt,), then="rating")
    return True


def _ringback() -> Path | None:
    from zvonar.calls.tones import ringback_path  # generated once per process

    try:
        return ringback_path()
    except OSError as exc:
        log.warning("no ringback tone: %s", exc)
        return None
