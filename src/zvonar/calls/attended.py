"""Attended (consultative) transfer: RFC 5589 §7 with RFC 3891's Replaces, across two calls.

An agent A talks to a customer C (call X: C is X's caller, A its answered fork), puts C on
hold, calls a colleague B (call Y: A is Y's caller, B its answered fork) and presses
"transfer": A's phone sends REFER in one of its two dialogs with
``Refer-To: <sip:B?Replaces=<the other dialog>>``. Between phones, C would INVITE B with
Replaces; through a B2BUA both of A's dialogs end at us, so we join the other parties
ourselves: C's media leg is bridged to B's, A gets NOTIFY "200 OK" and a BYE in both dialogs.

A call is one actor, so the leg moves between actors by messages, each handled in its own
actor's task: the *donor* (Y) detaches its answered fork B (:class:`Donate` when the REFER
arrived in X, at once when it arrived in Y), hands it over (:class:`Handover`) and ends its
own side (BYE to A, CallEnded); the *survivor* (X) adopts B as its answered leg, hangs up
A's fork and tells the journal (CallTransferred, kind attended; B's leg rings and answers
in X). Whoever got the REFER answers it: 202, NOTIFY "100 Trying", and the final NOTIFY —
"200 OK" once B is C's, a failure (and nothing changed) if Y could not give B up in time.

Supported: the survivor's caller is the customer and the donor's answered fork the target
(the agent answered one call and placed the other), whichever dialog the REFER came in —
what softphones do when an agent consults. Also two calls both placed by the agent (it
called a customer, then a colleague): the older call — the customer's — survives, the agent
as its caller hands the customer on (handoff.py) and the colleague's leg is adopted. And two
calls both answered by the agent (a receptionist holds one caller, answers another and
joins them): the older call survives and adopts the younger call's *caller* as its answered
leg (:func:`_detach_caller`), the agent is hung up in both. Both dialogs must be with the
phone the REFER came from (RFC 3891 §6). A transfer over rtpengine, which cannot bridge
legs of two calls, is refused (403); a blind transfer still works there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.events import (
    CallAnswered,
    CallRinging,
    Disposition,
    HangupSide,
    LegEndReason,
    Target,
    TargetKind,
    TransferKind,
)
from zvonar.calls.events import LegEnded as LegEndedEvent
from zvonar.calls.handoff import caller_may_hand_on, keep_party
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.plan import RingTarget
from zvonar.calls.refer import notify, publish_transfer, reply
from zvonar.calls.steps import agent_left
from zvonar.calls.teardown import end_winner, finish, hangup_all, hangup_fork, release
from zvonar.media.errors import MediaError
from zvonar.sip.dialog import Dialog
from zvonar.sip.ua import Flow, IncomingRequest
from zvonar.sip.uri import SipUri, Uri, unescape

if TYPE_CHECKING:
    from zvonar.calls.call import Call

__all__ = [
    "HANDOVER_SECONDS",
    "Donate",
    "Handover",
    "HandoverTimeout",
    "Pending",
    "Replaces",
    "on_donate",
    "on_handover",
    "on_handover_timeout",
    "replaces_of",
    "transfer_with_replaces",
]

log = logging.getLogger(__name__)

HANDOVER_SECONDS = 3.0  # the donor answers within one pass of its queue; this is a safety net
_tokens = itertools.count(1)


@dataclass(frozen=True)
class Replaces:
    """RFC 3891 §6.1: the dialog a REFER's target should replace."""

    call_id: str
    to_tag: str
    from_tag: str


def replaces_of(uri: Uri) -> Replaces | None:
    """The Replaces header embedded in a Refer-To URI (``?Replaces=...``, escaped), if any."""
    if not isinstance(uri, SipUri):
        return None
    value = next((unescape(v) for n, v in uri.headers if n.lower() == "replaces"), None)
    return parse_replaces(value) if value is not None else None


def parse_replaces(value: str) -> Replaces | None:
    """A Replaces header's value (RFC 3891 §6.1: call-id, to-tag, from-tag; ``early-only``
    and other parameters ignored); None when a part is missing."""
    call_id, *params = (part.strip() for part in value.split(";"))
    tags: dict[str, str] = {}
    for param in params:
        name, _, tag = param.partition("=")
        tags[name.strip().lower()] = tag.strip()
    to_tag, from_tag = tags.get("to-tag"), tags.get("from-tag")
    if not call_id or not to_tag or not from_tag:
        return None
    return Replaces(call_id, to_tag, from_tag)


@dataclass(frozen=True)
class Donate:
    """To the donor: detach your answered fork and hand it to ``to``. ``party``: whom the
    fork will talk to there when it is not ``to``'s caller (the agent placed both calls)."""

    to: Call
    token: int
    party: Target | None = None
    caller: bool = False  # give our caller, not our answered fork (both calls answered)


@dataclass(frozen=True)
class Handover:
    """To the survivor: the donor's answered fork (None: the donor could not give it)."""

    leg: CalleeLeg | None
    token: int


@dataclass(frozen=True)
class HandoverTimeout:
    token: int


@dataclass
class Pending:
    """The survivor's attended transfer in progress."""

    token: int
    agent: CalleeLeg | None  # A's fork in the survivor (None: A is its caller, handoff.py)
    notify: tuple[Dialog, Flow] | None  # where the REFER's NOTIFYs go (None: the donor's)
    timer: asyncio.TimerHandle | None = None


# -- the REFER ---------------------------------------------------------------------------------


def _other_call(call: Call, replaces: Replaces) -> Call | None:
    from zvonar.calls.call import Call  # call.py imports this module

    host = call.host
    # RFC 3891 §3 names the tags as the recipient (we) sees them; some phones swap them.
    for tag in (replaces.to_tag, replaces.from_tag):
        other = host.dialog_owner(replaces.call_id, tag)
        if isinstance(other, Call) and other is not call:
            return other
    return None


def _answered(call: Call) -> bool:
    winner = call.winner
    return (
        not call.done
        and call.account_id is not None
        and call.caller.state is LegState.CONFIRMED
        and winner is not None
        and winner.state is LegState.CONFIRMED
    )


async def transfer_with_replaces(
    call: Call, inc: IncomingRequest, dialog: Dialog, fork: CalleeLeg | None, replaces: Replaces
) -> None:
    """A REFER with Replaces in one of ``call``'s dialogs (module docstring)."""
    other = _other_call(call, replaces)
    engine = call.host.engine
    if other is None or other.account_id != call.account_id or not engine.bridges_any_legs:
        reply(call, inc, dialog, 403 if other is not None else 481)
        return
    if not (_answered(call) and _answered(other)) or call.transferring or other.transferring:
        reply(call, inc, dialog, 403)
        return
    # Both dialogs must be with the same phone (RFC 3891 §6: Replaces is honoured only for
    # whoever is party to the replaced dialog): the REFER came from where that dialog is.
    if fork is not None and fork is call.winner and _is_caller(other, replaces):
        if inc.flow != other.caller.flow:
            reply(call, inc, dialog, 403)
            return
        # In X from A (its answered fork), naming Y where A is the caller: X survives.
        _ask_for_leg(call, other, fork, _accept(call, inc, dialog, fork.flow))
        return
    other_winner = other.winner
    if fork is None and other_winner is not None and _is_fork(other_winner, replaces):
        if inc.flow != other_winner.flow:
            reply(call, inc, dialog, 403)
            return
        # In Y from A (its caller), naming X where A is the answered fork: X survives.
        await _give_leg(call, other, other_winner, _accept(call, inc, dialog, call.caller.flow))
        return
    if fork is None and _is_caller(other, replaces) and inc.flow == other.caller.flow:
        await _both_placed(call, other, inc, dialog)
        return
    if (
        fork is not None
        and fork is call.winner
        and other_winner is not None
        and _is_fork(other_winner, replaces)
        and inc.flow == other_winner.flow
    ):
        await _both_answered(call, other, fork, inc, dialog)
        return
    reply(call, inc, dialog, 403)


async def _both_placed(call: Call, other: Call, inc: IncomingRequest, dialog: Dialog) -> None:
    """A placed both calls (a customer, then a colleague to consult) and REFERs in one of
    them naming the other: the older call — the customer's — survives, its caller side (A)
    hands the customer on (handoff.py) and adopts the younger call's answered fork."""
    older = call.facts.started_at <= other.facts.started_at
    survivor, donor = (call, other) if older else (other, call)
    ready = caller_may_hand_on(survivor) and caller_may_hand_on(donor)
    if not ready or call.transferring or other.transferring:
        reply(call, inc, dialog, 403)
        return
    # The customer (the survivor's answered party) is whom the colleague talks to next;
    # read before the survivor runs: it hands the customer on once it has the leg.
    party = _party(survivor)
    where = _accept(call, inc, dialog, call.caller.flow)
    if survivor is call:  # the REFER came in the customer's call: ask the other for its leg
        _ask_for_leg(call, other, None, where, party)
    else:  # it came in the consultation: give its answered fork to the customer's call
        await _give_leg(call, other, None, where, party)


async def _both_answered(
    call: Call, other: Call, fork: CalleeLeg, inc: IncomingRequest, dialog: Dialog
) -> None:
    """A answered both calls and REFERs in one of them naming the other: the older call
    survives and adopts the younger one's caller; A's fork is hung up in both."""
    where = _accept(call, inc, dialog, fork.flow)
    if call.facts.started_at <= other.facts.started_at:  # the REFER came in the survivor
        _ask_for_leg(call, other, fork, where, caller=True)
    else:
        await _give_leg(call, other, other.winner, where, caller=True)


def _accept(call: Call, inc: IncomingRequest, dialog: Dialog, flow: Flow) -> tuple[Dialog, Flow]:
    """202 to the REFER and the first NOTIFY; where the later NOTIFYs go."""
    reply(call, inc, dialog, 202)
    where = (dialog, flow)
    notify(call, where, 100, "Trying")
    return where


def _ask_for_leg(
    call: Call,
    donor: Call,
    agent: CalleeLeg | None,
    where: tuple[Dialog, Flow],
    party: Target | None = None,
    *,
    caller: bool = False,
) -> None:
    """The REFER came in the survivor (``call``): ask ``donor`` for its answered fork (or
    its caller); the Handover (or the timeout) finishes it here. ``agent``: A's fork here
    (None: our caller)."""
    token = next(_tokens)
    pending = Pending(token, agent, where)
    loop = asyncio.get_running_loop()
    pending.timer = loop.call_later(HANDOVER_SECONDS, call.put, HandoverTimeout(token))
    call.attended = pending
    call.transferring = True
    donor.put(Donate(call, token, party, caller))


async def _give_leg(
    call: Call,
    survivor: Call,
    agent: CalleeLeg | None,
    where: tuple[Dialog, Flow],
    party: Target | None = None,
    *,
    caller: bool = False,
) -> None:
    """The REFER came in the donor (``call``): detach our answered fork (or our caller),
    hand it over to ``survivor`` and end our side; the NOTIFYs go from here."""
    token = next(_tokens)
    survivor.attended = Pending(token, agent, None)
    survivor.transferring = True
    detached = await (_detach_caller(call) if caller else _detach(call))
    if detached is not None and survivor.done:  # the customer left while we detached
        await _orphan(call, detached[0])
        detached = None
    survivor.put(Handover(detached[0] if detached else None, token))
    if detached is None:
        notify(call, where, 503, "Service Unavailable")
        return
    notify(call, where, 200, "OK")
    await _end_donor(call, survivor, detached[1], detached[2], party, caller=caller)


def _party(survivor: Call) -> Target:
    """The customer in a call the agent placed: the party that answered it."""
    assert survivor.winner is not None
    return survivor.winner.target.target


def _is_caller(call: Call, replaces: Replaces) -> bool:
    caller = call.caller
    return caller.sip_call_id == replaces.call_id and caller.local_tag in (
        replaces.to_tag,
        replaces.from_tag,
    )


def _is_fork(fork: CalleeLeg, replaces: Replaces) -> bool:
    return fork.sip_call_id == replaces.call_id and fork.local_tag in (
        replaces.to_tag,
        replaces.from_tag,
    )


# -- the donor ---------------------------------------------------------------------------------


async def on_donate(call: Call, order: Donate) -> None:
    """The survivor asks for our answered fork (the REFER came in its dialog)."""
    survivor = order.to
    ready = _answered(call) and not call.transferring and not survivor.done
    detach = _detach_caller if order.caller else _detach
    detached = await detach(call) if ready else None
    if detached is not None and survivor.done:  # it ended while we detached: nobody to join
        await _orphan(call, detached[0])
        await hangup_all(call, HangupSide.system)
        return
    survivor.put(Handover(detached[0] if detached else None, order.token))
    if detached is not None:
        await _end_donor(call, survivor, detached[1], detached[2], order.party, caller=order.caller)


async def _detach(call: Call) -> tuple[CalleeLeg, str, str] | None:
    """Take our answered fork out of this call: unbridged, no longer ours to hang up. With
    it, what the survivor may change once it has it: the leg's id here and our media leg
    that was its pair (A's, released with our side)."""
    leg = call.winner
    if leg is None or leg.state is not LegState.CONFIRMED:
        return None
    engine = call.host.engine
    try:
        await engine.unbridge(leg.media_id)
    except MediaError as exc:
        log.info("call %s: cannot detach %s: %s", call.call_id, leg.leg_id, exc)
        return None
    call.forks.pop(leg.leg_id, None)
    call.winner = None
    call.host.untrack_media(leg.media_id)  # the survivor tracks it again
    caller_side, leg.caller_media_id = leg.caller_media_id, ""
    return leg, leg.leg_id, caller_side


async def _detach_caller(call: Call) -> tuple[CalleeLeg, str, str] | None:
    """Take our caller out of this call as a leg another call can adopt (both calls were
    answered by the agent): unbridged from the agent, its hold music stopped, no longer ours
    to hang up or release; our answered fork (the agent) stays, to be hung up with us."""
    caller, agent = call.caller, call.winner
    media, endpoint, oa, dialog = caller.media_id, caller.endpoint, caller.oa, caller.dialog
    if agent is None or media is None or endpoint is None or oa is None or dialog is None:
        return None
    engine = call.host.engine
    try:
        await engine.unbridge(media)
    except MediaError as exc:
        log.info("call %s: cannot detach the caller: %s", call.call_id, exc)
        return None
    if call.holding:  # the agent held this caller too: the music stops here
        call.holding.clear()
        with contextlib.suppress(MediaError):
            await engine.stop_playback(media)
    who = Target(TargetKind.external, call.facts.caller[:64] or "unknown")
    leg = CalleeLeg(
        leg_id=caller.leg_id,
        wave=0,
        target=RingTarget(str(dialog.remote_target), caller.flow, who),
        flow=caller.flow,
        local_tag=caller.local_tag,
        sip_call_id=caller.sip_call_id,
        media_id=media,
        caller_media_id="",
        endpoint=endpoint,
        caller_endpoint=endpoint,
        oa=oa,
        dialog=dialog,
        state=LegState.CONFIRMED,
        rang=True,
    )
    caller.state = LegState.ENDED  # not ours to BYE any more
    caller.media_id = None
    agent.caller_media_id = ""  # the caller's side of the agent's pair moved with it
    call.host.untrack_media(media)  # the survivor tracks it again
    return leg, caller.leg_id, ""


async def _end_donor(
    call: Call,
    survivor: Call,
    leg_id: str,
    caller_side: str,
    party: Target | None = None,
    *,
    caller: bool = False,
) -> None:
    """Our side is over: the transferred leg's end and the move in our journal (to whom our
    target now talks to: the survivor's caller, or ``party``), BYE to A. ``caller``: it was
    our caller that moved (both calls answered): A is our answered fork, hung up by finish."""
    to = party or Target(TargetKind.external, survivor.facts.caller[:64] or "unknown")
    if not caller:
        at = call.now()
        await call.publish(LegEndedEvent, leg_id=leg_id, reason=LegEndReason.completed, at=at)
    await publish_transfer(call, leg_id, to, TransferKind.attended)
    await finish(call, Disposition.answered, HangupSide.callee if caller else HangupSide.caller)
    await release(call, caller_side)  # after finish: CallEnded carries its quality


# -- the survivor ------------------------------------------------------------------------------


async def on_handover(call: Call, handover: Handover) -> None:
    pending = call.attended
    leg = handover.leg
    if pending is None or pending.token != handover.token or call.done:
        if leg is not None:  # nobody wants it any more: end it rather than leak it
            await _orphan(call, leg)
        return
    _clear(call, pending)
    if leg is None:
        notify(call, pending.notify, 503, "Service Unavailable")
        await _agent_gone_check(call, pending.agent)
        return
    await _adopt(call, pending, leg)


async def on_handover_timeout(call: Call, expired: HandoverTimeout) -> None:
    pending = call.attended
    if pending is None or pending.token != expired.token:
        return
    _clear(call, pending)
    notify(call, pending.notify, 408, "Request Timeout")
    await _agent_gone_check(call, pending.agent)


def _clear(call: Call, pending: Pending) -> None:
    if pending.timer is not None:
        pending.timer.cancel()
    call.attended = None
    call.transferring = False


async def _agent_gone_check(call: Call, agent: CalleeLeg | None) -> None:
    """The transfer failed; if the agent hung up meanwhile, the call ends as it would have."""
    if call.done:
        return
    if agent is None:  # the caller side (A placed the call)
        if call.caller.state is LegState.ENDED:
            await hangup_all(call, HangupSide.caller)
    elif agent.state is LegState.ENDED and call.winner is agent:
        await hangup_all(call, HangupSide.callee)


async def _orphan(call: Call, leg: CalleeLeg) -> None:
    """A detached leg nobody adopts: BYE, and its media released (tracked here for that)."""
    hangup_fork(call, leg)
    call.host.track_media(leg.media_id, call)
    await release(call, leg.media_id)


async def _adopt(call: Call, pending: Pending, leg: CalleeLeg) -> None:
    """B becomes our answered leg: bridged to the caller; A's fork hung up (or A, our
    caller, hands the customer on first: handoff.py)."""
    host, engine, agent = call.host, call.host.engine, pending.agent
    if agent is None:
        if not caller_may_hand_on(call):  # A or the customer left meanwhile
            notify(call, pending.notify, 487, "Request Terminated")
            await _orphan(call, leg)
            await _agent_gone_check(call, None)
            return
        notify(call, pending.notify, 200, "OK")  # before A's dialog ends
        from_leg = await keep_party(call)
    else:
        from_leg = agent.leg_id
    leg.leg_id = f"{call.call_id}.x{next(_tokens)}"  # ours now, unique in our journal
    leg.wave = call.wave
    host.track_dialog(leg.sip_call_id, leg.local_tag, call)
    host.track_media(leg.media_id, call)
    call.forks[leg.leg_id] = leg
    caller_media = call.caller.media_id
    try:
        if caller_media is None:
            raise MediaError("the caller has no media leg")
        if call.holding:  # the agent held the customer to consult: the music stops
            call.holding.clear()
            with contextlib.suppress(MediaError):
                await engine.stop_playback(caller_media)
        await engine.bridge(caller_media, leg.media_id)
    except MediaError as exc:
        log.warning("call %s: attended transfer failed: %s", call.call_id, exc)
        notify(call, pending.notify, 500, "Server Internal Error")
        call.forks.pop(leg.leg_id, None)
        await _orphan(call, leg)
        if agent is None:  # A is gone already: the customer has nobody left
            await hangup_all(call, HangupSide.system)
        return
    agent_left(call)  # a queue's agent is free now (wrap-up)
    call.winner = leg
    if agent is not None:
        notify(call, pending.notify, 200, "OK")
        await end_winner(call, agent)  # BYE unless ended, its end with its audio's quality
        agent.state = LegState.ENDED
        await release(call, agent.media_id)
    await publish_transfer(call, from_leg, leg.target.target, TransferKind.attended)
    target = leg.target.target
    await call.publish(CallRinging, leg_id=leg.leg_id, target=target, at=call.now())
    by = target.target_id if target.kind in (TargetKind.employee, TargetKind.mobile) else None
    await call.publish(CallAnswered, leg_id=leg.leg_id, at=call.now(), by=by)
