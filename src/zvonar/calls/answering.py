"""Answering the caller: the SDP of our 200, and with a delayed offer the answer in its ACK.

Whoever answers the caller — a winning fork (call.py), a prompt, a menu or a queue
(steps.py), voicemail, the final prompt (teardown.py), a pickup — does it with
:func:`caller_sdp` then :func:`answer_caller`, as functions over the call that only its
actor's task runs.

To the caller's offer the 200 carries our answer, the leg configured first. An INVITE
without SDP is a delayed offer (RFC 3261 §13.2.1; carriers send them): the 200 carries our
offer and the ACK the answer, so the actor waits for that ACK (``Call.put`` hands it over)
and configures the caller's leg before anything plays to it; a greeting then goes out in the
codec the caller chose, not in the one the player guessed.

A picker (pickup.py) may send an INVITE without SDP too: its leg is a fork whose 200 made
the offer (``CalleeLeg.offered``), and the actor configures it from the ACK
(:func:`fork_answer_in_ack`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.legs import LegState
from zvonar.calls.sdp_bridge import new_offer_answer, parse_body, remote_media
from zvonar.media.engine import LegEndpoint
from zvonar.media.errors import MediaError
from zvonar.sip.body import sdp_body
from zvonar.sip.errors import SipError
from zvonar.sip.ua import AckReceived, AckTimeout, IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.call import Call
    from zvonar.calls.legs import CalleeLeg

__all__ = ["NoSession", "answer_caller", "caller_sdp", "fork_answer_in_ack"]

log = logging.getLogger(__name__)

# How long the actor waits for the ACK that answers our offer. The UA gives up on the ACK at
# 64*T1 (AckTimeout, which then ends the call); this bound only guards against never hearing.
_ACK_WAIT = 40.0


@dataclass(frozen=True)
class NoSession:
    """The caller's ACK brought no usable answer to the offer our 200 made: the dialog
    exists but no media can flow, so the call ends (a call input: hang up both sides)."""


async def caller_sdp(call: Call, media: str, endpoint: LegEndpoint) -> bytes:
    """Our SDP for the caller on engine leg ``media``, which becomes the caller's leg.

    To the caller's offer: our answer, the leg configured for it. To a delayed offer: our
    offer, plain RTP since the caller can no longer refuse it and be offered again; SRTP only
    from a trunk of the account that requires it (``CallerAuth.srtp_for``), which would
    refuse plain RTP.
    :class:`MediaError` if the offer cannot be answered: nothing was sent and the caller
    still waits."""
    caller = call.caller
    if caller.invite is None:
        raise SipError("the caller's INVITE was already answered")
    auth = call.facts.auth
    secure = call.delayed_offer and auth is not None and auth.srtp_for(call.account_id)
    oa = new_offer_answer(endpoint, secure=secure)
    if call.delayed_offer:
        sdp = oa.create_offer()
    else:
        offer = call.caller_offer or parse_body(sdp_body(call.caller_request))
        sdp, negotiated = oa.receive_offer(offer)
        await call.host.engine.configure(media, remote_media(negotiated))
    caller.media_id, caller.endpoint, caller.oa = media, endpoint, oa
    return sdp.serialize().encode()


async def answer_caller(call: Call, sdp: bytes) -> None:
    """Answer the caller (200) with ``sdp`` from :func:`caller_sdp`: the call is theirs.

    After an offer of ours, wait for the ACK and configure the caller's leg from its answer
    before going on. An ACK without a usable answer ends the call (:class:`NoSession`); one
    that never comes ends it as for any 200 (AckTimeout); a BYE before it (the caller could
    not take the offer) ends it as the caller's hang-up."""
    caller = call.caller
    if call.delayed_offer:
        call.ack_wait = asyncio.get_running_loop().create_future()
    call.respond_caller(200, sdp)
    caller.state = LegState.CONFIRMED
    caller.dialog = call.find_caller_dialog()
    if call.delayed_offer:
        await _answer_in_ack(call)


async def _answer_in_ack(call: Call) -> None:
    waiting, caller = call.ack_wait, call.caller
    assert waiting is not None and caller.oa is not None and caller.media_id is not None
    try:
        async with asyncio.timeout(_ACK_WAIT):
            ack = await waiting
    except TimeoutError:
        ack = None
    finally:
        call.ack_wait = None
    if isinstance(ack, AckTimeout):
        call.queue.put_nowait(ack)  # ends the call, as without a delayed offer
        return
    if isinstance(ack, IncomingRequest):
        return  # the caller's BYE came first; the queue has it, and it ends the call
    if isinstance(ack, AckReceived):
        if ack.dialog is not None:
            caller.dialog = ack.dialog
        try:
            negotiated = caller.oa.receive_answer(parse_body(sdp_body(ack.request)))
            await call.host.engine.configure(caller.media_id, remote_media(negotiated))
            return
        except MediaError as exc:
            log.info("call %s: no usable answer in the caller's ACK: %s", call.call_id, exc)
    call.queue.put_nowait(NoSession())


async def fork_answer_in_ack(call: Call, fork: CalleeLeg, ack: AckReceived) -> None:
    """The ACK of a fork whose 200 from us made the offer (a picker's INVITE had none):
    configure its engine leg from the answer; without a usable one no media can flow to
    that side, so the call ends (:class:`NoSession`)."""
    fork.offered = False
    if ack.dialog is not None:
        fork.dialog = ack.dialog
    try:
        negotiated = fork.oa.receive_answer(parse_body(sdp_body(ack.request)))
        await call.host.engine.configure(fork.media_id, remote_media(negotiated))
    except MediaError as exc:
        log.info("call %s: no usable answer in %s's ACK: %s", call.call_id, fork.leg_id, exc)
        call.queue.put_nowait(NoSession())
