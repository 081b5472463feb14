"""Waves of forks (call.py's actor): ring every target of a wave at once, move on when the
wave is over or its timer fires, give up when no wave is left. A fork may also have bounds of
its own (``fork.Bound``: the wave's silence bound, its target's ``ring_seconds``), each ending
that fork alone while the wave goes on. The decisions are pure (fork.py); these functions only
carry them out on the :class:`~zvonar.calls.call.Call`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from zvonar.calls import early
from zvonar.calls.events import CallRinging, LegEndReason
from zvonar.calls.events import LegEnded as LegEndedEvent
from zvonar.calls.fork import Bound, WaveTracker, best_final, relayable
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.plan import Plan, Reject, RingTarget, Wave
from zvonar.calls.sdp_bridge import new_offer_answer
from zvonar.calls.signalling import invite_request
from zvonar.calls.teardown import give_up, hangup_fork, release, stop_fork, tried
from zvonar.media.errors import MediaError
from zvonar.sip.errors import SipError

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = [
    "ForkTimeout",
    "WaveTimeout",
    "fork_over",
    "fork_timeout",
    "next_wave",
    "ring_round",
    "ring_wave",
    "start_fork",
    "wave_timeout",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaveTimeout:
    wave: int


@dataclass(frozen=True)
class ForkTimeout:
    """The timer of fork ``leg_id``'s own bounds fired (which one: its wave's tracker)."""

    leg_id: str


# A target's server failures that send the INVITE to its next server (RFC 3263 §4.3): a
# timeout (408: the transaction's own, or Wave.silence), a transport error (reported as 503)
# or a 503 response.
SERVER_FAILURES = frozenset({408, 503})


async def next_wave(call: Call) -> None:
    """The current wave is over without a winner (or the call just began): ring the next
    one. With a live route (steps.py) the route decides what comes next."""
    if call.route is not None and call.round == 0:
        await call.after_wave()
        return
    plan = call.plan
    while plan is not None and not call.done:
        if plan.fail_over is not None and call.wave >= 0 and not _fails_over(call, plan):
            await give_up(call)  # with the far end's answer (an outbound call's busy)
            return
        if call.wave + 1 >= len(plan.waves):
            await give_up(call)
            return
        await ring_wave(call, plan.waves[call.wave + 1])
        if not call.tracker.over:
            return


async def ring_round(call: Call, plan: Plan, waves: tuple[Wave, ...]) -> None:
    """Ring ``waves`` for the caller as a new round of the call (a transfer's target, the
    parker rung back): no winner, the plan's waves replaced, and then, if none answers,
    480 to the caller. A live route is not asked: its steps are over (``round`` > 0)."""
    call.winner = None
    call.round += 1
    call.wave = -1
    call.reasons = []
    call.plan = replace(plan, waves=waves)
    call.final = Reject(480, "Temporarily Unavailable", account_id=call.account_id)
    await next_wave(call)


def _display_for(call: Call, target: RingTarget) -> str | None:
    """The caller's name as the plan shows it to the account's phones (``caller_display``);
    not for a target that shows its own identity (an outbound caller ID)."""
    plan = call.plan
    return plan.caller_display if plan is not None and target.from_user is None else None


def _fails_over(call: Call, plan: Plan) -> bool:
    """Whether the wave that just failed lets the next one ring (``Plan.fail_over``); the
    caller's final answer is then the wave's best response (RFC 3261 §16.7 step 6)."""
    best = best_final([f.final for f in call.forks.values() if f.wave == call.wave and f.final])
    if best is None:  # nobody answered in time: the plan's own final answer
        return False
    call.final = Reject(*relayable(best), account_id=plan.account_id)
    return plan.fail_over is not None and best[0] in plan.fail_over


async def ring_wave(call: Call, wave: Wave) -> None:
    """Ring every target of ``wave`` at once and arm its timer. If no fork could even start,
    the wave is over at once and the caller moves on (next wave or step)."""
    call.wave += 1
    prefix = f"r{call.round}w" if call.round else "w"  # a transfer rings a new round
    ids = [f"{call.call_id}.{prefix}{call.wave}t{i}" for i in range(len(wave.targets))]
    call.tracker = WaveTracker(ids)
    call.silence = (
        wave.silence if wave.silence is not None and wave.silence < wave.timeout else None
    )
    for leg_id, target in zip(ids, wave.targets, strict=True):
        await start_fork(call, leg_id, target)
    if not call.tracker.over:
        loop = asyncio.get_running_loop()
        call.wave_timer = loop.call_later(wave.timeout, call.put, WaveTimeout(call.wave))
    elif call.route is not None and call.round == 0:
        await call.after_wave()


async def start_fork(call: Call, leg_id: str, target: RingTarget) -> None:
    """Ring ``target`` as fork ``leg_id`` of the current wave (already in its tracker)."""
    host, ua = call.host, call.host.ua
    engine_call = f"{call.call_id}.{leg_id.rsplit('.', 1)[-1]}"
    media = leg_id
    try:
        # Only the target's media leg: the caller's side of the pair waits until the caller
        # needs it (early.caller_side), which most forks never do.
        endpoint = await host.engine.allocate(engine_call, media)
        host.track_media(media, call)
        oa = new_offer_answer(endpoint, secure=target.secure_media)
        offer = oa.create_offer().serialize().encode()
        fork = CalleeLeg(
            leg_id=leg_id,
            wave=call.wave,
            target=target,
            flow=target.flow,
            local_tag=ua.token(),
            sip_call_id=f"{ua.token()}@zvonar",
            media_id=media,
            caller_media_id="",
            endpoint=endpoint,
            caller_endpoint=None,
            oa=oa,
        )
        call.forks[leg_id] = fork
        fork.invited_at = call.now()
        fork.request = invite_request(
            target=target.uri,
            caller=call.caller_request,
            local_tag=fork.local_tag,
            call_id=fork.sip_call_id,
            via=ua.via_for(fork.flow),
            contact=str(ua.contact_uri(fork.flow)),
            user_agent=ua.user_agent,
            sdp=offer,
            from_user=target.from_user,
            from_display=target.from_display or _display_for(call, target),
            diversion=target.diversion,
            carrier_user=target.carrier_user,
            withhold=target.withhold,
            auto_answer=target.auto_answer,
            allow=ua.allow_header,
        )
        host.track_dialog(fork.sip_call_id, fork.local_tag, call)
        fork.invite_key = ua.send_request(fork.request, fork.flow, host.now())
        host.track_key(fork.invite_key, call)
        host.flush()
        first = call.tracker.bound(leg_id, silence=call.silence, ring=target.ring_seconds)
        if first is not None:
            _arm(call, leg_id, first)
        if call.invited_at is not None:  # the first INVITE out: the post-dial delay
            if call.caller.invite is not None:  # rung directly, not after our menu or queue
                host.post_dial_delay.observe(host.now() - call.invited_at)
            call.invited_at = None
    except (MediaError, SipError, ValueError) as exc:
        log.warning("call %s: cannot ring %s: %s", call.call_id, target.uri, exc)
        await release(call, media)
        call.tracker.ended(leg_id, LegEndReason.failed)
        call.reasons.append(LegEndReason.failed)
        made = call.forks.get(leg_id)
        if made is not None:
            await tried(call, made)
        else:  # it failed before it existed: its row still says whom we tried
            await call.publish(CallRinging, leg_id=leg_id, target=target.target, at=call.now())
        await call.publish(LegEndedEvent, leg_id=leg_id, reason=LegEndReason.failed, at=call.now())


async def wave_timeout(call: Call, wave: int) -> None:
    if wave != call.wave or call.winner is not None or call.done:
        return
    for leg_id in call.tracker.live:
        fork = call.forks[leg_id]
        if fork.accept_timer is None:  # one being asked to confirm has its own bound
            await stop_fork(call, fork, LegEndReason.no_answer)
    if call.tracker.over:
        await next_wave(call)


def _arm(call: Call, leg_id: str, delay: float) -> None:
    """Fork ``leg_id``'s timer (one at a time: its tracker knows which bound is next); the
    call's ``cancel_timer`` stops it with the wave's."""
    loop = asyncio.get_running_loop()
    call.fork_timers[leg_id] = loop.call_later(delay, call.put, ForkTimeout(leg_id))


async def fork_timeout(call: Call, leg_id: str) -> None:
    """One of fork ``leg_id``'s own bounds ran out, while it still rings:

    * ``Bound.silence`` (``Wave.silence``): if it has heard nothing at all, its target is
      unreachable (408, as if its transaction had timed out) and the wave goes on without it —
      or with the target's next server. Its CANCEL waits for a provisional that may never
      come (§9.1); a 2xx that comes after all gets ACK + BYE (``Call._answered``), and the
      transaction's own timeout later finds the fork over.
    * ``Bound.ring`` (``RingTarget.ring_seconds``): its own time is over. It alone is
      CANCELled, as not answered, and the wave rings on with the others; if it was the last,
      the wave is over now rather than at its timer.

    A fork that answered (or is being asked to confirm, accept.py) is past its bounds."""
    call.fork_timers.pop(leg_id, None)
    fork = call.forks.get(leg_id)
    if fork is None or call.done or fork.wave != call.wave or call.winner is not None:
        return
    bound, after = call.tracker.due(leg_id)
    if fork.state is not LegState.INVITING:
        return
    if bound is Bound.ring:
        log.info("call %s: %s rang its own time out", call.call_id, leg_id)
        await stop_fork(call, fork, LegEndReason.no_answer)
        await _move_on_if_over(call)
        return
    if bound is Bound.silence and not fork.heard:
        log.info("call %s: %s silent, passed over", call.call_id, leg_id)
        fork.final = (408, "Request Timeout")
        hangup_fork(call, fork)
        await fork_over(call, fork, LegEndReason.no_answer)
        return
    if after is not None:  # it spoke in time: on to its ring limit
        _arm(call, leg_id, after)


async def _move_on_if_over(call: Call) -> None:
    """Every fork of the wave ended and none answered: the next wave now, not at its timer."""
    if call.tracker.over and call.winner is None:
        call.cancel_timer()
        await next_wave(call)


def _replacement(fork: CalleeLeg) -> tuple[RingTarget, str] | None:
    """The target to ring in ``fork``'s place, and the suffix of its leg id: the target's next
    server after a server failure (``SERVER_FAILURES`` before it rang, RFC 3263 §4.3), or the
    target again with plain RTP after it refused our SRTP offer (``RingTarget.plain``)."""
    if fork.final is None:
        return None
    status, target = fork.final[0], fork.target
    if target.fallbacks and status in SERVER_FAILURES and not fork.rang:
        # Not once it rang: what failed after that is the callee's side.
        return replace(target, flow=target.fallbacks[0], fallbacks=target.fallbacks[1:]), "s"
    plain = target.plain(status)
    return (plain, "p") if plain is not None else None


async def next_try(call: Call, fork: CalleeLeg, reason: LegEndReason) -> bool:
    """``fork`` failed in a way its target may get past (``_replacement``): the next attempt gets
    the INVITE in its place, in the same wave and under its timer (True). The failed attempt
    keeps its own journal leg."""
    attempt = _replacement(fork)
    if attempt is None:
        return False
    if call.done or fork.wave != call.wave or call.winner is not None:
        return False
    nxt, suffix = attempt
    new_id = f"{fork.leg_id}{suffix}"
    if not call.tracker.forwarded(fork.leg_id, [new_id]):
        return False
    fork.state = LegState.ENDED
    await release(call, fork.caller_media_id, fork.media_id)
    await early.fork_gone(call, fork)
    if fork.dialog is not None:
        call.host.ua.forget_dialog(fork.dialog)
    await tried(call, fork)
    await call.publish(LegEndedEvent, leg_id=fork.leg_id, reason=reason, at=call.now())
    if suffix == "s":
        log.info("call %s: %s failed, its next server %s", call.call_id, fork.leg_id, nxt.flow)
    else:
        log.info("call %s: %s refused SRTP, rung again with RTP", call.call_id, fork.leg_id)
    await start_fork(call, new_id, nxt)
    await _move_on_if_over(call)  # the next server could not even be tried
    return True


async def fork_over(call: Call, fork: CalleeLeg, reason: LegEndReason) -> None:
    """A fork ended by itself (final non-2xx, failure): count it, maybe move on."""
    if await next_try(call, fork, reason):
        return
    fork.state = LegState.ENDED
    await release(call, fork.caller_media_id, fork.media_id)
    await early.fork_gone(call, fork)
    if fork.dialog is not None:
        call.host.ua.forget_dialog(fork.dialog)
    if fork.wave == call.wave and call.tracker.ended(fork.leg_id, reason):
        call.reasons.append(reason)
        await tried(call, fork)
        await call.publish(LegEndedEvent, leg_id=fork.leg_id, reason=reason, at=call.now())
        await _move_on_if_over(call)
