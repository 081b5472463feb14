"""A target that answers 3xx (RFC 3261 §8.1.3.4, §21.3): follow its Contact.

Softphones (Zoiper, MicroSIP, Linphone…) implement the employee's own "forward my calls to my
mobile" with ``302 Moved Temporarily`` and ``Contact: <sip:+7916…@…>``, and some carriers
redirect the same way. Ignoring it loses the call the employee asked to have forwarded, so
the Contact's user part rings in the fork's place, in the same wave and under its timer (and
within what is left of the fork's own ring limit, ``RingTarget.ring_seconds``):
resolved as the call's account dialling it itself (an extension, or a number through the
account's trunks), so the account's own rules — international calls off, caps — decide
whether it may ring at all, whoever sent the 3xx. At most :data:`MAX_REDIRECTS` per call (a
phone that forwards to itself cannot loop). The redirected leg ends ``forwarded`` in the
journal; its successors' outcomes count for the wave, not its own.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from zvonar.calls.events import LegEnded as LegEndedEvent
from zvonar.calls.events import LegEndReason
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.plan import Reject
from zvonar.calls.teardown import release, tried
from zvonar.calls.transfer import resolve_for_account
from zvonar.calls.waves import start_fork
from zvonar.sip.errors import SipError
from zvonar.sip.message import SipResponse
from zvonar.sip.uri import SipUri, TelUri

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = ["MAX_REDIRECTS", "follow"]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3


def _target(response: SipResponse) -> tuple[str, str] | None:
    """(user part, URI) of the first Contact we can dial."""
    try:
        contacts = response.contacts
    except SipError:  # an unreadable Contact: the 3xx is a failure like any other
        return None
    for contact in contacts:
        uri = contact.uri
        if isinstance(uri, SipUri) and uri.user:
            return uri.user, str(uri)
        if isinstance(uri, TelUri) and uri.number:
            return uri.number, str(uri)
    return None


async def follow(call: Call, fork: CalleeLeg, response: SipResponse) -> bool:
    """``fork`` answered 3xx: ring its Contact instead (True), or let it fail (False)."""
    if not 300 <= response.status < 400 or call.account_id is None or call.done:
        return False
    if fork.wave != call.wave or fork.state is not LegState.INVITING or call.winner is not None:
        return False
    if call.redirects >= MAX_REDIRECTS:
        log.info("call %s: %s redirected once too often", call.call_id, fork.leg_id)
        return False
    where = _target(response)
    if where is None:
        return False
    call.redirects += 1
    outcome = await resolve_for_account(call, *where)
    if isinstance(outcome, Reject) or not outcome.waves or call.done:
        log.info(
            "call %s: %s redirects to %s, which rings nobody", call.call_id, fork.leg_id, where[1]
        )
        return False
    if fork.wave != call.wave or call.winner is not None:  # the wave moved on meanwhile
        return False
    targets = outcome.waves[0].targets
    ids = [f"{fork.leg_id}f{i}" for i in range(len(targets))]
    if not call.tracker.forwarded(fork.leg_id, ids):
        return False
    fork.state = LegState.ENDED
    await release(call, fork.caller_media_id, fork.media_id)
    await tried(call, fork)  # a phone that forwards at once never rang: its row still shows it
    await call.publish(
        LegEndedEvent, leg_id=fork.leg_id, reason=LegEndReason.forwarded, at=call.now()
    )
    left = _ring_left(call, fork)
    for leg_id, target in zip(ids, targets, strict=True):
        if left is not None and (target.ring_seconds is None or target.ring_seconds > left):
            target = replace(target, ring_seconds=left)
        await start_fork(call, leg_id, target)
    return True


def _ring_left(call: Call, fork: CalleeLeg) -> float | None:
    """What is left of the redirected target's own time to ring (``ring_seconds``): the
    Contact rings in its place, so within it; None when it had none."""
    limit = fork.target.ring_seconds
    if limit is None or fork.invited_at is None:
        return None
    return max(limit - (call.now() - fork.invited_at).total_seconds(), 0.05)
