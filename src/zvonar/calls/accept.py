"""Answer confirmation on forwarded legs: "press 1 to take the call" (call.py's actor).

A mobile or an outside number a scheme forwards a customer to may be answered by something
other than the person: the mobile's own voicemail, a network's "the subscriber is
unavailable" that answers, a colleague's child. Taken at its word, that answer wins the call
— the customer talks to a voicemail box while the step after it (the head of sales, the
shop) is never rung, and the journal says "answered". A ring step with ``confirm`` marks its
mobiles and external numbers (:attr:`RingTarget.accept_prompt`); such a fork's 2xx does not
win yet. We ACK it and play it the prompt in a loop ("a call from the office line: press 1 to
take it, 2 to decline") while the caller keeps hearing ringing and the other forks keep
ringing. "1" makes it the winner as if it had answered just then (``Call.win``); "2" ends it
as rejected; silence for :data:`ACCEPT_SECONDS` or its BYE as unanswered — and the wave or
the scheme goes on. A wave's timeout spares a fork that is being asked (its own bound ends
it); another fork's answer, a pickup or the caller leaving ends it with a BYE
(``teardown.stop_fork``). Desk phones and softphones of the account are never asked: their
answer is the employee's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.events import LegEndReason
from zvonar.calls.legs import CalleeLeg
from zvonar.calls.teardown import hangup_fork
from zvonar.calls.waves import fork_over
from zvonar.media.engine import RemoteMedia
from zvonar.media.errors import MediaError

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = [
    "ACCEPT_KEY",
    "ACCEPT_SECONDS",
    "DECLINE_KEY",
    "AcceptTimeout",
    "ask",
    "gone",
    "key",
    "timed_out",
]

log = logging.getLogger(__name__)

ACCEPT_SECONDS = 15.0  # the prompt (4-5 s) plays three times meanwhile
ACCEPT_KEY = "1"
DECLINE_KEY = "2"


@dataclass(frozen=True)
class AcceptTimeout:
    """Nobody pressed a key on ``leg_id`` in time (a voicemail, a pocket)."""

    leg_id: str


async def ask(call: Call, fork: CalleeLeg, remote: RemoteMedia) -> None:
    """``fork`` answered and must confirm: play it the prompt and wait for its key."""
    prompt, engine = fork.target.accept_prompt, call.host.engine
    if prompt is None:
        await call.win(fork, remote)
        return
    call.host.flush()  # the ACK, which nothing else sends out while it is being asked
    try:
        await engine.configure(fork.media_id, remote)
        await engine.play(fork.media_id, prompt, loop=True)
    except MediaError as exc:
        log.info("call %s: cannot ask %s to accept: %s", call.call_id, fork.leg_id, exc)
        hangup_fork(call, fork)
        await fork_over(call, fork, LegEndReason.failed)
        return
    fork.answer = remote
    loop = asyncio.get_running_loop()
    fork.accept_timer = loop.call_later(ACCEPT_SECONDS, call.put, AcceptTimeout(fork.leg_id))


async def key(call: Call, fork: CalleeLeg, digit: str) -> None:
    """A key from a fork being asked: accept, decline, or (any other) nothing."""
    if fork.accept_timer is None or digit not in (ACCEPT_KEY, DECLINE_KEY):
        return
    _stop_asking(fork)
    if digit == DECLINE_KEY:
        hangup_fork(call, fork)
        await fork_over(call, fork, LegEndReason.rejected)
        return
    with contextlib.suppress(MediaError):
        await call.host.engine.stop_playback(fork.media_id)
    answer = fork.answer
    if answer is None or call.winner is not None or call.done:  # cannot happen: stop_fork
        hangup_fork(call, fork)  # ends a fork being asked as soon as another wins
        await fork_over(call, fork, LegEndReason.cancelled)
        return
    await call.win(fork, answer)


async def timed_out(call: Call, item: AcceptTimeout) -> None:
    fork = call.forks.get(item.leg_id)
    if fork is None or fork.accept_timer is None:
        return  # it answered a key, hung up or was stopped meanwhile
    fork.accept_timer = None
    hangup_fork(call, fork)
    await fork_over(call, fork, LegEndReason.no_answer)


async def gone(call: Call, fork: CalleeLeg) -> None:
    """A fork being asked hung up (its BYE is answered): it did not take the call."""
    _stop_asking(fork)
    await fork_over(call, fork, LegEndReason.no_answer)


def _stop_asking(fork: CalleeLeg) -> None:
    timer, fork.accept_timer = fork.accept_timer, None
    if timer is not None:
        timer.cancel()
