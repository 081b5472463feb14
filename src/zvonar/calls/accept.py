"""What the person who answers hears before the call is theirs (call.py's actor): an
announcement ("a call on the Resorts line"), and on forwarded legs "press 1 to take the call".

**Confirm.** A mobile or an outside number a scheme forwards a customer to may be answered
by something other than the person: the mobile's own voicemail, a network's "the subscriber
is unavailable" that answers, a colleague's child. Taken at its word, that answer wins the
call — the customer talks to a voicemail box while the step after it (the head of sales, the
shop) is never rung, and the journal says "answered". A ring step with ``confirm`` marks its
mobiles and external numbers (:attr:`RingTarget.accept_prompt`); such a fork's 2xx does not
win yet. We ACK it and play it the prompt in a loop ("office call: press 1 to take it, 2 to
decline") while the caller keeps hearing ringing and the other forks keep ringing. "1" makes
it the winner as if it had answered just then (``Call.win``); "2" ends it as rejected;
silence for :data:`ACCEPT_SECONDS` or its BYE as unanswered — and the wave or the scheme
goes on. Desk phones and softphones of the account are never asked: their answer is the
employee's.

**Announce.** A ring step with ``announce`` (a prompt key) plays that prompt once to whoever
answers — on a mobile the caller ID cannot say which of the company's lines rang — before
the call is theirs (then the "press 1" prompt, when the step also confirms; a key pressed
during the announcement counts already).

While a fork is asked (``CalleeLeg.accept_timer`` set) a wave's timeout spares it (its own
bound ends it); another fork's answer, a pickup or the caller leaving end it with a BYE
(``teardown.stop_fork``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.early import unwatched
from zvonar.calls.events import LegEndReason
from zvonar.calls.legs import CalleeLeg
from zvonar.calls.teardown import hangup_fork
from zvonar.calls.waves import fork_over
from zvonar.media.engine import PlaybackFinished, PlaybackReason, RemoteMedia
from zvonar.media.errors import MediaError

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = [
    "ACCEPT_KEY",
    "ACCEPT_SECONDS",
    "ANNOUNCE_SECONDS",
    "DECLINE_KEY",
    "AcceptTimeout",
    "ask",
    "gone",
    "key",
    "on_playback",
    "timed_out",
]

log = logging.getLogger(__name__)

ACCEPT_SECONDS = 15.0  # the prompt (4-5 s) plays three times meanwhile
ANNOUNCE_SECONDS = 30.0  # a bound on the announcement, should its end never be reported
ACCEPT_KEY = "1"
DECLINE_KEY = "2"


@dataclass(frozen=True)
class AcceptTimeout:
    """Nobody pressed a key on ``leg_id`` in time (a voicemail, a pocket)."""

    leg_id: str


async def ask(call: Call, fork: CalleeLeg, remote: RemoteMedia) -> None:
    """``fork`` answered: announce the call and/or ask it to press 1, or let it win now."""
    target = fork.target
    if target.announce is None and target.accept_prompt is None:
        await call.win(fork, remote)
        return
    call.host.flush()  # the ACK, which nothing else sends out while it is being asked
    fork.answer = remote
    try:
        # Unwatched: a mobile network that sends no RTP before the key must not end the
        # whole call by a media timeout; the win configures the leg in full.
        await call.host.engine.configure(fork.media_id, unwatched(remote))
        if target.announce is not None:
            fork.playback = await call.host.engine.play(fork.media_id, target.announce)
            _arm(call, fork, ANNOUNCE_SECONDS)
        else:
            await _ask_for_key(call, fork)
    except MediaError as exc:
        log.info("call %s: cannot ask %s: %s", call.call_id, fork.leg_id, exc)
        fork.stop_asking()
        hangup_fork(call, fork)
        await fork_over(call, fork, LegEndReason.failed)


async def _ask_for_key(call: Call, fork: CalleeLeg) -> None:
    prompt = fork.target.accept_prompt
    assert prompt is not None
    fork.playback = await call.host.engine.play(fork.media_id, prompt, loop=True)
    _arm(call, fork, ACCEPT_SECONDS)


def _arm(call: Call, fork: CalleeLeg, seconds: float) -> None:
    fork.stop_asking()
    loop = asyncio.get_running_loop()
    fork.accept_timer = loop.call_later(seconds, call.put, AcceptTimeout(fork.leg_id))


async def on_playback(call: Call, event: PlaybackFinished) -> bool:
    """A playback ended; True when it was an announcement to a fork being asked."""
    fork = next((f for f in call.forks.values() if f.media_id == event.leg_id), None)
    if fork is None or fork.accept_timer is None or event.playback_id != fork.playback:
        return False
    fork.playback = None
    if event.reason in (PlaybackReason.STOPPED, PlaybackReason.RELEASED):
        return True  # we stopped it ourselves (a key, a winner): whoever did goes on
    if fork.target.accept_prompt is None:
        await _take(call, fork)  # announced (or the announcement failed): it is theirs
        return True
    try:
        await _ask_for_key(call, fork)
    except MediaError as exc:
        log.info("call %s: cannot ask %s for a key: %s", call.call_id, fork.leg_id, exc)
        await _drop(call, fork, LegEndReason.failed)
    return True


async def key(call: Call, fork: CalleeLeg, digit: str) -> None:
    """A key from a fork being asked: accept, decline, or (any other) nothing."""
    if fork.accept_timer is None or fork.target.accept_prompt is None:
        return  # an announcement only: keys mean nothing yet
    if digit == ACCEPT_KEY:
        await _take(call, fork)
    elif digit == DECLINE_KEY:
        await _drop(call, fork, LegEndReason.rejected)


async def _take(call: Call, fork: CalleeLeg) -> None:
    fork.stop_asking()
    if fork.playback is not None:
        fork.playback = None
        with contextlib.suppress(MediaError):
            await call.host.engine.stop_playback(fork.media_id)
    answer = fork.answer
    if answer is None or call.winner is not None or call.done:  # cannot happen: stop_fork
        hangup_fork(call, fork)  # ends a fork being asked as soon as another wins
        await fork_over(call, fork, LegEndReason.cancelled)
        return
    await call.win(fork, answer)


async def _drop(call: Call, fork: CalleeLeg, reason: LegEndReason) -> None:
    fork.stop_asking()
    hangup_fork(call, fork)
    await fork_over(call, fork, reason)


async def timed_out(call: Call, item: AcceptTimeout) -> None:
    fork = call.forks.get(item.leg_id)
    if fork is None or fork.accept_timer is None:
        return  # it answered a key, hung up or was stopped meanwhile
    fork.accept_timer = None
    if fork.target.accept_prompt is None:
        await _take(call, fork)  # an announcement whose end never came: theirs anyway
        return
    await _drop(call, fork, LegEndReason.no_answer)


async def gone(call: Call, fork: CalleeLeg) -> None:
    """A fork being asked hung up (its BYE is answered): it did not take the call."""
    fork.stop_asking()
    await fork_over(call, fork, LegEndReason.no_answer)
