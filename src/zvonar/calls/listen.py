"""Silent listening: a supervisor's phone hears a live call, and the call never hears them.

:meth:`B2bua.listen <zvonar.calls.b2bua.B2bua.listen>` rings the supervisor's phones (all at
once) from the PBX as a call of its own, a :class:`Listener`. Once a phone answers, its media
leg becomes a *monitor* of the live call (:meth:`~zvonar.media.engine.MediaEngine.monitor`):
it gets both directions mixed, and what it sends goes nowhere. Which leg is listened to:

* an inbound call: the caller's media leg, once an agent answered (``was_answered``); the
  monitor follows whatever is bridged to that leg, so a transfer keeps the listener on;
* a call the PBX placed (a callback): the customer's leg, once the customer answered.

A call still ringing, or waiting in a queue with hold music, is not answered yet: refused
(:class:`ListenRefused`), as is a call of another account or none at all.

How it ends: the listened call ends (the B2BUA tells us when its actor is forgotten) → we
hang up the listener (CANCEL while ringing, BYE once answered); the listener hangs up, or
their phone stops sending RTP → only the listener ends, the call goes on untouched. Nobody
answering within ``ring_seconds`` ends it too.

The listener is an actor like :class:`~zvonar.calls.originate.OriginatedCall`: one task, one
queue of UA events (routed by the B2BUA by transaction key and dialog), media events and
timers. It publishes no call events: the journal records calls with customers, and listening
is not one of them (the log says who listened to which call). ``answered`` resolves when
listening starts (True) or cannot (False); ``ended`` with why it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zvonar.calls.in_dialog import answer_reinvite, hang_up, invite, is_offer, reply
from zvonar.calls.legs import LegState
from zvonar.calls.plan import RingTarget
from zvonar.calls.sdp_bridge import new_offer_answer, parse_body, remote_media
from zvonar.media.engine import LegEndpoint, MediaEvent, MediaTimeout, RecordingFinished
from zvonar.media.errors import MediaError
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.sip.body import sdp_body
from zvonar.sip.dialog import Dialog
from zvonar.sip.errors import SipError
from zvonar.sip.message import SipRequest
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import (
    Flow,
    IncomingRequest,
    RequestFailed,
    ResponseIn,
    SessionExpired,
    UaEvent,
)

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua

__all__ = ["ListenEnd", "ListenRefused", "Listener", "Refusal", "Watched", "watched"]

log = logging.getLogger(__name__)

_SAFE_USER = re.compile(r"\+?[0-9A-Za-z._-]{1,64}")
DISPLAY = "Listening"  # what the supervisor's phone shows with the caller's number


class Refusal(enum.StrEnum):
    unknown_call = "unknown_call"  # no such call in progress in the account
    not_answered = "not_answered"  # ringing, or waiting in a queue


class ListenRefused(Exception):
    """The call cannot be listened to (see :class:`Refusal`)."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ListenEnd(enum.StrEnum):
    call_ended = "call_ended"  # the listened call ended: we hung up the listener
    listener_hung_up = "listener_hung_up"  # the supervisor hung up (or their RTP stopped)
    no_answer = "no_answer"  # no phone answered (rang out, busy, declined, unreachable)
    failed = "failed"  # media could not be set up, or a failure on our side
    shutdown = "shutdown"  # the PBX stops


@dataclass(frozen=True)
class Watched:
    """The answered call to listen to: its media leg (with its bridged peer) and caller."""

    call_id: str
    media_id: str
    caller: str


def watched(host: B2bua, account_id: uuid.UUID, call_id: str) -> Watched:
    """The answered call ``call_id`` of ``account_id``, or :class:`ListenRefused`."""
    call = host.calls.get(call_id)
    if call is not None and call.account_id == account_id and not call.done:
        media = call.caller.media_id
        if not call.was_answered or media is None:
            raise ListenRefused(Refusal.not_answered, f"call {call_id} is not answered")
        return Watched(call_id, media, call.facts.caller)
    placed = host.originated.get(call_id)
    if placed is not None and placed.account_id == account_id and not placed.done:
        customer = placed.customer
        if not placed.connected or customer is None:
            raise ListenRefused(Refusal.not_answered, f"call {call_id} is not answered")
        return Watched(call_id, customer.media_id, placed.spec.caller)
    # None, another account's, or over (its actor is about to be forgotten).
    raise ListenRefused(Refusal.unknown_call, f"no call {call_id} in progress")


@dataclass(frozen=True)
class _Timeout:
    pass


@dataclass(frozen=True)
class _Stop:
    why: ListenEnd


ListenInput = UaEvent | MediaEvent | _Timeout | _Stop


@dataclass(eq=False)
class _Fork:
    """Our INVITE to one of the supervisor's phones and the engine leg its media lands on."""

    leg_id: str  # also the engine leg id
    target: RingTarget
    endpoint: LegEndpoint
    oa: OfferAnswer
    local_tag: str
    sip_call_id: str
    request: SipRequest | None = None
    invite_key: TransactionKey | None = None
    dialog: Dialog | None = None
    state: LegState = LegState.INVITING
    cancel_sent: bool = False

    @property
    def flow(self) -> Flow:
        return self.target.flow


class Listener:
    """See the module docstring. Built and run by :meth:`B2bua.listen`."""

    def __init__(
        self,
        host: B2bua,
        account_id: uuid.UUID,
        call_id: str,
        watching: Watched,
        targets: tuple[RingTarget, ...],
        ring_seconds: float,
    ) -> None:
        if not targets:
            raise ValueError("listening needs at least one phone to ring")
        if not ring_seconds > 0:
            raise ValueError("ring_seconds must be > 0")
        loop = asyncio.get_running_loop()
        self.host = host
        self.account_id = account_id
        self.call_id = call_id  # the listener's own id (B2BUA tables), not the listened call's
        self.watching = watching
        self.targets = targets
        self.ring_seconds = ring_seconds
        self.answered: asyncio.Future[bool] = loop.create_future()
        self.ended: asyncio.Future[ListenEnd] = loop.create_future()
        self.queue: asyncio.Queue[ListenInput] = asyncio.Queue()
        self.forks: list[_Fork] = []
        self.winner: _Fork | None = None
        self.done = False
        self.timer: asyncio.TimerHandle | None = None

    # -- input ----------------------------------------------------------------------------------

    def put(self, item: ListenInput) -> None:
        if not self.done:
            self.queue.put_nowait(item)

    def media_event(self, event: MediaEvent) -> None:
        if not isinstance(event, RecordingFinished):  # we record nothing
            self.put(event)

    def watched_ended(self, call_id: str) -> None:
        """The B2BUA forgot the actor of ``call_id`` (any call): ours → hang up."""
        if call_id == self.watching.call_id:
            self.put(_Stop(ListenEnd.call_ended))

    def shutdown(self) -> None:
        self.put(_Stop(ListenEnd.shutdown))

    # -- the actor ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._ring()
            while not self.done:
                await self._handle(await self.queue.get())
        except asyncio.CancelledError:
            await self._abort()
            raise
        except Exception:
            log.exception("listener %s failed", self.call_id)
            await self._abort()
        finally:
            self.host.forget(self)
            self._settle(ListenEnd.failed)

    async def _abort(self) -> None:
        with contextlib.suppress(Exception):
            await self._finish(ListenEnd.failed)

    def _settle(self, why: ListenEnd) -> None:
        if not self.answered.done():
            self.answered.set_result(False)
        if self.done and not self.ended.done():
            self.ended.set_result(why)

    async def _handle(self, item: ListenInput) -> None:
        if isinstance(item, ResponseIn):
            await self._response(item)
        elif isinstance(item, RequestFailed):
            fork = self._fork_by_key(item.key)
            if fork is not None and item.request is fork.request:
                await self._fork_failed(fork)
        elif isinstance(item, IncomingRequest):
            await self._request(item)
        elif isinstance(item, _Timeout):
            if self.winner is None:
                await self._finish(ListenEnd.no_answer)
        elif isinstance(item, _Stop):
            await self._finish(item.why)
        elif isinstance(item, SessionExpired):  # RFC 4028: the phone stopped refreshing
            await self._finish(ListenEnd.listener_hung_up)
        elif isinstance(item, MediaTimeout):
            winner = self.winner
            if winner is not None and item.leg_id == winner.leg_id:
                log.info(
                    "listener %s: no RTP from the phone for %.0f s", self.call_id, item.seconds
                )
                await self._finish(ListenEnd.listener_hung_up)

    def _fork_by_key(self, key: object) -> _Fork | None:
        return next((f for f in self.forks if f.invite_key == key), None)

    # -- ringing --------------------------------------------------------------------------------

    async def _ring(self) -> None:
        for i, target in enumerate(self.targets):
            await self._ring_one(f"{self.call_id}.s{i}", target)
        if not self._live():
            await self._finish(ListenEnd.no_answer)
            return
        self.timer = asyncio.get_running_loop().call_later(self.ring_seconds, self.put, _Timeout())

    async def _ring_one(self, leg_id: str, target: RingTarget) -> None:
        engine, ua = self.host.engine, self.host.ua
        caller = self.watching.caller
        from_user = caller if _SAFE_USER.fullmatch(caller) else "listen"
        try:
            endpoint = await engine.allocate(self.call_id, leg_id)
            self.host.track_media(leg_id, self)
            fork = _Fork(
                leg_id,
                target,
                endpoint,
                new_offer_answer(endpoint, secure=target.secure_media),
                ua.token(),
                f"{ua.token()}@zvonar",
            )
            self.forks.append(fork)
            self._invite(fork, from_user)
        except (MediaError, SipError, ValueError) as exc:
            log.warning("listener %s: cannot ring %s: %s", self.call_id, target.uri, exc)
            await self._release(leg_id)
            if self.forks and self.forks[-1].leg_id == leg_id:
                self.forks[-1].state = LegState.ENDED

    def _invite(self, fork: _Fork, from_user: str) -> None:
        invite(self.host, self, fork, from_user, DISPLAY)

    def _live(self) -> list[_Fork]:
        return [f for f in self.forks if f.state is LegState.INVITING]

    async def _response(self, event: ResponseIn) -> None:
        fork = self._fork_by_key(event.key)
        resp = event.response
        if fork is None or resp.cseq.method != "INVITE" or event.request is not fork.request:
            return
        if 200 <= resp.status < 300:
            await self._answered(fork, event)
        elif resp.status >= 300 and fork.state is LegState.INVITING:
            plain = fork.target.plain(resp.status)
            if plain is not None and self.winner is None and not self.done:
                # A phone without SRTP: again with plain RTP, before this fork's end is counted.
                await self._ring_one(f"{fork.leg_id}p", plain)
            await self._fork_failed(fork)

    async def _fork_failed(self, fork: _Fork) -> None:
        """A phone refused, was busy, rang out or could not be reached."""
        fork.state = LegState.ENDED
        if fork.dialog is not None:
            self.host.ua.forget_dialog(fork.dialog)
        await self._release(fork.leg_id)
        if fork is self.winner:  # its answer was unusable
            await self._finish(ListenEnd.failed)
        elif self.winner is None and not self._live():
            await self._finish(ListenEnd.no_answer)

    async def _answered(self, fork: _Fork, event: ResponseIn) -> None:
        dialog = event.dialog
        if dialog is None or fork.request is None:
            return
        self.host.ua.send_ack(dialog, fork.request, fork.flow)
        fork.dialog = dialog
        late = fork.state is not LegState.INVITING or self.winner is not None or self.done
        fork.state = LegState.CONFIRMED
        if late:  # a 2xx crossing our CANCEL (§9.1), or a second phone: end that dialog
            self._hangup(fork)
            await self._release(fork.leg_id)
            return
        self.winner = fork
        self._disarm()
        for other in self._live():
            self._hangup(other)
            await self._release(other.leg_id)
        engine = self.host.engine
        try:
            remote = remote_media(fork.oa.receive_answer(parse_body(sdp_body(event.response))))
            await engine.configure(fork.leg_id, remote)
            await engine.monitor(fork.leg_id, self.watching.media_id)
        except MediaError as exc:
            # An unusable answer, the call's media gone meanwhile, or an engine that cannot.
            log.warning("listener %s: cannot listen: %s", self.call_id, exc)
            await self._finish(ListenEnd.failed)
            return
        log.info(
            "listener %s: %s listens to call %s",
            self.call_id,
            fork.target.target.display,
            self.watching.call_id,
        )
        if not self.answered.done():
            self.answered.set_result(True)

    # -- requests from the phone ----------------------------------------------------------------

    async def _request(self, inc: IncomingRequest) -> None:
        dialog = inc.dialog
        if dialog is None:
            return
        fork = next((f for f in self.forks if f.local_tag == dialog.id.local_tag), None)
        method = inc.request.method
        if method == "BYE":
            self._reply(inc, dialog, 200)
            self.host.ua.forget_dialog(dialog)
            if fork is not None:
                fork.state = LegState.ENDED
                if fork is self.winner:
                    await self._finish(ListenEnd.listener_hung_up)
        elif is_offer(inc):  # a re-INVITE, or an UPDATE with SDP
            await self._reinvite(inc, dialog, fork)
        elif method == "REFER":
            self._reply(inc, dialog, 501)  # a listener has nobody to transfer
        else:
            self._reply(inc, dialog, 200)

    async def _reinvite(self, inc: IncomingRequest, dialog: Dialog, fork: _Fork | None) -> None:
        confirmed = fork is not None and fork is self.winner and fork.state is LegState.CONFIRMED
        if fork is None or not confirmed:
            reply(self.host, inc, dialog, 491)
            return
        await answer_reinvite(self.host, inc, dialog, fork.oa, fork.leg_id)

    def _reply(self, inc: IncomingRequest, dialog: Dialog, status: int, body: bytes = b"") -> None:
        reply(self.host, inc, dialog, status, body)

    # -- the end --------------------------------------------------------------------------------

    def _hangup(self, fork: _Fork) -> None:
        hang_up(self.host, fork)

    async def _finish(self, why: ListenEnd) -> None:
        if self.done:
            return
        self.done = True
        self._disarm()
        for fork in self.forks:
            if fork.state is not LegState.ENDED:
                self._hangup(fork)
        for fork in self.forks:
            await self._release(fork.leg_id)
        if self.winner is not None:
            log.info("listener %s: stopped (%s)", self.call_id, why.value)
        self._settle(why)

    async def _release(self, leg_id: str) -> None:
        if not self.host.untrack_media(leg_id):
            return
        try:
            await self.host.engine.release(leg_id)  # also ends its monitoring
        except MediaError as exc:
            log.debug("listener %s: release %s: %s", self.call_id, leg_id, exc)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
