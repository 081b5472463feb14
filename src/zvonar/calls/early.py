"""Early media on outbound calls: what the carrier plays before the callee answers reaches
the employee who dialled (RFC 3960's gateway model) — the network's ringback, "the number
you have dialled does not exist", "the subscriber is unavailable".

Only outbound calls: on an inbound call the forks are the account's own targets, and what a
forwarded mobile's network plays ("the subscriber is busy", its voicemail's greeting) must
not reach a customer whom the scheme's next step may still connect — a caller never hears a
busy tone while a step remains. There a 183 stays a 180 and the caller's phone rings, as
before (FreeSWITCH's ``ignore_early_media`` for ring groups is the same choice).

A fork's 18x that carries SDP is a copy of the answer its 2xx will carry (RFC 3261 §13.2.1),
so it is taken as a preview (``OfferAnswer.preview_answer``) and the fork's media leg is
configured with it. The first such fork gives the caller a 183 with *our* answer, on its
caller-side media leg, which from then on is the caller's own (``Call.early_media``); that
fork is bridged to it. The SDP the caller got is the one it keeps: the same exact answer goes
in the 2xx whoever answers (§13.2.1), so later forks, a prompt, voicemail, a menu or a queue
all use that leg (``confirm``). When the fork the caller hears ends while the call goes on,
the caller hears another fork's early media if one has some, else our ringback: a phone that
got SDP in a 183 plays what arrives, not its own ringing tone.

While early, the legs are configured as not expecting RTP from their peers (phones rarely
send before they are answered), so no media timeout ends a call that rings long; the 2xx
configures them in full. It needs an engine that bridges any two legs (the embedded one):
over rtpengine a fork's 18x stays a plain 180 towards the caller, as before.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from zvonar.calls.events import Direction
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.sdp_bridge import new_offer_answer, parse_body, remote_media
from zvonar.calls.tones import ringback_path
from zvonar.media.engine import LegEndpoint, RemoteMedia
from zvonar.media.errors import MediaError
from zvonar.media.sdp import Direction as MediaDirection
from zvonar.sip.body import sdp_body

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = ["caller_side", "confirm", "fork_gone", "progress", "unwatched"]

log = logging.getLogger(__name__)


def unwatched(remote: RemoteMedia) -> RemoteMedia:
    """``remote`` with nothing expected from the peer (no media timeout before the 2xx)."""
    direction = MediaDirection.from_flags(send=remote.direction.sends, receive=False)
    return replace(remote, direction=direction)


def _early(call: Call) -> bool:
    """An outbound call whose caller still waits for a final answer, over an engine that
    can carry early media, and an offer to answer in a 183 (a delayed offer has none)."""
    caller, plan = call.caller, call.plan
    return (
        plan is not None
        and not call.delayed_offer
        and plan.direction is Direction.outbound
        and caller.invite is not None
        and caller.state is LegState.INVITING
        and not call.done
        and call.winner is None
        and call.host.engine.bridges_any_legs
    )


async def progress(call: Call, fork: CalleeLeg, body: bytes) -> None:
    """A ringing fork's 18x carried ``body``: relay what it plays, if the caller can hear it.
    A body we cannot use leaves the fork ringing as if it had sent none."""
    if fork.early is not None or not body.strip() or not _early(call):
        return
    engine = call.host.engine
    try:
        remote = remote_media(fork.oa.preview_answer(parse_body(body)))
        await engine.configure(fork.media_id, unwatched(remote))
    except MediaError as exc:
        log.info("call %s: no early media from %s: %s", call.call_id, fork.leg_id, exc)
        return
    fork.early = body
    if call.early_media is None and not await _open(call, fork):
        return
    if call.early_from is None:
        await _hear(call, fork)


async def caller_side(call: Call, fork: CalleeLeg) -> LegEndpoint | None:
    """``fork``'s caller-side media leg, opened the first time the caller needs it: to hear
    the fork's early media, or to be answered when the fork wins a caller that has no media
    of its own yet. Forks that are refused, cancelled or outlived never open one, so a ring
    group of ten phones holds eleven legs rather than twenty. None if it cannot be opened
    (no descriptors left): the caller is not put on that fork."""
    if fork.caller_endpoint is None:
        media = f"{fork.leg_id}.c"
        try:  # the target leg's engine call: the pair's two legs belong together
            endpoint = await call.host.engine.allocate(fork.endpoint.call_id, media)
        except MediaError as exc:
            log.warning("call %s: no caller-side media for %s: %s", call.call_id, fork.leg_id, exc)
            return None
        call.host.track_media(media, call)
        fork.caller_media_id, fork.caller_endpoint = media, endpoint
    return fork.caller_endpoint


async def _open(call: Call, fork: CalleeLeg) -> bool:
    """The caller's early leg: the fork's caller side, answered in a 183 (once per call)."""
    caller, engine = call.caller, call.host.engine
    if caller.media_id is not None:  # it has a leg already (it was answered)
        return False
    endpoint = await caller_side(call, fork)
    if endpoint is None:
        return False
    media = fork.caller_media_id
    try:
        oa = new_offer_answer(endpoint)
        offer = call.caller_offer or parse_body(sdp_body(call.caller_request))
        answer, negotiated = oa.receive_offer(offer)
        await engine.configure(media, unwatched(remote_media(negotiated)))
    except MediaError as exc:
        log.info("call %s: no early media for the caller: %s", call.call_id, exc)
        return False
    sdp = answer.serialize().encode()
    fork.caller_media_id = ""  # the caller's from now on: released with the call
    call.early_media = media
    caller.media_id, caller.endpoint, caller.oa, caller.early_sdp = media, endpoint, oa, sdp
    caller.ringing_sent = True  # no 180 after this: the phone plays what we send
    call.respond_caller(183, sdp)
    return True


async def _hear(call: Call, fork: CalleeLeg) -> None:
    media, engine = call.early_media, call.host.engine
    if media is None:
        return
    with contextlib.suppress(MediaError):
        await engine.stop_playback(media)
    await engine.bridge(media, fork.media_id)
    call.early_from = fork.leg_id


async def fork_gone(call: Call, fork: CalleeLeg) -> None:
    """``fork`` ended (its media released): if the caller heard it and still waits, let it
    hear another ringing fork's early media, or our ringback."""
    if call.early_from != fork.leg_id:
        return
    call.early_from = None
    media = call.early_media
    if media is None or not _early(call):
        return
    for leg_id in call.tracker.live:
        other = call.forks.get(leg_id)
        if other is None or other is fork or other.early is None:
            continue
        try:
            await _hear(call, other)
            return
        except MediaError as exc:
            log.debug("call %s: early media of %s: %s", call.call_id, leg_id, exc)
    try:
        await call.host.engine.play(media, ringback_path(), loop=True)
    except MediaError as exc:
        log.info("call %s: no ringback: %s", call.call_id, exc)


async def confirm(call: Call) -> bool:
    """Answer a caller that hears early media, on its early leg, with the SDP of the 183
    (§13.2.1). The leg becomes our own (``Call.local_media``), as when we answer for a
    prompt: the winner, a menu, a queue or voicemail go on from there. False (nothing done)
    if the caller has no early media."""
    media, caller = call.early_media, call.caller
    if media is None or caller.invite is None or caller.early_sdp is None:
        return False
    engine = call.host.engine
    with contextlib.suppress(MediaError):
        await engine.stop_playback(media)
    negotiated = caller.oa.negotiated if caller.oa is not None else None
    if negotiated is not None:
        with contextlib.suppress(MediaError):  # unwatched, it still carries the call
            await engine.configure(media, remote_media(negotiated))
    call.respond_caller(200, caller.early_sdp)
    caller.state = LegState.CONFIRMED
    caller.dialog = call.find_caller_dialog()
    call.early_media = call.early_from = None
    call.local_media = media
    return True
