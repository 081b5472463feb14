"""The B2BUA: the SIP application that turns inbound INVITEs into bridged calls.

`B2bua` sits on a :class:`zvonar.sip.io.SipRunner` (as its application) and a
:class:`zvonar.media.engine.MediaEngine`. It answers what needs no call at once (100 Trying,
OPTIONS, stray requests) and routes everything else — UA events by transaction key or dialog,
media events by leg — to the :class:`zvonar.calls.call.Call` actor that owns it. Routing is
delegated to the resolver (see plan.py); events go to the bus (zvonar.calls.events).
Calls the PBX places itself (callbacks) start with :meth:`B2bua.originate` and are routed
the same way to their :class:`zvonar.calls.originate.OriginatedCall` actor; a supervisor
listening to a call (:meth:`B2bua.listen`) is a :class:`zvonar.calls.listen.Listener`, told
when the call it listens to is forgotten.

The runner delivers events synchronously; calls react asynchronously (media operations are
coroutines) and push their SIP output with `flush()` (the runner's `pump`). Nothing raises
into the runner: a call that fails ends itself with CallEnded(failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from zvonar.calls.attended import parse_replaces
from zvonar.calls.call import Call, Shutdown
from zvonar.calls.delays import PDD_BOUNDS, DelayHistogram
from zvonar.calls.events import TargetKind
from zvonar.calls.identity import asserted_identity, caller_identity
from zvonar.calls.legs import CallerLeg, LegState
from zvonar.calls.listen import Listener, watched
from zvonar.calls.originate import OriginatedCall
from zvonar.calls.origination import Origination
from zvonar.calls.overload import OverloadGuard
from zvonar.calls.park import (
    ParkedCall,
    Unpark,
    customer_of,
    find_parked,
    parked_calls,
    retrieve,
)
from zvonar.calls.pickup import FeatureResolver, pick_up
from zvonar.calls.plan import CallerAuth, InboundCall, Pickup, Plan, Reject, Resolver, RingTarget
from zvonar.calls.pull import Pull, pull
from zvonar.calls.signalling import response_to, uri_user
from zvonar.calls.transfer import TransferOrder, TransferRefusal, TransferRefused
from zvonar.core.bus import EventBus
from zvonar.core.clock import Clock, SystemClock
from zvonar.core.eager import start_eager
from zvonar.media.engine import MediaEngine, MediaEvent
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.message import SipRequest
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import (
    AckReceived,
    AckTimeout,
    CancelRequested,
    IncomingRequest,
    RequestFailed,
    ResponseIn,
    SessionExpired,
    UaEvent,
    UserAgent,
)

__all__ = ["B2bua", "CallActor", "HoldMusicFor", "InviteGate", "RecordingPathFor"]

log = logging.getLogger(__name__)

Headers = tuple[tuple[str, str], ...]
K = TypeVar("K")
RecordingPathFor = Callable[[uuid.UUID, str, datetime], Path]
HoldMusicFor = Callable[[uuid.UUID], Path]  # an account's hold music
InviteGate = Callable[[IncomingRequest, float], CallerAuth | None]
"""Who sent a new INVITE (trunk, digest-authenticated phone, anyone); None once the gate
answered it itself (407 challenge, 403). Synchronous: the UA core asks it on receipt."""


class CallActor(Protocol):
    """What the routing tables hold: an inbound :class:`Call` or an :class:`OriginatedCall`."""

    call_id: str

    def put(self, item: UaEvent) -> None: ...

    def media_event(self, event: MediaEvent) -> None: ...


class B2bua:
    """The call layer over one SIP runner and one media engine.

    ``resolver``: the PBX's routing (plan.py; a :class:`Pickup` goes to pickup.py).
    ``gate``: authenticates new INVITEs (the PBX's pbx/invite_auth.py); without it every
    INVITE goes to the resolver with ``auth`` None. ``recording_path``: where a recorded
    call's WAV goes (``JournalService.recording_path_for``); without it nothing is recorded.
    """

    def __init__(
        self,
        runner: SipRunner,
        engine: MediaEngine,
        bus: EventBus,
        resolver: FeatureResolver,
        *,
        recording_path: RecordingPathFor | None = None,
        clock: Clock | None = None,
        resolve_timeout: float = 5.0,
        gate: InviteGate | None = None,
        overload: OverloadGuard | None = None,
        hold_music: HoldMusicFor | None = None,
    ) -> None:
        self.runner = runner
        # What a caller hears while the other side holds them (call.py); None: silence.
        self.hold_music = hold_music
        self.post_dial_delay = DelayHistogram(PDD_BOUNDS)  # waves.py observes, /metrics shows
        self.overload = overload  # None: every INVITE starts a call
        self.ua: UserAgent = runner.ua
        self.engine = engine
        self.bus = bus
        self.routing = resolver
        # What the calls ask (call.py, transfer.py): routing with the features dispatched.
        self.resolver: Resolver = self._resolve
        self.recording_path = recording_path
        self.clock: Clock = clock or SystemClock()
        self.resolve_timeout = resolve_timeout
        self.gate = gate
        self.calls: dict[str, Call] = {}
        self.originated: dict[str, OriginatedCall] = {}
        self.listeners: dict[str, Listener] = {}
        self._by_key: dict[TransactionKey, CallActor] = {}
        self._by_dialog: dict[tuple[str, str], CallActor] = {}  # (SIP Call-ID, our tag)
        self._by_media: dict[str, CallActor] = {}
        # What each actor was tracked under, so forget() is O(own entries), not a scan of
        # every table (tens of thousands of entries at a few hundred calls/s).
        self._owned: dict[int, list[tuple[dict[object, CallActor], object]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._unsubscribe: Callable[[], None] | None = None
        runner.app = self

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.engine.start()
        if self._unsubscribe is None:
            self._unsubscribe = self.engine.subscribe(self._on_media)

    async def close(self, within: float = 5.0) -> None:
        """End every call (BYE/CANCEL/final responses, CallEnded) and detach from the engine."""
        for call in list(self.calls.values()):
            call.put(Shutdown())
        for placed in list(self.originated.values()):
            placed.shutdown()
        for listener in list(self.listeners.values()):
            listener.shutdown()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_idle(), within)
        for task in list(self._tasks):
            task.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def wait_idle(self) -> None:
        """Until no call is in progress."""
        await self._idle.wait()

    # -- helpers for calls --------------------------------------------------------------------

    def now(self) -> float:
        return self.runner.loop.time()

    def flush(self) -> None:
        """Deliver what the calls queued in the UA core (the runner's pump)."""
        self.runner.pump()

    def _track(self, table: dict[K, CallActor], key: K, call: CallActor) -> None:
        table[key] = call
        owned = self._owned.get(id(call))
        if owned is None:
            owned = self._owned[id(call)] = []
        owned.append((table, key))  # type: ignore[arg-type]

    def track_key(self, key: TransactionKey, call: CallActor) -> None:
        self._track(self._by_key, key, call)

    def track_dialog(self, sip_call_id: str, local_tag: str, call: CallActor) -> None:
        self._track(self._by_dialog, (sip_call_id, local_tag), call)

    def track_media(self, media_id: str, call: CallActor) -> None:
        self._track(self._by_media, media_id, call)

    def dialog_owner(self, sip_call_id: str, local_tag: str) -> CallActor | None:
        """The call that owns our side of a dialog (an attended transfer's Replaces)."""
        return self._by_dialog.get((sip_call_id, local_tag))

    def tracks_media(self, media_id: str) -> bool:
        return media_id in self._by_media

    def untrack_media(self, media_id: str) -> bool:
        """Forget a media leg; False if it was not (or no longer) tracked."""
        return self._by_media.pop(media_id, None) is not None

    def forget(self, call: CallActor) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        if self.originated.get(call.call_id) is call:
            del self.originated[call.call_id]
        for table, key in self._owned.pop(id(call), ()):
            if table.get(key) is call:
                del table[key]
        if self.listeners:  # (usually none: no cost per call)
            if self.listeners.get(call.call_id) is call:
                del self.listeners[call.call_id]
            for listener in list(self.listeners.values()):
                listener.watched_ended(call.call_id)
        if not self.calls and not self.originated and not self.listeners:
            self._idle.set()

    async def transfer(self, account_id: uuid.UUID, call_id: str, dialed: str) -> None:
        """Blind-transfer the answered call ``call_id`` of ``account_id`` to ``dialed`` (an
        extension or a number, as a REFER would name it); returns once the target rings, or
        raises :class:`TransferRefused`."""
        call = self.calls.get(call_id)
        if call is None or call.account_id != account_id or call.done:
            raise TransferRefused(TransferRefusal.unknown_call, f"no call {call_id} in progress")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        call.put(TransferOrder(dialed, done))
        try:  # the call may end before it reads the order: then nobody answers the future
            await asyncio.wait_for(asyncio.shield(done), self.resolve_timeout + 2.0)
        except TimeoutError:
            raise TransferRefused(
                TransferRefusal.unknown_call, f"call {call_id} ended before the transfer"
            ) from None

    # -- calls we place -------------------------------------------------------------------------

    async def originate(self, spec: Origination) -> OriginatedCall:
        """Place ``spec`` (side A, then B; see originate.py); returns at once. Await
        ``call.result`` for the outcome, ``call.ended`` for the end; ``call.cancel()``."""
        call_id = spec.call_id or f"c{secrets.token_hex(8)}"
        if call_id in self.calls or call_id in self.originated:
            raise ValueError(f"call id {call_id} is in use")
        call = OriginatedCall(self, spec, call_id)
        self.originated[call_id] = call
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(call.run(), name=f"call {call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call

    async def listen(
        self,
        account_id: uuid.UUID,
        call_id: str,
        targets: tuple[RingTarget, ...],
        *,
        ring_seconds: float = 30.0,
    ) -> Listener:
        """Ring ``targets`` (a supervisor's phones) and let whoever answers hear the answered
        call ``call_id`` silently (listen.py); returns at once, or raises ListenRefused."""
        listener_id = f"l{secrets.token_hex(8)}"
        listening = watched(self, account_id, call_id)
        listener = Listener(self, account_id, listener_id, listening, targets, ring_seconds)
        self.listeners[listener_id] = listener
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(listener.run(), name=f"listen {call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return listener

    # -- SIP events (synchronous, from the runner) -------------------------------------------

    def handle_event(self, event: UaEvent, now: float) -> None:
        try:
            self._route(event, now)
        except Exception:
            log.exception("B2BUA failed to route %s", type(event).__name__)

    def _route(self, event: UaEvent, now: float) -> None:
        if isinstance(event, IncomingRequest):
            self._incoming(event, now)
        elif isinstance(event, AckReceived):
            call = self._dialog_call(event.dialog)
            # Only the caller's dialog expects an ACK from its peer; a picked-up call's
            # callee leg (pickup.py) is a UAS dialog too, and its ACK matters only when it
            # answers the offer our 200 made (a picker's INVITE without SDP).
            # Originated calls have no UAS dialog at all.
            tag = _local_tag(event.dialog)
            if isinstance(call, Call) and (
                tag == call.caller.local_tag or call.offered_fork(tag) is not None
            ):
                call.put(event)
        elif isinstance(event, CancelRequested | RequestFailed):
            call = self._by_key.get(event.key)
            if call is not None:
                call.put(event)
        elif isinstance(event, ResponseIn):
            call = self._by_key.get(event.key) if event.key is not None else None
            if call is not None:
                call.put(event)
            else:
                self._stray_response(event, now)
        elif isinstance(event, AckTimeout):
            call = self._by_dialog.get((event.response.call_id, event.response.to.tag or ""))
            if call is not None:
                call.put(event)
        elif isinstance(event, SessionExpired):
            call = self._dialog_call(event.dialog)
            if call is not None:
                call.put(event)

    def _dialog_call(self, dialog: object) -> CallActor | None:
        dialog_id = getattr(dialog, "id", None)
        if dialog_id is None:
            return None
        return self._by_dialog.get((dialog_id.call_id, dialog_id.local_tag))

    def _incoming(self, inc: IncomingRequest, now: float) -> None:
        req = inc.request
        if inc.dialog is not None:
            call = self._dialog_call(inc.dialog)
            if call is not None:
                call.put(inc)
            else:  # a dialog the core still knows but no call owns (§12.2.2)
                self.ua.reply(inc, 481, now)
        elif req.method == "INVITE" and req.to.tag is None:
            self._new_call(inc, now)
        elif req.method == "OPTIONS":
            headers: tuple[tuple[str, str], ...] = (("Allow", self.ua.allow_header),)
            if self.ua.allow_events:
                headers += (("Allow-Events", ", ".join(self.ua.allow_events)),)
            self.ua.reply(inc, 200, now, headers)
        else:
            self.ua.reply(inc, 481 if req.to.tag else 404, now)

    def _new_call(self, inc: IncomingRequest, now: float) -> None:
        req: SipRequest = inc.request
        guard = self.overload
        if guard is not None and not guard.admit(len(self.calls)):
            # Before any other work (digest, routing): shedding must cost next to nothing.
            self.ua.reply(inc, 503, now, (("Retry-After", str(guard.retry_after)),))
            return
        auth: CallerAuth | None = None
        if self.gate is not None:
            auth = self.gate(inc, now)
            if auth is None:  # challenged or refused: no call
                return
        picks: uuid.UUID | None = None
        pulls: str | None = None
        replaces = req.header("Replaces")
        if replaces is not None:
            named = self._replaced(replaces, auth)
            if named is None:  # RFC 3891 §3: no dialog of ours to take over
                self.ua.reply(inc, 481, now, reason="Call/Transaction Does Not Exist")
                return
            picks, pulls = named
        call_id = f"c{secrets.token_hex(8)}"
        caller = CallerLeg(
            leg_id=f"{call_id}.a",
            invite=inc,
            flow=inc.flow,
            local_tag=self.ua.token(),
            sip_call_id=req.call_id,
            remote_tag=req.from_.tag or "",
        )
        # §8.2.6.1 / §17.2.1: a 100 at once, so the caller stops retransmitting while we route.
        self.ua.respond(inc, response_to(req, 100, caller.local_tag), now)
        who = caller_identity(req, trusted=False)
        asserted = None
        if auth is not None and auth.trunk:  # it stands if the number is a vouched account's
            asserted = asserted_identity(req)
            if asserted == who:
                asserted = None
        facts = InboundCall(
            call_id=call_id,
            dialed=uri_user(req.uri),
            caller=who.user,
            caller_display=who.display,
            from_uri=who.uri,
            to_uri=str(req.to.uri),
            source=inc.flow,
            started_at=self.clock.now(),
            auth=auth,
            asserted=asserted,
            picks=picks,
            pulls=pulls,
        )
        call = Call(self, facts, caller)
        call.invited_at = now
        self.calls[call_id] = call
        self.track_key(inc.key, call)
        self.track_dialog(req.call_id, caller.local_tag, call)
        self._idle.clear()
        # Its first step (resolve, ring the first wave: the INVITE out) runs now, not after
        # what the loop has queued: the post-dial delay is the call's own work (core/eager.py).
        task = start_eager(asyncio.get_running_loop(), call.run(), name=f"call {call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _replaced(self, value: str, auth: CallerAuth | None) -> tuple[uuid.UUID, str | None] | None:
        """The employee whose fork ``value`` (a Replaces header) names, when a phone of that
        call's account sends it, and, when it is the call's answered leg (a pull) rather than
        a still-ringing one (a pickup), the call's id; else None. The phone may write our tag as
        either tag: it copied them from a BLF NOTIFY (pbx/blf.py)."""
        replaces = parse_replaces(value)
        if replaces is None or auth is None or auth.account_id is None:
            return None
        for tag in (replaces.from_tag, replaces.to_tag):
            call = self._by_dialog.get((replaces.call_id, tag))
            if not isinstance(call, Call) or call.account_id != auth.account_id:
                continue
            for fork in call.forks.values():
                target = fork.target.target
                who = target.target_id
                if fork.sip_call_id != replaces.call_id or target.kind is not TargetKind.employee:
                    continue
                if who is None:  # an employee target always names one; typing cannot tell
                    continue
                if fork.pending:
                    return who, None
                if fork is call.winner and fork.state is LegState.CONFIRMED:
                    return who, call.call_id
        return None

    def fork_ids(self, call_id: str, leg_id: str) -> tuple[str, str, str | None] | None:
        """A fork's SIP dialog: (its Call-ID, our tag, the phone's tag once it sent one); None
        when there is no such fork (pbx/blf.py shows it to BLF keys, for Replaces)."""
        call = self.calls.get(call_id)
        fork = call.forks.get(leg_id) if call is not None else None
        if fork is None:
            return None
        theirs = fork.dialog.id.remote_tag if fork.dialog is not None else fork.early_tag
        return fork.sip_call_id, fork.local_tag, theirs

    def parked_in(self, account_id: uuid.UUID, slot: int) -> tuple[str, str] | None:
        """The call waiting in the account's park slot, also one being parked there right
        now: (its id, its caller); None when the slot is free (pbx/blf.py lights park keys)."""
        call = find_parked(self.calls.values(), account_id, slot, settled=False)
        return None if call is None else (call.call_id, customer_of(call))

    def parked(self, account_id: uuid.UUID) -> list[ParkedCall]:
        """The account's parked calls, by slot (the live view's parking lot)."""
        return parked_calls(self.calls.values(), account_id)

    async def _resolve(self, facts: InboundCall) -> Plan | Reject:
        """The routing's answer for a call; a feature (directed pickup) is carried out here
        and the call that dialed it gets what ends it (see pickup.py)."""
        outcome = await self.routing(facts)
        if isinstance(outcome, Pull):
            return await pull(self, facts, outcome)
        if isinstance(outcome, Unpark):
            return await retrieve(self, facts, outcome)
        if isinstance(outcome, Pickup):
            return await pick_up(self, facts, outcome)
        return outcome

    def _stray_response(self, event: ResponseIn, now: float) -> None:
        """A 2xx for an INVITE no call owns any more (it crossed our CANCEL after the call
        ended): ACK it and hang up at once (§9.1, §13.2.2.4)."""
        resp, dialog, request = event.response, event.dialog, event.request
        if not (200 <= resp.status < 300 and resp.cseq.method == "INVITE"):
            return
        if dialog is None or request is None:
            return
        self.ua.send_ack(dialog, request, event.flow)
        bye = self.ua.create_request(dialog, "BYE", event.flow)
        self.ua.send_request(bye, event.flow, now)
        self.ua.forget_dialog(dialog)

    # -- media events -------------------------------------------------------------------------

    def _on_media(self, event: MediaEvent) -> None:
        call = self._by_media.get(event.leg_id)
        if call is not None:
            call.media_event(event)


def _local_tag(dialog: object) -> str | None:
    dialog_id = getattr(dialog, "id", None)
    return getattr(dialog_id, "local_tag", None)
