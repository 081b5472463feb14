"""The caller side leaves and the answered party stays: what a blind or attended transfer by
the employee who placed the call needs (transfer.py, attended.py).

An employee who dialled a customer hands the customer on. Our call actor keeps one caller
(the UAS side) and forks (UAC sides), so the customer's fork becomes the call's caller: its
dialog, its engine leg and the call's recording stay (``MediaEngine.move_recording``: the
recording follows the customer's leg, each side keeping its channel), the employee's leg gets
BYE and its media is released, and whoever the call connects next is bridged to the customer
as to any caller. Later INVITEs show the customer in From.

Only a caller that passed digest as a phone of the call's account may hand its call on: a
REFER from an outside caller (a customer, a carrier) — or from the customer once it became
the caller — would place calls at the account's expense.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from zvonar.calls.events import Direction
from zvonar.calls.legs import CallerLeg, LegState
from zvonar.calls.teardown import bye_caller, release
from zvonar.media.errors import MediaError

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = ["agent_is_caller", "caller_may_hand_on", "keep_party"]

log = logging.getLogger(__name__)


def agent_is_caller(call: Call) -> bool:
    """Whether the call's agent — who leaves when the API transfers it — is its caller: an
    outbound call the employee dialled, not yet handed on."""
    plan = call.plan
    return plan is not None and plan.direction is Direction.outbound and not call.caller.was_fork


def caller_may_hand_on(call: Call) -> bool:
    """Whether the caller side may hand the answered party on: the caller is a phone of the
    call's account (it passed digest: an employee's outbound or internal call), the call is
    answered, and the engine can bridge the remaining party to a leg of another allocation."""
    auth, caller, winner = call.facts.auth, call.caller, call.winner
    return (
        auth is not None
        and auth.user is not None
        and auth.account_id is not None
        and auth.account_id == call.account_id
        and not call.done
        and call.attended is None
        and not caller.was_fork  # after a hand-on the caller is the other party
        and caller.state is LegState.CONFIRMED
        and caller.media_id is not None
        and winner is not None
        and winner.state is LegState.CONFIRMED
        and winner.dialog is not None
        and call.host.engine.bridges_any_legs
    )


async def keep_party(call: Call) -> str:
    """The answered party becomes the caller, the caller's leg is hung up (see the module
    docstring; call only when :func:`caller_may_hand_on`). Returns the old caller's leg id."""
    old, party = call.caller, call.winner
    assert party is not None and party.dialog is not None
    if call.recording.recording_id is not None:
        try:
            await call.host.engine.move_recording(call.recording.recording_id, party.media_id)
        except MediaError as exc:
            log.warning("call %s: the recording stops at the transfer: %s", call.call_id, exc)
    bye_caller(call)
    await release(call, *(m for m in (old.media_id, party.caller_media_id) if m))
    del call.forks[party.leg_id]
    call.winner = None
    call.caller = CallerLeg(
        leg_id=party.leg_id,
        invite=None,
        flow=party.flow,
        local_tag=party.local_tag,
        sip_call_id=party.sip_call_id,
        remote_tag=party.dialog.id.remote_tag,
        state=LegState.CONFIRMED,
        dialog=party.dialog,
        media_id=party.media_id,
        endpoint=party.endpoint,
        oa=party.oa,
        ringing_sent=True,
        was_fork=True,
    )
    if party.request is not None:  # whoever the call rings next sees who they talk to
        call.caller_request = call.caller_request.with_header("From", str(party.request.to))
    return old.leg_id
