"""Call pickup: an employee dials a feature code and takes a call that is ringing a
colleague's phone (the resolver answers :class:`~zvonar.calls.plan.Pickup`, see
pbx/features.py). Directed pickup names the colleague; group pickup (:class:`GroupPickup`)
takes the oldest call ringing any member of the picker's groups.

The picker's INVITE arrives as a new call of its own; the B2BUA's dispatch hook
(``B2bua._resolve``) hands the Pickup here instead of to that call. We find the oldest call of
the same account that has a live fork to the employee (or, for a group pickup, to any of the
members), and the picker's INVITE dialog becomes
that call's answered callee leg:

- a new media pair is allocated (the caller's side and the picker's side, in one engine call:
  rtpengine bridges only legs allocated together); a caller already answered (a transfer that
  is ringing) keeps its media leg and only the picker's side is new;
- the caller gets its 200 with our SDP (if not answered yet), the picker gets 200 with ours
  (an answer, or an offer when its INVITE had none: its ACK then answers, and the call's
  actor configures the picker's leg from it, answering.fork_answer_in_ack);
- every ringing fork is CANCELled (LegEnded cancelled); CallRinging and CallAnswered are
  published for the picker's leg (answered_by = the picker), so the journal has the leg;
- from then on the call actor treats the picker's dialog as the winning fork: BYE from either
  side ends the call, re-INVITE and REFER (a transfer) work as for any answered agent.

The picker's own call then ends silently (no events: its resolution carries no account).

Concurrency: this runs in the picker call's task, not the picked call's actor. The claim
(``winner`` set) is synchronous, so once it is made the actor ignores a crossing 2xx
(ACK + BYE) and wave timeouts; the asynchronous part only touches legs the actor no longer
decides on. Calls in the middle of a transfer are not picked up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zvonar.calls.answering import answer_caller, caller_sdp
from zvonar.calls.early import confirm as confirm_early
from zvonar.calls.events import (
    CallAnswered,
    CallRinging,
    Disposition,
    HangupSide,
    LegEndReason,
    TargetKind,
)
from zvonar.calls.events import LegEnded as LegEndedEvent
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.plan import InboundCall, Pickup, Plan, Reject, RingTarget
from zvonar.calls.sdp_bridge import check_offer, new_offer_answer, parse_body, remote_media
from zvonar.calls.signalling import response_to
from zvonar.calls.teardown import finish, release, stop_fork
from zvonar.media.engine import LegEndpoint, MediaEngine
from zvonar.media.errors import MediaError
from zvonar.media.sdp import SessionDescription
from zvonar.sip.body import sdp_body
from zvonar.sip.dialog import DialogId
from zvonar.sip.errors import SipError
from zvonar.sip.ua import IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua
    from zvonar.calls.call import Call

__all__ = [
    "PICKED",
    "FeatureResolver",
    "GroupPickup",
    "adopt",
    "answer_taker",
    "answered",
    "claim",
    "find_ringing",
    "pick_up",
    "picker_invite",
    "picker_sdp",
    "respond",
    "tag",
    "taker_failed",
    "wanted",
]

log = logging.getLogger(__name__)

FeatureResolver = Callable[[InboundCall], Awaitable[Plan | Reject | Pickup]]
"""The PBX's resolver as the B2BUA takes it: a plan, a refusal, or a feature (pickup)."""

_NOTHING = Reject(404, "No Ringing Call")  # no account: a failed pickup is not a call
PICKED = Reject(480)  # the picker's own call, emptied: ends without a word (see pick_up)


@dataclass(frozen=True)
class GroupPickup(Pickup):
    """Group pickup: take the oldest call ringing any of ``members`` (the picker's fellow
    group members). ``employee_id`` is the picker's own id here: only ``members`` is searched.

    A subclass so that the B2BUA's dispatch (``isinstance(outcome, Pickup)``) needs no change.
    """

    members: frozenset[uuid.UUID] = field(default_factory=frozenset)


def wanted(order: Pickup) -> frozenset[uuid.UUID]:
    """The employees whose ringing calls ``order`` may take."""
    if isinstance(order, GroupPickup):
        return order.members
    return frozenset({order.employee_id})


def find_ringing(
    calls: Iterable[Call], account_id: object, employees: Set[uuid.UUID]
) -> tuple[Call, CalleeLeg] | None:
    """The oldest call of ``account_id`` with a live fork whose target is one of
    ``employees`` (oldest by start time; the B2BUA's table keeps arrival order anyway)."""
    for call in sorted(calls, key=lambda c: c.facts.started_at):
        if call.done or call.account_id != account_id or call.account_id is None:
            continue
        if call.winner is not None or call.transferring or call.caller.state is LegState.ENDED:
            continue
        if not call.was_answered and call.caller.invite is None:
            continue  # the caller's INVITE is being answered otherwise (a prompt)
        live = set(call.tracker.live)
        for fork in call.forks.values():
            target = fork.target.target
            if (
                fork.state is LegState.INVITING
                and fork.leg_id in live
                and target.kind in (TargetKind.employee, TargetKind.mobile)
                and target.target_id in employees
            ):
                return call, fork
    return None


async def pick_up(host: B2bua, facts: InboundCall, order: Pickup) -> Plan | Reject:
    """Carry out ``order`` for the new call ``facts``; what that new call itself does next
    (the B2BUA's dispatch hook returns it to the call's actor)."""
    found_picker = picker_invite(host, facts)
    if isinstance(found_picker, Reject):
        return found_picker
    picker, inc = found_picker
    employees = wanted(order)
    if find_ringing(list(host.calls.values()), order.account_id, employees) is None:
        return _NOTHING
    # Media first (a pair, as a fork's), then the claim: the picked call may have been
    # answered or ended while we waited for the engine, so it is looked up again.
    media, caller_media = f"{picker.call_id}.pk", f"{picker.call_id}.pk.c"
    try:
        caller_end = await host.engine.allocate(media, caller_media)
        endpoint = await host.engine.allocate(media, media)
    except MediaError as exc:
        log.warning("call %s: no media for a pickup: %s", picker.call_id, exc)
        await _release(host, caller_media, media)
        return Reject(500, "Server Internal Error")
    found = find_ringing(list(host.calls.values()), order.account_id, employees)
    if found is None:
        await _release(host, caller_media, media)
        return _NOTHING
    call = found[0]
    spare = None
    if call.was_answered and call.caller.media_id is not None:  # a transfer is ringing
        spare, caller_media = caller_media, ""  # the caller's media leg stays
        caller_end = call.caller.endpoint or caller_end
    leg_id = f"{call.call_id}.{f'r{call.round}pk' if call.round else 'pk'}"
    leg = claim(call, picker, inc, order, leg_id, (media, endpoint), (caller_media, caller_end))
    # The picker's INVITE is ours now: its own call must neither answer nor refuse it.
    picker.caller.invite = None
    picker.caller.state = LegState.ENDED
    if spare is not None:
        await _release(host, spare)
    # Shielded: the actor's resolve timeout must not cut a half-done pickup in two.
    await asyncio.shield(_connect(call, leg, inc))
    return PICKED


def picker_invite(host: B2bua, facts: InboundCall) -> tuple[Call, IncomingRequest] | Reject:
    """The call that dialled a feature code and its INVITE, if that INVITE is still to be
    answered and its offer one we can take; else the refusal for it."""
    picker = host.calls.get(facts.call_id)
    inc = picker.caller.invite if picker is not None else None
    if picker is None or inc is None or picker.plan is not None or picker.was_answered:
        return Reject(403, "Forbidden")  # a feature code in a REFER: not a transfer target
    try:
        offer = sdp_body(inc.request)
        if offer.strip():  # none: a delayed offer, ours goes in the 200
            check_offer(offer, srtp=host.engine.srtp)
    except MediaError:
        return Reject(488, "Not Acceptable Here")
    return picker, inc


def claim(
    call: Call,
    picker: Call,
    inc: IncomingRequest,
    order: Pickup,
    leg_id: str,
    media: tuple[str, LegEndpoint],
    caller_media: tuple[str, LegEndpoint | None],
    *,
    label: str = "pickup",
) -> CalleeLeg:
    """Synchronously make the picker's dialog the winner of ``call`` (module docstring);
    a pull (pull.py) makes it the same way, with no caller media of its own."""
    req, host = inc.request, call.host
    contact = req.contacts[0].uri if req.contacts else req.from_.uri
    leg = CalleeLeg(
        leg_id=leg_id,
        wave=call.wave,
        target=RingTarget(str(contact), inc.flow, order.picker, label=label),
        flow=inc.flow,
        local_tag=picker.caller.local_tag,
        sip_call_id=req.call_id,
        media_id=media[0],
        caller_media_id=caller_media[0],
        endpoint=media[1],
        caller_endpoint=caller_media[1],
        oa=new_offer_answer(media[1]),
    )
    call.winner = leg
    call.forks[leg.leg_id] = leg
    host.track_media(leg.media_id, call)
    if leg.caller_media_id:
        host.track_media(leg.caller_media_id, call)
    host.track_dialog(leg.sip_call_id, leg.local_tag, call)
    call.cancel_timer()
    return leg


async def _connect(call: Call, leg: CalleeLeg, inc: IncomingRequest) -> None:
    """Answer both sides, bridge them, stop the forks and tell the journal."""
    caller, engine = call.caller, call.host.engine
    for fork in list(call.forks.values()):
        if fork is not leg and fork.pending:
            await stop_fork(call, fork, LegEndReason.cancelled, elsewhere=True)
    await call.publish(CallRinging, leg_id=leg.leg_id, target=leg.target.target, at=call.now())
    try:
        ours = await picker_sdp(engine, leg, inc)
        confirmed = await confirm_early(call)  # it heard early media: answered on that leg
        if caller.media_id is not None and (confirmed or not leg.caller_media_id):
            await engine.bridge(caller.media_id, leg.media_id)
            call.was_answered = True
        else:
            await _answer_caller(call, leg)
    except (MediaError, SipError, ValueError) as exc:
        log.warning("call %s: pickup failed: %s", call.call_id, exc)
        respond(call, leg, inc, 500)
        leg.state = LegState.ENDED
        await finish(call, Disposition.failed, HangupSide.system, caller_status=500)
        return
    answer_taker(call, leg, inc, ours)
    if call.route is not None:
        # The ring step did connect the caller (the journal's path says so, and a scheme
        # that asks for a rating asks after the picker's talk too). Not the queue: its
        # offer went to the agent it chose, whom the picker is not.
        call.route.connected(leg.target.target)
    await answered(call, leg)
    await call.record()


async def adopt(
    host: B2bua,
    facts: InboundCall,
    order: Pickup,
    find: Callable[[], Call | None],
    nothing: Reject,
    *,
    kind: str,
    label: str,
    serial: Iterator[int],
) -> tuple[Call, CalleeLeg | None, CalleeLeg, IncomingRequest] | Reject:
    """Make the feature-code INVITE ``facts`` a new leg of the answered call ``find`` names
    (a pull's, a parked call's): a media leg of its own (``<its call id>.<kind>``), claimed
    as the call's winner (leg ``<call id>.<kind><serial>``, its target labelled ``label``),
    the INVITE's own call ended. Returns the call, its winner until now, the new leg and
    the INVITE; or what the INVITE gets instead (``nothing``: no such call, before or after
    the engine allocated). The caller bridges the media: it needs an engine that bridges
    any two legs (rtpengine: 403)."""
    if not host.engine.bridges_any_legs:
        return Reject(403, "Forbidden")  # rtpengine bridges only legs allocated together
    found = picker_invite(host, facts)
    if isinstance(found, Reject):
        return found
    taker, inc = found
    if find() is None:
        return nothing
    media = f"{taker.call_id}.{kind}"
    try:
        endpoint = await host.engine.allocate(media, media)
    except MediaError as exc:
        log.warning("call %s: no media for a %s: %s", taker.call_id, label, exc)
        return Reject(500, "Server Internal Error")
    call = find()  # it may have ended (or been taken) while the engine allocated
    if call is None:
        await _release(host, media)
        return nothing
    before = call.winner
    leg_id = f"{call.call_id}.{kind}{next(serial)}"
    leg = claim(call, taker, inc, order, leg_id, (media, endpoint), ("", None), label=label)
    taker.caller.invite = None  # ours now: the taker's own call neither answers nor refuses
    taker.caller.state = LegState.ENDED
    return call, before, leg, inc


def answer_taker(
    call: Call, leg: CalleeLeg, inc: IncomingRequest, ours: SessionDescription
) -> None:
    """200 with ``ours`` to the INVITE of a claimed leg (a pickup's, pull's or parked
    call's): it is the call's answered leg now, in the dialog that 200 made. Its
    CallAnswered is the caller's to publish, when the rest of its move is done."""
    respond(call, leg, inc, 200, ours.serialize().encode())
    leg.dialog = call.host.ua.dialogs.get(DialogId(leg.sip_call_id, leg.local_tag, tag(inc)))
    leg.state = LegState.CONFIRMED


async def answered(call: Call, leg: CalleeLeg) -> None:
    """CallAnswered for a claimed leg, answered by its employee (the picker)."""
    by = leg.target.target.target_id
    await call.publish(CallAnswered, leg_id=leg.leg_id, at=call.now(), by=by)


async def taker_failed(call: Call, leg: CalleeLeg, inc: IncomingRequest) -> None:
    """An adopted leg could not join the call: 500 to its INVITE, its media released, its end
    (failed) in the journal. The call itself goes on as before."""
    respond(call, leg, inc, 500)
    leg.state = LegState.ENDED
    await release(call, leg.media_id)
    await call.publish(LegEndedEvent, leg_id=leg.leg_id, reason=LegEndReason.failed, at=call.now())
    leg.end_published = True


async def picker_sdp(
    engine: MediaEngine, leg: CalleeLeg, inc: IncomingRequest
) -> SessionDescription:
    """Our SDP for the picker's 200 (a pull's too): the answer to its offer, the engine leg
    configured for it; to an INVITE without one (a delayed offer, RFC 3261 §13.2.1), our
    offer, answered in its ACK (Call.offered_fork)."""
    offer = sdp_body(inc.request)
    if not offer.strip():
        leg.offered = True
        return leg.oa.create_offer()
    ours, negotiated = leg.oa.receive_offer(parse_body(offer))
    await engine.configure(leg.media_id, remote_media(negotiated))
    return ours


async def _answer_caller(call: Call, leg: CalleeLeg) -> None:
    """The caller was still waiting: answer it with the new pair's caller side, bridged."""
    engine = call.host.engine
    endpoint = leg.caller_endpoint
    assert endpoint is not None  # a pickup opens its pair up front (_claim)
    sdp = await caller_sdp(call, leg.caller_media_id, endpoint)
    await engine.bridge(leg.caller_media_id, leg.media_id)
    await answer_caller(call, sdp)
    call.was_answered = True


async def _release(host: B2bua, *media_ids: str) -> None:
    for media_id in media_ids:
        host.untrack_media(media_id)
        try:
            await host.engine.release(media_id)
        except MediaError as exc:
            log.debug("pickup: release %s: %s", media_id, exc)


def respond(
    call: Call, leg: CalleeLeg, inc: IncomingRequest, status: int, body: bytes = b""
) -> None:
    ua = call.host.ua
    contact = str(ua.contact_uri(inc.flow))
    resp = response_to(
        inc.request, status, leg.local_tag, contact=contact, body=body, allow=ua.allow_header
    )
    ua.respond(inc, resp, call.host.now())
    call.host.flush()


def tag(inc: IncomingRequest) -> str:
    return inc.request.from_.tag or ""
