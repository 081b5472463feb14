"""The end of a call (call.py's actor): hanging up forks and legs, the final answer, a
prompt or voicemail (voicemail.py) to a caller nobody took, stopping the recording, releasing
media, VoicemailLeft, CallEnded.

Functions over the :class:`~zvonar.calls.call.Call` they end; the actor calls them in order
from its one task, so nothing here interleaves with another event of the same call.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from zvonar.calls.answering import answer_caller, caller_sdp
from zvonar.calls.early import confirm as confirm_early
from zvonar.calls.early import fork_gone
from zvonar.calls.events import (
    CallEnded,
    CallRecorded,
    CallRinging,
    Direction,
    Disposition,
    HangupSide,
    LegEndReason,
    VoicemailLeft,
)
from zvonar.calls.events import LegEnded as LegEndedEvent
from zvonar.calls.fork import disposition_for
from zvonar.calls.in_dialog import hang_up, release_media
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.plan import Reject
from zvonar.calls.voicemail import begin as begin_voicemail
from zvonar.calls.voicemail import conclude as conclude_voicemail
from zvonar.media.errors import MediaError

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = [
    "bye_caller",
    "end_winner",
    "finish",
    "give_up",
    "hangup_all",
    "hangup_fork",
    "release",
    "stop_fork",
    "tried",
]

log = logging.getLogger(__name__)


async def give_up(call: Call) -> None:
    """No wave left (or a Reject): the final answer, or a prompt before hanging up."""
    final = call.final or Reject()
    disposition = disposition_for(call.reasons, nobody=_nobody_rung(call, final))
    if final.status in (486, 600) and not call.reasons:
        disposition = Disposition.busy
    if call.was_answered:  # a transfer nobody took after all: the call itself was answered
        disposition = Disposition.answered
    reachable = call.caller.invite is not None or _answered_by_us(call)
    if final.voicemail is not None and reachable:
        try:
            if await begin_voicemail(call, final.voicemail):
                # Without a message the call ends as the resolver said (or as the waves did);
                # a message left makes it voicemail (finish).
                call.final_disposition = final.disposition or disposition
                return
        except MediaError as exc:
            log.warning("call %s: voicemail failed: %s", call.call_id, exc)
        if final.prompt is None and final.voicemail.greeting is not None:
            final = replace(final, prompt=final.voicemail.greeting)  # at least the greeting
    if final.prompt is not None and reachable:
        try:
            await _play_prompt(call, final)
            call.final_disposition = final.disposition or disposition
            return
        except MediaError as exc:
            log.warning("call %s: prompt failed: %s", call.call_id, exc)
    await finish(call, disposition, HangupSide.system, caller_status=final.status)


def _nobody_rung(call: Call, final: Reject) -> Disposition:
    """What a call that rang no one is: ``missed`` when its plan found nobody available
    (every target unregistered, in do not disturb, a scheme that ran out or hangs up), so a
    customer's call lands in the missed-call mail and the call-back list; ``failed`` when
    there was nothing to ring by design or by fault: a refusal (no plan), an employee's call
    out (the carrier path is the PBX's), a route that broke."""
    plan = call.plan
    if plan is None or plan.direction is Direction.outbound:
        return Disposition.failed
    if final.disposition is Disposition.failed:
        return Disposition.failed
    return Disposition.missed


def _answered_by_us(call: Call) -> bool:
    """The caller is on our own media leg (a menu, a prompt, a queue: steps.py)."""
    caller = call.caller
    return caller.state is LegState.CONFIRMED and caller.media_id == call.local_media is not None


async def _play_prompt(call: Call, final: Reject) -> None:
    engine, caller = call.host.engine, call.caller
    assert final.prompt is not None
    await confirm_early(call)  # a caller hearing early media is answered on that leg
    if _answered_by_us(call) and caller.media_id is not None:
        call.prompt_media = caller.media_id
        call.prompt_playback = await engine.play(caller.media_id, final.prompt)
        return
    media = f"{call.call_id}.p"
    endpoint = await engine.allocate(f"{call.call_id}.p", media)
    call.host.track_media(media, call)
    call.prompt_media = media
    await answer_caller(call, await caller_sdp(call, media, endpoint))
    call.prompt_playback = await engine.play(media, final.prompt)


def hangup_fork(call: Call, fork: CalleeLeg, *, elsewhere: bool = False) -> None:
    """BYE a confirmed fork, CANCEL a ringing one (in_dialog.hang_up, as for placed legs);
    ``elsewhere``: another fork took the call."""
    hang_up(call.host, fork, elsewhere=elsewhere)


async def tried(call: Call, fork: CalleeLeg) -> None:
    """A fork that ends without having rung (a phone that refuses at once, one that never
    answers our INVITE) still gets its journal row: CallRinging at the moment it ends."""
    if not fork.rang:
        fork.rang = True
        await call.publish(
            CallRinging,
            leg_id=fork.leg_id,
            target=fork.target.target,
            at=call.now(),
            invited_at=fork.invited_at,
        )


async def stop_fork(
    call: Call, fork: CalleeLeg, reason: LegEndReason, *, elsewhere: bool = False
) -> None:
    """We end a ringing fork, or one being asked to confirm (someone else answered — then
    ``elsewhere`` —, a timeout, the caller left)."""
    fork.stop_asking()
    if fork.wave == call.wave and call.tracker.ended(fork.leg_id, reason):
        call.reasons.append(reason)
        await tried(call, fork)
        await call.publish(LegEndedEvent, leg_id=fork.leg_id, reason=reason, at=call.now())
    hangup_fork(call, fork, elsewhere=elsewhere)
    await release(call, fork.caller_media_id, fork.media_id)
    await fork_gone(call, fork)


async def hangup_all(call: Call, side: HangupSide) -> None:
    if call.prompt_media is not None:
        disposition = call.final_disposition
    elif call.winner is not None or call.was_answered:
        disposition = Disposition.answered
    elif side is HangupSide.caller:
        disposition = Disposition.abandoned
    else:
        disposition = Disposition.failed
    answered = call.winner is not None or call.was_answered
    await finish(call, disposition, side, caller_status=0 if answered else 480)


async def finish(
    call: Call,
    disposition: Disposition,
    side: HangupSide,
    *,
    caller_status: int = 0,
    fork_reason: str = "cancelled",
) -> None:
    if call.done:
        return
    call.done = True
    call.cancel_timer()
    from zvonar.calls.steps import wrap_up  # steps.py imports this module

    wrap_up(call)
    caller = call.caller
    if caller.invite is not None:  # never answered: a final response (487 sent elsewhere)
        final = call.final
        status = caller_status or 480
        reason = final.reason if final is not None and final.status == status else None
        call.respond_caller(max(status, 400), reason=reason)
    elif caller.state is LegState.CONFIRMED:
        bye_caller(call)
    for fork in call.forks.values():
        if fork is call.winner:
            await end_winner(call, fork)
        elif fork.pending:
            await stop_fork(call, fork, LegEndReason(fork_reason))
    # The caller's audio, read before voicemail lets go of the leg it owns.
    quality = await _quality(call, call.caller.media_id)
    message = await conclude_voicemail(call)  # never raises
    recorded = await call.recording.stop(call.host.engine, call.call_id)
    if caller.was_fork:  # a party the caller handed on (transfer.py): its leg ends now
        await call.publish(
            LegEndedEvent,
            leg_id=caller.leg_id,
            reason=LegEndReason.completed,
            at=call.now(),
            **quality,
        )
    for fork in call.forks.values():
        await release(call, fork.caller_media_id, fork.media_id)
    for media in (call.prompt_media, call.local_media, call.early_media, caller.media_id):
        if media is not None:
            await release(call, media)
    if recorded is not None:
        await call.publish(CallRecorded, path=str(recorded.path), duration=recorded.duration)
    if message is not None:
        disposition = Disposition.voicemail
        await call.publish(
            VoicemailLeft,
            path=str(message.path),
            duration=message.duration,
            notify=message.notify,
        )
    elif disposition is Disposition.voicemail:
        # Voicemail answered and the caller left nothing: nobody took the call, and whoever
        # should call back must hear of it (the missed-call mail, the call-back list).
        disposition = Disposition.missed
    await call.publish(
        CallEnded,
        disposition=disposition,
        ended_at=call.now(),
        hangup=side,
        scheme_path=_path(call),
        caller_answered_at=call.caller_answered_at,
        **quality,
    )


def _path(call: Call) -> tuple[str, ...]:
    if call.route is not None:
        return call.route.path
    return call.plan.scheme_path if call.plan is not None else ()


async def end_winner(call: Call, fork: CalleeLeg) -> None:
    """The answered leg is over: hang it up if it is not, and publish its end once, with
    what its audio was like."""
    if fork.state is not LegState.ENDED:
        hangup_fork(call, fork)
    elif fork.dialog is not None:
        call.host.ua.forget_dialog(fork.dialog)
    if fork.end_published:
        return
    fork.end_published = True
    await call.publish(
        LegEndedEvent,
        leg_id=fork.leg_id,
        reason=LegEndReason.completed,
        at=call.now(),
        **await _quality(call, fork.media_id),
    )


async def _quality(call: Call, media_id: str | None) -> dict[str, float | bool]:
    """Whether the leg was SRTP, the loss, jitter and estimated MOS of what its peer sent us,
    and what the peer's RTCP reports said of our RTP (each only once known; empty when the leg
    is gone). Voicemail's leg is the call's though the B2BUA does not track it."""
    if media_id is None:
        return {}
    if not (call.host.tracks_media(media_id) or media_id == call.prompt_media):
        return {}
    try:
        stats = await call.host.engine.stats(media_id)
    except MediaError:
        return {}
    quality: dict[str, float | bool] = {"srtp": stats.srtp}
    if stats.mos is not None:
        quality["loss"] = round(min(max(stats.loss, 0.0), 1.0), 4)
        quality["jitter_ms"] = round(max(stats.jitter_ms, 0.0), 2)
        quality["mos"] = round(min(max(stats.mos, 1.0), 5.0), 2)
    # Not tied to the MOS: a peer that sends no RTP (on hold, recvonly) still reports on ours.
    if stats.peer_loss is not None:
        quality["peer_loss"] = round(min(max(stats.peer_loss, 0.0), 1.0), 4)
    if stats.peer_jitter_ms is not None:
        quality["peer_jitter_ms"] = round(max(stats.peer_jitter_ms, 0.0), 2)
    if stats.rtt_ms is not None:
        quality["rtt_ms"] = round(max(stats.rtt_ms, 0.0), 2)
    return quality


def bye_caller(call: Call) -> None:
    caller, ua = call.caller, call.host.ua
    dialog = caller.dialog or call.find_caller_dialog()
    caller.state = LegState.ENDED
    if dialog is None:
        return
    ua.send_request(ua.create_request(dialog, "BYE", caller.flow), caller.flow, call.host.now())
    ua.forget_dialog(dialog)
    call.host.flush()


async def release(call: Call, *media_ids: str) -> None:
    await release_media(call.host, call.call_id, *media_ids)
