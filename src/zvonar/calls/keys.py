"""Keys pressed on a phone that sends DTMF by SIP INFO (``application/dtmf-relay``,
``application/dtmf``) instead of RFC 4733: the caller's work the scheme's menus, queue keys
and ratings like RFC 4733 ones; either side's reach the other side of an answered call —
as RFC 4733 telephone-events when that side negotiated them (a carrier's IVR listens for
nothing else; ``MediaEngine.send_dtmf``), else as the same INFO."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from zvonar.calls import accept, steps
from zvonar.calls.in_dialog import info_digit
from zvonar.calls.legs import CallDtmf, CalleeLeg, LegState
from zvonar.media.errors import MediaError
from zvonar.sip.ua import IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = ["on_info"]

log = logging.getLogger(__name__)


async def on_info(call: Call, inc: IncomingRequest, fork: CalleeLeg | None) -> None:
    """An INFO from the caller (``fork`` None) or a fork, already answered 200."""
    pressed = info_digit(inc.request)
    if pressed is None:
        return
    digit, duration = pressed
    leg_id = call.caller.leg_id if fork is None else fork.leg_id
    await call.publish(CallDtmf, leg_id=leg_id, digit=digit, duration=duration)
    if fork is None:
        await steps.on_digit(call, digit)
    elif fork.accept_timer is not None:
        await accept.key(call, fork, digit)  # asked to confirm: its "1" or "2"
        return
    winner, caller = call.winner, call.caller
    if winner is None or (fork is not None and fork is not winner):
        return
    if winner.state is not LegState.CONFIRMED or caller.state is not LegState.CONFIRMED:
        return
    # The engine leg that sends to the other side: the target's, or the caller's.
    media = winner.media_id if fork is None else caller.media_id
    dialog, flow = (winner.dialog, winner.flow) if fork is None else (caller.dialog, caller.flow)
    if media is not None:
        try:
            await call.host.engine.send_dtmf(media, digit, duration)
            return
        except MediaError as exc:  # no telephone-event there: the INFO goes on as it came
            log.debug("call %s: key %s by INFO: %s", call.call_id, digit, exc)
    if dialog is None:
        return
    ua = call.host.ua
    relay = ua.create_request(
        dialog, "INFO", flow, body=inc.request.body, content_type=inc.request.content_type
    )
    ua.send_request(relay, flow, call.host.now())
    call.host.flush()
