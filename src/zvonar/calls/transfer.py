"""Blind transfer (RFC 3515 REFER, RFC 5589 §6) from the answered agent leg (call.py's actor).
A REFER whose Refer-To carries Replaces is an attended transfer instead (attended.py). The
same blind transfer can be ordered through the API (:class:`TransferOrder`, the operator's
"transfer" button in a CRM or the web): the agent's leg is hung up as after a REFER.

The agent's phone sends REFER with ``Refer-To: <sip:102@…>`` in its dialog with us. We accept
it (202), report progress in the implicit subscription with NOTIFY message/sipfrag (RFC 3515
§2.4.4–2.4.5: "100 Trying" first), ask the resolver where the target is — the same contract
as a new call, with the call's account as the authenticated party (``CallerAuth``) so an
extension or an outside number resolves like a call the agent dialed — and then:

- the target cannot be resolved: NOTIFY with the failure, the agent stays connected (the
  REFER failed, nothing else changed; the phone shows the failure);
- otherwise: NOTIFY "200 OK" (terminated), CallTransferred, BYE to the agent, and the target's
  waves ring for the caller over the caller's existing media leg (the engine re-bridges it:
  SSRC and sequence continue, so the caller's phone sees one stream).

If nobody takes the transfer, the transferring agent is rung back (one wave, RING_BACK_SECONDS)
so the caller is never dropped silently; if the agent does not answer either, the call ends
(BYE to the caller). We report "200 OK" once the transfer is placed rather than the target's
eventual final response, because we BYE the agent at once (RFC 5589 §6 lets the transferor
end its dialog as soon as the REFER is accepted).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.attended import replaces_of, transfer_with_replaces
from zvonar.calls.events import LegEnded as LegEndedEvent
from zvonar.calls.events import LegEndReason, TransferKind
from zvonar.calls.handoff import agent_is_caller, caller_may_hand_on, keep_party
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.park import park, park_by_caller, park_slot
from zvonar.calls.plan import CallerAuth, InboundCall, Plan, Reject, RingTarget, Wave
from zvonar.calls.refer import notify, publish_transfer, reply
from zvonar.calls.signalling import uri_user
from zvonar.calls.steps import agent_left
from zvonar.calls.teardown import hangup_fork, release
from zvonar.calls.tones import ringback_path
from zvonar.calls.waves import ring_round
from zvonar.media.errors import MediaError
from zvonar.sip.dialog import Dialog
from zvonar.sip.errors import SipError
from zvonar.sip.headers import parse_name_addr
from zvonar.sip.ua import IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = [
    "RING_BACK_SECONDS",
    "TransferOrder",
    "TransferRefusal",
    "TransferRefused",
    "blind_transfer",
    "ordered_transfer",
    "resolve_for_account",
]

log = logging.getLogger(__name__)

RING_BACK_SECONDS = 30.0


class TransferRefusal(enum.StrEnum):
    unknown_call = "unknown_call"  # no such call in progress in the account
    not_answered = "not_answered"  # ringing, waiting in a queue, or answered by nobody now
    in_progress = "in_progress"  # a transfer of the call is under way already
    no_target = "no_target"  # the target does not resolve (no such extension, barred…)


class TransferRefused(Exception):
    def __init__(self, reason: TransferRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TransferOrder:
    """Blind-transfer the answered call to ``dialed`` (what a REFER's Refer-To would name);
    ``done`` resolves once the target is rung, or fails with :class:`TransferRefused`."""

    dialed: str
    done: asyncio.Future[None]


async def blind_transfer(
    call: Call, inc: IncomingRequest, dialog: Dialog, fork: CalleeLeg | None
) -> None:
    """Handle a REFER in one of the call's dialogs (see the module docstring)."""
    try:
        refer_to = parse_name_addr(inc.request.header("Refer-To") or "")
    except SipError:
        reply(call, inc, dialog, 400)
        return
    replaces = replaces_of(refer_to.uri)
    if replaces is not None:  # attended: join this call's other party to another call's
        await transfer_with_replaces(call, inc, dialog, fork, replaces)
        return
    # The answered agent may transfer, or the employee whose phone placed the call; once at
    # a time. Never a caller from outside: a customer's REFER must not place calls for us.
    allowed = caller_may_hand_on(call) if fork is None else fork is call.winner
    if not allowed or call.transferring or call.account_id is None:
        reply(call, inc, dialog, 403)
        return
    dialed = uri_user(refer_to.uri)
    if not dialed:
        reply(call, inc, dialog, 400)
        return
    reply(call, inc, dialog, 202)
    flow = fork.flow if fork is not None else call.caller.flow
    where = (dialog, flow)
    notify(call, where, 100, "Trying")

    def told(status: int) -> None:
        notify(call, where, status, "OK" if status == 200 else "Transfer Failed")

    await _transfer(call, fork, dialed, str(refer_to.uri), told)


async def ordered_transfer(call: Call, order: TransferOrder) -> None:
    """A :class:`TransferOrder` from the API, in the call's own task."""
    agent = call.winner

    def refuse(reason: TransferRefusal, message: str) -> None:
        if not order.done.done():
            order.done.set_exception(TransferRefused(reason, message))

    by_caller = agent_is_caller(call)
    if by_caller:  # the employee who dialed out is the one who leaves
        answered = caller_may_hand_on(call)
    else:
        answered = agent is not None and agent.state is LegState.CONFIRMED
    if not answered or call.account_id is None:
        refuse(TransferRefusal.not_answered, f"call {call.call_id} is not answered")
        return
    if call.transferring:
        refuse(TransferRefusal.in_progress, f"call {call.call_id} is being transferred")
        return

    def told(status: int) -> None:
        if status != 200:
            refuse(TransferRefusal.no_target, f"{order.dialed} cannot be rung ({status})")
        elif not order.done.done():
            order.done.set_result(None)

    await _transfer(
        call, None if by_caller else agent, order.dialed, f"sip:{order.dialed}@invalid", told
    )


async def _transfer(
    call: Call, agent: CalleeLeg | None, dialed: str, to_uri: str, told: Callable[[int], None]
) -> None:
    """Resolve ``dialed`` for the caller and hand the call over from ``agent`` (the caller
    side when None) — REFER and API alike; ``told`` hears the outcome before anything
    happens: 200, or the refusal's status."""
    call.transferring = True
    try:
        slot = park_slot(dialed)
        if slot is not None:  # a park slot: the employee leaves the customer waiting there
            if agent is None:
                await park_by_caller(call, slot, await _employee_again(call), told)
            else:
                await park(call, agent, slot, told)
            return
        outcome = await resolve_for_account(call, dialed, to_uri)
        if isinstance(outcome, Reject) or not outcome.waves:
            told(outcome.status if isinstance(outcome, Reject) else 480)
            return
        if agent is None and not caller_may_hand_on(call):  # it changed while we resolved
            told(481)
            return
        told(200)
        if agent is None:
            await _hand_over_by_caller(call, outcome)
        else:
            await _hand_over(call, agent, outcome)
    finally:
        call.transferring = False


async def resolve_for_account(call: Call, dialed: str, to_uri: str) -> Plan | Reject:
    """Where ``dialed`` leads when the call's account itself dials it (a transfer target, a
    redirect's Contact): the resolver's answer, a 500 Reject if it fails."""
    facts = call.facts
    query = InboundCall(
        call_id=call.call_id,
        dialed=dialed,
        caller=facts.caller,
        caller_display=facts.caller_display,
        from_uri=facts.from_uri,
        to_uri=to_uri,
        source=facts.source,
        started_at=facts.started_at,
        auth=CallerAuth(account_id=call.account_id),
    )
    try:
        return await asyncio.wait_for(call.host.resolver(query), call.host.resolve_timeout)
    except Exception:
        log.exception("call %s: transfer target %s not resolved", call.call_id, dialed)
        return Reject(500, "Server Internal Error")


async def _hand_over(call: Call, agent: CalleeLeg, plan: Plan) -> None:
    """End the agent's leg and ring the transfer's waves (then the agent again) for the caller."""
    await publish_transfer(call, agent.leg_id, plan.waves[0].targets[0].target, TransferKind.blind)
    agent_left(call)
    held = bool(call.holding)
    call.holding.clear()  # hold music, if the agent held the caller, plays until someone answers
    if agent.state is not LegState.ENDED:
        hangup_fork(call, agent)
    await call.publish(
        LegEndedEvent, leg_id=agent.leg_id, reason=LegEndReason.completed, at=call.now()
    )
    if call.caller.media_id is not None:
        await call.host.engine.unbridge(call.caller.media_id)
    await release(call, agent.media_id)
    await _ringback(call, held)
    await _ring(call, plan, await _transferor_again(call, agent))


async def _ringback(call: Call, music: bool) -> None:
    """While the transfer rings, the caller hears the hold music already playing, else our
    ringback — never silence, which sounds like a dropped call. Whoever answers stops it
    (call.py's _connect)."""
    media = call.caller.media_id
    if music or media is None:
        return
    try:
        await call.host.engine.play(media, ringback_path(), loop=True)
    except MediaError as exc:
        log.info("call %s: no ringback during the transfer: %s", call.call_id, exc)


async def _ring(call: Call, plan: Plan, back: tuple[RingTarget, ...]) -> None:
    """Ring the transfer's waves for the caller, then ``back`` (the transferor) once."""
    ring_back = (Wave(back, RING_BACK_SECONDS),) if back else ()
    await ring_round(call, call.plan or plan, (*plan.waves, *ring_back))


async def _hand_over_by_caller(call: Call, plan: Plan) -> None:
    """The caller side leaves (an employee who dialed out hands the customer on, handoff.py):
    the transfer's waves ring for the customer, then the employee again."""
    await publish_transfer(
        call, call.caller.leg_id, plan.waves[0].targets[0].target, TransferKind.blind
    )
    targets = await _employee_again(call)
    held = bool(call.holding)
    call.holding.clear()  # hold music, if the employee held the customer, plays on
    await keep_party(call)
    await _ringback(call, held)
    await _ring(call, plan, targets)


async def _transferor_again(call: Call, agent: CalleeLeg) -> tuple[RingTarget, ...]:
    """What rings the employee who transferred when nobody takes the call: all their phones
    (and their mobile, if they chose it), as a call to their extension would, not only the
    phone or mobile they transferred from. Another kind of leg (an outside number) is rung as
    it was."""
    label = agent.target.label or ""
    # pbx/reach.py labels an employee's phone x<ext> and their mobile m<ext>.
    extension = label[1:] if label[:1] in ("x", "m") else ""
    if extension.isdigit():
        return await _extension_targets(call, extension) or (agent.target,)
    return (agent.target,)


async def _employee_again(call: Call) -> tuple[RingTarget, ...]:
    """What rings the employee who dialled out (their extension resolved again): they are
    rung back when the customer they handed on is not taken."""
    return await _extension_targets(call, call.facts.caller)


async def _extension_targets(call: Call, extension: str) -> tuple[RingTarget, ...]:
    """Whom a call to ``extension`` of the call's account rings first; () for nobody."""
    back = await resolve_for_account(call, extension, f"sip:{extension}@invalid")
    return back.waves[0].targets if isinstance(back, Plan) and back.waves else ()
