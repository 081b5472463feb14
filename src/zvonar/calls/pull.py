"""Call pull: an employee moves the call they are on to another of their devices — from the
desk phone to the softphone on their mobile as they walk out — by dialling ``*11`` there
(BroadWorks' code), or by pressing a BLF key on their own line, which INVITEs with Replaces
naming the answered leg's dialog (RFC 3891; the dialog-info names it, pbx/blf.py).
pbx/features.py answers :class:`Pull` for both.

The puller's INVITE arrives as a new call of its own; the B2BUA's dispatch hook
(``B2bua._resolve``) hands the Pull here. We find the employee's answered call (the one
Replaces named; for ``*11`` the newest, when they have several: one may be on hold) and the
puller's INVITE dialog becomes its answered leg, as a pickup's does (pickup.py), except that
the call is answered already:

- the puller gets its own media leg, answered from its offer (or offered to, when its INVITE
  had none: its ACK answers, as for a pickup); the customer's media leg is bridged to it, which
  unbridges the old device's (hold music stops, if the old device held the customer);
- the old device gets a BYE (LegEnded ``completed``), its media leg is released;
- CallRinging and CallAnswered are published for the new leg, answered by the same employee;
  the journal keeps one call, answered by them, with the new leg in it. The recording goes on:
  it follows the customer's leg.

Only the employee's own answered call can be pulled (not a colleague's: that is a pickup, and
only while it rings), and only one they answered — not one they placed: then their device is
the call's caller, and moving a caller is a transfer's business. It needs an engine that
bridges any two legs (the embedded one); over rtpengine the puller gets 403.

Concurrency: as for a pickup, the claim (``winner`` set to the new leg) is synchronous; the
actor no longer treats the old device as the winner once it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.events import CallRinging, TargetKind
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.pickup import PICKED, adopt, answer_taker, answered, picker_sdp, taker_failed
from zvonar.calls.plan import InboundCall, Pickup, Plan, Reject
from zvonar.calls.teardown import end_winner, release
from zvonar.media.errors import MediaError
from zvonar.sip.errors import SipError
from zvonar.sip.ua import IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua
    from zvonar.calls.call import Call

__all__ = ["Pull", "find_answered", "pull"]

log = logging.getLogger(__name__)

_NOTHING = Reject(404, "No Call To Pull")  # no account: a failed pull is not a call
_pulls = itertools.count(1)  # a call pulled twice gets two legs: their ids must differ


@dataclass(frozen=True)
class Pull(Pickup):
    """Move ``employee_id``'s answered call of ``account_id`` to the device that dialled the
    code; ``picker`` is that same employee (the journal's answered_by). ``call_id``: that
    call (Replaces named its leg); None: their newest answered one."""

    call_id: str | None = None


def find_answered(calls: list[Call], order: Pull) -> Call | None:
    """The newest call of the account that the employee answered and is on now."""
    for call in sorted(calls, key=lambda c: c.facts.started_at, reverse=True):
        if call.done or call.account_id != order.account_id or call.transferring:
            continue
        if order.call_id is not None and call.call_id != order.call_id:
            continue
        winner = call.winner
        if winner is None or winner.state is not LegState.CONFIRMED:
            continue
        target = winner.target.target
        if (
            target.kind in (TargetKind.employee, TargetKind.mobile)
            and target.target_id == order.employee_id
            and call.caller.media_id is not None
            and call.caller.state is LegState.CONFIRMED
        ):
            return call
    return None


async def pull(host: B2bua, facts: InboundCall, order: Pull) -> Plan | Reject:
    """Carry out ``order`` for the new call ``facts`` (the puller's); what that call itself
    does next."""
    adopted = await adopt(
        host,
        facts,
        order,
        lambda: find_answered(list(host.calls.values()), order),
        _NOTHING,
        kind="pl",
        label="pull",
        serial=_pulls,
    )
    if isinstance(adopted, Reject):
        return adopted
    call, old, leg, inc = adopted
    assert old is not None  # find_answered: the employee's leg is the winner
    await asyncio.shield(_move(call, old, leg, inc))
    return PICKED


async def _move(call: Call, old: CalleeLeg, leg: CalleeLeg, inc: IncomingRequest) -> None:
    """Answer the puller, bridge the customer to it, hang up the old device."""
    engine, caller_media = call.host.engine, call.caller.media_id
    assert caller_media is not None  # find_answered
    await call.publish(CallRinging, leg_id=leg.leg_id, target=leg.target.target, at=call.now())
    try:
        ours = await picker_sdp(engine, leg, inc)
        if call.holding:  # the old device held the customer: the music stops
            call.holding.clear()
            with contextlib.suppress(MediaError):
                await engine.stop_playback(caller_media)
        await engine.bridge(caller_media, leg.media_id)
    except (MediaError, SipError, ValueError) as exc:
        # The customer stays with the old device: only the pull fails (its leg, in the
        # journal, ends as failed).
        log.warning("call %s: pull failed: %s", call.call_id, exc)
        call.winner = old
        await taker_failed(call, leg, inc)
        with contextlib.suppress(MediaError):
            await engine.bridge(caller_media, old.media_id)  # if the bridge moved already
        return
    answer_taker(call, leg, inc, ours)
    await end_winner(call, old)  # BYE, and its end with what its audio was like
    old.state = LegState.ENDED
    await release(call, old.media_id)
    await answered(call, leg)
