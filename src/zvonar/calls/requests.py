"""Requests either side sends inside a call's dialogs (call.py's actor hands them here).

- BYE: 200, and the call ends — unless it came from a fork that is not the call's (a loser,
  one asked to confirm, an agent leaving during its attended transfer) or the caller stays
  on to rate the call (steps.py);
- a re-INVITE, or an UPDATE with SDP: answered locally on the leg that sent it
  (in_dialog.py), nothing crosses to the other dialog; a hold (sendonly, inactive or a null
  address, RFC 3264 §8.4) plays the account's hold music to the other side until resumed;
- REFER: a blind transfer (transfer.py);
- anything else (INFO, OPTIONS…): 200, and INFO keys go to keys.py.

Functions over the call that only its actor's task runs, as waves.py and teardown.py are.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from zvonar.calls import accept, keys, steps
from zvonar.calls.events import HangupSide
from zvonar.calls.in_dialog import answer_reinvite, is_offer, reply
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.teardown import hangup_all
from zvonar.calls.transfer import blind_transfer
from zvonar.media.errors import MediaError
from zvonar.media.offer_answer import NegotiatedMedia
from zvonar.sip.dialog import Dialog
from zvonar.sip.ua import IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = ["on_request"]

log = logging.getLogger(__name__)


async def on_request(call: Call, inc: IncomingRequest) -> None:
    dialog, method = inc.dialog, inc.request.method
    if dialog is None:
        return
    fork = next((f for f in call.forks.values() if f.local_tag == dialog.id.local_tag), None)
    from_caller = fork is None
    if method == "BYE":
        reply(call.host, inc, dialog, 200)
        if from_caller:
            call.caller.state = LegState.ENDED
        elif fork is not None:
            fork.state = LegState.ENDED
        side = HangupSide.caller if from_caller else HangupSide.callee
        if fork is not None and fork.accept_timer is not None:
            await accept.gone(call, fork)  # asked to confirm, it hung up instead
            return
        if fork is not None and fork is not call.winner:
            return
        if fork is not None and call.attended is not None:
            return  # the agent leaves while its attended transfer completes (attended.py)
        if fork is not None and await steps.start_rating(call, fork):
            return  # the caller stays on the line to rate the call
        await hangup_all(call, side)
    elif is_offer(inc):  # a re-INVITE, or an UPDATE with SDP
        await _reinvite(call, inc, dialog, fork)
    elif method == "REFER":
        await blind_transfer(call, inc, dialog, fork)
    else:
        reply(call.host, inc, dialog, 200)
        if method == "INFO":
            await keys.on_info(call, inc, fork)


async def _reinvite(
    call: Call, inc: IncomingRequest, dialog: Dialog, fork: CalleeLeg | None
) -> None:
    """Answer a re-INVITE (hold/resume, new address) locally; see in_dialog.py."""
    oa = call.caller.oa if fork is None else fork.oa
    media = call.caller.media_id if fork is None else fork.media_id
    await answer_reinvite(call.host, inc, dialog, oa, media)
    if oa is not None and oa.negotiated is not None:
        await _hold_music(call, fork, oa.negotiated)


async def _hold_music(call: Call, holder: CalleeLeg | None, negotiated: NegotiatedMedia) -> None:
    """One side holds the call (its re-offer: sendonly, inactive or a null address,
    RFC 3264 §8.4) or resumes it: the other side hears the account's hold music meanwhile,
    not silence. Only between the caller and the answered leg."""
    winner = call.winner
    if winner is None or (holder is not None and holder is not winner):
        return
    other = call.caller.media_id if holder is not None else winner.media_id
    key = winner.leg_id if holder is not None else call.caller.leg_id
    null = negotiated.remote_port == 0 or negotiated.remote_address in ("0.0.0.0", "::")  # noqa: S104
    held = null or not negotiated.direction.sends
    engine, music_for = call.host.engine, call.host.hold_music
    if other is None or call.account_id is None or music_for is None:
        return
    if held and key not in call.holding:
        try:
            await engine.play(other, music_for(call.account_id), loop=True)
        except MediaError as exc:
            log.info("call %s: no hold music: %s", call.call_id, exc)
            return
        call.holding.add(key)
    elif not held and key in call.holding:
        call.holding.discard(key)
        with contextlib.suppress(MediaError):
            await engine.stop_playback(other)
