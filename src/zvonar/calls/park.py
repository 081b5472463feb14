"""Call park: the answered employee transfers the customer to a park slot, ``*51`` … ``*59``
(a BLF key per slot on the phones, as FreePBX's 71–78 or Asterisk's 701–720), hangs up and
walks away; whoever dials that slot from any phone of the account takes the call. The
customer hears the account's hold music while parked (our ringback if it has none), never
silence. Nobody takes it within ``PARK_SECONDS``: the parker's phone is rung back
(``RING_BACK_SECONDS``), and if they do not answer either the call ends. Both times are the
account's settings where its plan carries them (``Plan.park_seconds``, from the account).

Parking is a blind transfer whose target is a slot (transfer.py hands it here: REFER from
the phone, or the API's transfer with ``*5N``). An employee who dialled the customer parks
them too: the customer's leg becomes the call's caller (handoff.py) and the employee's is
hung up; it is their devices that are rung back. It needs an engine that bridges any two legs
(the embedded one): over rtpengine, or with the slot taken by another of the account's
calls, the REFER fails and the employee stays on the call. The journal shows the transfer
to the slot (``TargetKind.park``) and then the leg of whoever took the call, answered by
them; the recording goes on (it follows the customer's leg).

Taking the call (:class:`Unpark`, answered by pbx/features.py for the code dialled from a
phone of ours) works as a pickup's claim (pickup.py): the taker's INVITE dialog becomes the
call's answered leg. The slot is the call's own state (``Call.parked``), not a registry:
a call that ends while parked frees its slot with it. A phone's park key watches a slot
(pbx/blf.py, pbx/lines.py): lit while a call waits there (``B2bua.parked_in``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from zvonar.calls.events import CallRinging, Target, TargetKind, TransferKind
from zvonar.calls.handoff import caller_may_hand_on, keep_party
from zvonar.calls.legs import CalleeLeg, LegState
from zvonar.calls.pickup import PICKED, adopt, answer_taker, answered, picker_sdp, taker_failed
from zvonar.calls.plan import InboundCall, Pickup, Plan, Reject, RingTarget, Wave
from zvonar.calls.refer import publish_transfer
from zvonar.calls.steps import agent_left
from zvonar.calls.teardown import end_winner, release
from zvonar.calls.tones import ringback_path
from zvonar.calls.waves import ring_round
from zvonar.media.errors import MediaError
from zvonar.sip.errors import SipError
from zvonar.sip.ua import IncomingRequest

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua
    from zvonar.calls.call import Call

__all__ = [
    "PARK_CODE",
    "PARK_SECONDS",
    "RING_BACK_SECONDS",
    "ParkTimeout",
    "Parked",
    "ParkedCall",
    "Unpark",
    "customer_of",
    "find_parked",
    "park",
    "park_by_caller",
    "park_slot",
    "parked_calls",
    "retrieve",
    "slot_code",
    "timed_out",
]

log = logging.getLogger(__name__)

PARK_CODE = "*5"  # followed by the slot, 1-9
PARK_SECONDS = 120.0  # then the parker is rung back
RING_BACK_SECONDS = 30.0
_NOTHING = Reject(404, "Nothing Parked")  # no account: a failed retrieval is not a call
_takes = itertools.count(1)  # a call parked twice is taken twice: its legs' ids must differ


def park_slot(dialed: str) -> int | None:
    """The slot ``*5N`` names; None for any other number."""
    if len(dialed) == 3 and dialed.startswith(PARK_CODE) and dialed[2] in "123456789":
        return int(dialed[2])
    return None


def slot_code(slot: int) -> str:
    """What is dialled for ``slot`` (``park_slot``'s inverse): "*51"."""
    return f"{PARK_CODE}{slot}"


@dataclass(frozen=True)
class Parked:
    """Where a call waits (``Call.parked``): its slot, whom to ring back when nobody takes
    it (the parker's leg, or the devices of an employee who dialled out) and the timer that
    rings them."""

    slot: int
    by: tuple[RingTarget, ...]
    timer: asyncio.TimerHandle
    since: datetime
    settled: bool = False  # the agent's leg is gone and the music plays: it may be taken


@dataclass(frozen=True)
class ParkedCall:
    """A call waiting in a slot, as the live view shows it."""

    slot: str  # "*51"
    call_id: str
    caller: str  # the customer's number (for a customer the employee dialled: that number)
    since: datetime
    parked_by: uuid.UUID | None


@dataclass(frozen=True)
class ParkTimeout:
    """Nobody took the call from ``slot`` in time (an input of the call's actor)."""

    slot: int


@dataclass(frozen=True)
class Unpark(Pickup):
    """Take the call parked in ``slot`` of ``account_id`` to the phone that dialled the slot;
    ``picker`` (and ``employee_id``) is that phone's employee, the journal's answered_by."""

    slot: int = 0


def _waiting(call: Call, account_id: object) -> Parked | None:
    """Where ``call`` of ``account_id`` waits, if it is parked (also being parked right now)
    with its customer still on the line."""
    parked = call.parked
    if parked is None or call.account_id != account_id or call.done:
        return None
    return parked if call.caller.state is LegState.CONFIRMED else None


def find_parked(
    calls: Iterable[Call], account_id: object, slot: int, *, settled: bool = True
) -> Call | None:
    """The account's call waiting in ``slot``, if any (``settled=False``: also one being
    parked there right now)."""
    for call in calls:
        parked = _waiting(call, account_id)
        if parked is not None and parked.slot == slot and (parked.settled or not settled):
            return call
    return None


def customer_of(call: Call) -> str:
    """Who waits in the slot: the caller, or the customer the employee dialled (the call's
    caller since the hand-on: its From names them)."""
    if call.caller.was_fork:
        return getattr(call.caller_request.from_.uri, "user", None) or ""
    return call.facts.caller


def parked_calls(calls: Iterable[Call], account_id: object) -> list[ParkedCall]:
    """The account's parked calls, by slot (those being parked right now too); who parked
    each is the employee its ring-back rings."""
    out = []
    for call in calls:
        parked = _waiting(call, account_id)
        if parked is None:
            continue
        parker = next((who for who in map(_employee, parked.by) if who is not None), None)
        code, customer = slot_code(parked.slot), customer_of(call)
        out.append(ParkedCall(code, call.call_id, customer, parked.since, parker))
    return sorted(out, key=lambda p: p.slot)


def _reserve(
    call: Call, slot: int, by: tuple[RingTarget, ...], told: Callable[[int], None]
) -> bool:
    """Take ``slot`` for ``call`` if it is free: ``told`` hears 200 (or 486), the ring-back
    timer runs. Synchronous: a second park into the slot is refused; taking the call waits
    until the customer is off the employee's leg (``settled``)."""
    if find_parked(call.host.calls.values(), call.account_id, slot, settled=False) is not None:
        told(486)  # the slot is taken: the employee keeps the call and picks another
        return False
    told(200)
    plan = call.plan
    wait = plan.park_seconds if plan is not None and plan.park_seconds else PARK_SECONDS
    timer = asyncio.get_running_loop().call_later(wait, call.put, ParkTimeout(slot))
    call.parked = Parked(slot, by, timer, call.now())
    return True


def _where(slot: int) -> Target:
    return Target(TargetKind.park, slot_code(slot))


async def park(call: Call, agent: CalleeLeg, slot: int, told: Callable[[int], None]) -> None:
    """Park ``call``'s customer in ``slot``, ``agent`` (the answered leg) leaving; ``told``
    hears 200, or why not (the REFER's NOTIFY, the API's answer)."""
    host, media = call.host, call.caller.media_id
    if not host.engine.bridges_any_legs or media is None or call.account_id is None:
        told(403)
        return
    if not _reserve(call, slot, (agent.target,), told):
        return
    agent_left(call)
    held = bool(call.holding)  # the music plays already: the agent held the customer
    call.holding.clear()
    call.winner = None
    await publish_transfer(call, agent.leg_id, _where(slot), TransferKind.blind)
    await end_winner(call, agent)
    agent.state = LegState.ENDED
    await host.engine.unbridge(media)
    await release(call, agent.media_id)
    await _settle(call, media, held)


async def park_by_caller(
    call: Call, slot: int, back: tuple[RingTarget, ...], told: Callable[[int], None]
) -> None:
    """Park the customer an employee dialled (the call's answered party) in ``slot``, the
    employee's own leg (the caller side) leaving; ``back``: their devices, rung back when
    nobody takes the call."""
    if not caller_may_hand_on(call) or call.account_id is None:
        told(403)  # a caller from outside parks nobody; nor without a bridging engine
        return
    if not _reserve(call, slot, back, told):
        return
    held = bool(call.holding)  # the employee held the customer: the music plays already
    call.holding.clear()
    await publish_transfer(call, call.caller.leg_id, _where(slot), TransferKind.blind)
    await keep_party(call)  # the customer is the caller now, the employee's leg hung up
    media = call.caller.media_id
    assert media is not None  # the party's own engine leg (caller_may_hand_on)
    await _settle(call, media, held)


def _employee(target: RingTarget) -> uuid.UUID | None:
    """The employee a ring target belongs to (their phone or their mobile)."""
    kind = target.target.kind
    return target.target.target_id if kind in (TargetKind.employee, TargetKind.mobile) else None


async def _settle(call: Call, media: str, held: bool) -> None:
    """The customer waits: the music on ``media`` unless it plays already; the call may
    now be taken from its slot."""
    if not held:
        await _music(call, media)
    if call.parked is not None:
        call.parked = replace(call.parked, settled=True)


async def _music(call: Call, media: str) -> None:
    """The account's hold music for the parked customer; our ringback if it has none."""
    host = call.host
    music = host.hold_music(call.account_id) if host.hold_music and call.account_id else None
    try:
        await host.engine.play(media, music or ringback_path(), loop=True)
    except MediaError as exc:
        log.info("call %s: no music while parked: %s", call.call_id, exc)


async def timed_out(call: Call, item: ParkTimeout) -> None:
    """Nobody took the call: its parker's phone rings (the music plays on meanwhile)."""
    parked = call.parked
    if parked is None or parked.slot != item.slot or call.plan is None:
        return
    call.parked = None
    ring = call.plan.park_ring_back_seconds or RING_BACK_SECONDS
    await ring_round(call, call.plan, (Wave(parked.by, ring),) if parked.by else ())


async def retrieve(host: B2bua, facts: InboundCall, order: Unpark) -> Plan | Reject:
    """Carry out ``order`` for the new call ``facts`` (the taker's); what that call itself
    does next."""
    adopted = await adopt(
        host,
        facts,
        order,
        lambda: find_parked(host.calls.values(), order.account_id, order.slot),
        _NOTHING,
        kind="pk",
        label="park",
        serial=_takes,
    )
    if isinstance(adopted, Reject):
        return adopted
    call, _, leg, inc = adopted
    parked = call.parked
    assert parked is not None  # find_parked, and nothing was awaited since
    call.parked = None  # taken: nobody else dialling the slot finds it now
    await asyncio.shield(_take(call, parked, leg, inc))
    return PICKED


async def _take(call: Call, parked: Parked, leg: CalleeLeg, inc: IncomingRequest) -> None:
    """Answer the taker, stop the music and bridge the customer to it."""
    engine, caller_media = call.host.engine, call.caller.media_id
    assert caller_media is not None  # find_parked: the caller is answered
    await call.publish(CallRinging, leg_id=leg.leg_id, target=leg.target.target, at=call.now())
    music = False
    try:
        ours = await picker_sdp(engine, leg, inc)
        with contextlib.suppress(MediaError):
            await engine.stop_playback(caller_media)
            music = True
        await engine.bridge(caller_media, leg.media_id)
    except (MediaError, SipError, ValueError) as exc:
        # The customer stays parked (the parker's timer running): only the taker's leg
        # fails, in the journal too.
        log.warning("call %s: taking it from slot %d failed: %s", call.call_id, parked.slot, exc)
        call.winner = None
        call.parked = parked
        if music:
            await _music(call, caller_media)
        await taker_failed(call, leg, inc)
        return
    parked.timer.cancel()
    answer_taker(call, leg, inc, ours)
    await answered(call, leg)
