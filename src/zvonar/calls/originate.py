"""Calls the PBX places itself (callbacks): ring side A first, then side B, and bridge them.

Side A (agents, employees) is rung wave after wave like an inbound call's targets; once one
answers, the others are CANCELled and side B (the customer, usually through a trunk) is rung
with ``then.from_user`` as the caller ID. A hears our ringback while B rings, and B's early
media instead once B's 18x carries SDP (a carrier's ringback, "the subscriber is unavailable":
early.py's gateway model, over the same pair of engine legs). When B answers, the two legs are
bridged; either side's BYE ends both.

Media: every A fork has a *pair* in one engine call (A's endpoint and the endpoint B will
use), as legs.py explains for inbound forks: rtpengine bridges only legs allocated together.
A's endpoint is opened with the fork; B's only once that fork answered, for B's INVITE, so
the forks that lose hold one endpoint each, not two.

Events (the journal gets one row, direction ``callback``, with both sides' legs): CallStarted,
CallRinging per leg, LegEnded, CallRecorded, CallEnded. The call counts as answered when the
customer answers: then CallAnswered is published for B's leg and for A's (with A's own answer
time), ``by`` being the employee on side A. An agent who answered a callback the customer did
not take is journaled as a leg that ended ``completed`` without an answer time, so the journal
does not call it answered. Hangup sides read from the customer's view: B is the caller, A the
callee.

:class:`OriginatedCall` is an actor like :class:`~zvonar.calls.call.Call`: one task, one queue
of UA events (routed by the B2BUA by transaction key and dialog), media events and timers.
Nothing raises out of it; ``result`` resolves as soon as the outcome is known (``connected``
when B answers, else when the call ends) and ``ended`` when the last leg is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from zvonar.calls.early import unwatched
from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRecorded,
    CallRinging,
    CallStarted,
    Disposition,
    HangupSide,
    LegEnded,
    LegEndReason,
    TargetKind,
)
from zvonar.calls.fork import WaveTracker, disposition_for, end_reason_for_status
from zvonar.calls.in_dialog import (
    answer_challenge,
    answer_reinvite,
    hang_up,
    invite,
    is_offer,
    release_media,
    reply,
)
from zvonar.calls.legs import LegState
from zvonar.calls.originated_legs import (
    OriginatedLeg,
    OriginationInput,
    RingTimeout,
    Stop,
    new_leg,
    safe_user,
)
from zvonar.calls.origination import Origination, OriginationOutcome
from zvonar.calls.plan import RingTarget
from zvonar.calls.recording import Recording
from zvonar.calls.sdp_bridge import parse_body, remote_media
from zvonar.calls.tones import ringback_path
from zvonar.media.engine import (
    MediaEvent,
    MediaTimeout,
    RecordingFinished,
)
from zvonar.media.errors import MediaError
from zvonar.sip.body import sdp_body
from zvonar.sip.dialog import Dialog
from zvonar.sip.errors import SipError
from zvonar.sip.ua import IncomingRequest, RequestFailed, ResponseIn, SessionExpired

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua

__all__ = ["OriginatedCall"]

log = logging.getLogger(__name__)


class OriginatedCall:
    """See the module docstring. Built and run by :meth:`B2bua.originate`."""

    def __init__(self, host: B2bua, spec: Origination, call_id: str) -> None:
        loop = asyncio.get_running_loop()
        self.host = host
        self.spec = spec
        self.call_id = call_id
        self.account_id = spec.account_id
        self.result: asyncio.Future[OriginationOutcome] = loop.create_future()
        self.ended: asyncio.Future[Disposition] = loop.create_future()
        self.started_at = host.clock.now()
        self.queue: asyncio.Queue[OriginationInput] = asyncio.Queue()
        self.forks: dict[str, OriginatedLeg] = {}
        self.wave = -1
        self.tracker = WaveTracker(())
        self.reasons: list[LegEndReason] = []
        self.agent: OriginatedLeg | None = None  # side A's winner
        self.customer: OriginatedLeg | None = None  # side B
        self.connected = False
        self.done = False
        self.timer: asyncio.TimerHandle | None = None
        self.recording = Recording()

    # -- input ----------------------------------------------------------------------------------

    def put(self, item: OriginationInput) -> None:
        if not self.done:
            self.queue.put_nowait(item)

    def media_event(self, event: MediaEvent) -> None:
        if isinstance(event, RecordingFinished):
            self.recording.finished(event)
            return
        self.put(event)

    def cancel(self) -> None:
        """Stop ringing (``cancelled``); a connected call is hung up on both sides."""
        self.put(Stop(OriginationOutcome.cancelled))

    def shutdown(self) -> None:
        self.put(Stop(OriginationOutcome.failed))

    # -- the actor ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._publish(
                CallStarted,
                direction=self.spec.direction,
                caller=self.spec.caller[:64],
                dialed=(self.spec.dialed or "callback")[:64],
                started_at=self.started_at,
                tracking=dict(self.spec.tracking),
            )
            await self._next_wave()
            while not self.done:
                await self._handle(await self.queue.get())
        except asyncio.CancelledError:
            await self._abort()
            raise
        except Exception:
            log.exception("originated call %s failed", self.call_id)
            await self._abort()
        finally:
            self.host.forget(self)
            self._settle(OriginationOutcome.failed, Disposition.failed)

    async def _abort(self) -> None:
        with contextlib.suppress(Exception):
            await self._finish(OriginationOutcome.failed, Disposition.failed, HangupSide.system)

    def _settle(self, outcome: OriginationOutcome, disposition: Disposition) -> None:
        if not self.result.done():
            self.result.set_result(outcome)
        if self.done and not self.ended.done():
            self.ended.set_result(disposition)

    async def _handle(self, item: OriginationInput) -> None:
        if isinstance(item, ResponseIn):
            await self._response(item)
        elif isinstance(item, RequestFailed):
            leg = self._leg_by_key(item.key)
            if leg is not None and item.request is leg.request:
                reason = LegEndReason.no_answer if item.status == 408 else LegEndReason.failed
                await self._leg_failed(leg, reason)
        elif isinstance(item, IncomingRequest):
            await self._request(item)
        elif isinstance(item, RingTimeout):
            await self._timeout(item.wave)
        elif isinstance(item, Stop):
            if self.connected:
                await self._finish(item.outcome, Disposition.answered, HangupSide.system)
            else:
                disposition = (
                    Disposition.abandoned
                    if item.outcome is OriginationOutcome.cancelled
                    else Disposition.failed
                )
                await self._finish(item.outcome, disposition, HangupSide.system)
        elif isinstance(item, MediaTimeout | SessionExpired):
            if isinstance(item, MediaTimeout):
                log.info(
                    "call %s: no RTP on %s for %.0f s", self.call_id, item.leg_id, item.seconds
                )
            else:
                log.info("call %s: session timer (%d s) expired", self.call_id, item.interval)
            await self._finish(
                OriginationOutcome.failed,
                Disposition.answered if self.connected else Disposition.failed,
                HangupSide.system,
            )

    def _legs(self) -> list[OriginatedLeg]:
        legs = list(self.forks.values())
        return [*legs, self.customer] if self.customer is not None else legs

    def _leg_by_key(self, key: object) -> OriginatedLeg | None:
        return next((leg for leg in self._legs() if leg.invite_key == key), None)

    # -- side A: waves of forks -----------------------------------------------------------------

    async def _next_wave(self) -> None:
        waves = self.spec.first
        while not self.done:
            self.wave += 1
            if self.wave >= len(waves):
                disposition = disposition_for(self.reasons) if self.reasons else Disposition.failed
                outcome = (
                    OriginationOutcome.first_no_answer
                    if self.reasons and disposition is not Disposition.failed
                    else OriginationOutcome.failed
                )
                await self._finish(outcome, disposition, HangupSide.system)
                return
            wave = waves[self.wave]
            ids = [f"{self.call_id}.a{self.wave}t{i}" for i in range(len(wave.targets))]
            self.tracker = WaveTracker(ids)
            for leg_id, target in zip(ids, wave.targets, strict=True):
                await self._start_fork(leg_id, target)
            if not self.tracker.over:
                self._arm(wave.timeout, RingTimeout(self.wave))
                return

    async def _start_fork(self, leg_id: str, target: RingTarget) -> None:
        engine = self.host.engine
        engine_call = f"{self.call_id}.{leg_id.rsplit('.', 1)[-1]}"
        media = leg_id
        try:
            endpoint = await engine.allocate(engine_call, media)
            self.host.track_media(media, self)
            leg = new_leg(self.host.ua, leg_id, self.wave, target, media, endpoint)
            self.forks[leg_id] = leg
            from_user = target.from_user or safe_user(self.spec.caller) or "anonymous"
            self._invite(leg, from_user, target.from_display)
        except (MediaError, SipError, ValueError) as exc:
            log.warning("call %s: cannot ring %s: %s", self.call_id, target.uri, exc)
            await release_media(self.host, self.call_id, media)
            if self.tracker.ended(leg_id, LegEndReason.failed):
                self.reasons.append(LegEndReason.failed)
                at = self._now()  # its row shows whom we tried, though it never rang
                await self._publish(CallRinging, leg_id=leg_id, target=target.target, at=at)
                await self._publish(LegEnded, leg_id=leg_id, reason=LegEndReason.failed, at=at)

    def _invite(self, leg: OriginatedLeg, from_user: str, from_display: str | None) -> None:
        invite(self.host, self, leg, from_user, from_display)

    async def _timeout(self, wave: int) -> None:
        if self.done:
            return
        if wave < 0:  # B rang out
            customer = self.customer
            if customer is not None and customer.state is LegState.INVITING:
                self._hangup(customer)  # CANCEL it
                await self._leg_failed(customer, LegEndReason.no_answer)
            return
        if wave != self.wave or self.agent is not None:
            return
        for leg_id in self.tracker.live:
            await self._stop_fork(self.forks[leg_id], LegEndReason.no_answer)
        await self._next_wave()

    async def _leg_ended(self, leg: OriginatedLeg, reason: LegEndReason) -> None:
        """LegEnded; first CallRinging if it never rang (refused at once, never answered our
        INVITE), so its journal row still shows whom we tried."""
        if not leg.rang:
            leg.rang = True
            await self._publish(
                CallRinging, leg_id=leg.leg_id, target=leg.target.target, at=self._now()
            )
        await self._publish(LegEnded, leg_id=leg.leg_id, reason=reason, at=self._now())

    async def _stop_fork(
        self, leg: OriginatedLeg, reason: LegEndReason, *, elsewhere: bool = False
    ) -> None:
        """We end a ringing A fork (another answered — ``elsewhere`` —, its wave timed out,
        the call ends)."""
        if leg.wave == self.wave and self.tracker.ended(leg.leg_id, reason):
            self.reasons.append(reason)
            leg.reported = True
            await self._leg_ended(leg, reason)
        hang_up(self.host, leg, elsewhere=elsewhere)
        await release_media(self.host, self.call_id, leg.media_id, leg.peer_media_id)

    # -- responses ------------------------------------------------------------------------------

    async def _response(self, event: ResponseIn) -> None:
        leg = self._leg_by_key(event.key)
        resp = event.response
        if leg is None or resp.cseq.method != "INVITE" or event.request is not leg.request:
            return
        if resp.status < 200:
            if resp.status > 100 and leg.state is LegState.INVITING and not leg.rang:
                await self._ringing(leg)
            early = sdp_body(resp)
            if leg is self.customer and early and leg.state is LegState.INVITING:
                await self._early_media(leg, early)
        elif resp.status < 300:
            await self._answered(leg, event)
        elif leg.state is LegState.INVITING:
            if answer_challenge(self.host, self, leg, resp):
                return  # sent again with the carrier's credentials: still ringing
            if await self._plain_again(leg, resp.status):
                return
            await self._leg_failed(leg, end_reason_for_status(resp.status))

    async def _plain_again(self, leg: OriginatedLeg, status: int) -> bool:
        """An A fork's phone refused our SRTP offer (``RingTarget.plain``): it is rung again at
        once with plain RTP, in the same wave, as leg ``<id>p`` (True). The refused attempt keeps
        its journal leg."""
        plain = leg.target.plain(status)
        if plain is None or leg is self.customer or leg.wave != self.wave or self.agent is not None:
            return False
        new_id = f"{leg.leg_id}p"
        if not self.tracker.forwarded(leg.leg_id, [new_id]):
            return False
        leg.state = LegState.ENDED
        leg.reported = True
        if leg.dialog is not None:
            self.host.ua.forget_dialog(leg.dialog)
        await release_media(self.host, self.call_id, leg.media_id, leg.peer_media_id)
        await self._leg_ended(leg, end_reason_for_status(status))
        log.info("call %s: %s refused SRTP, rung again with RTP", self.call_id, leg.leg_id)
        await self._start_fork(new_id, plain)
        if self.tracker.over and self.agent is None:  # it could not even be tried
            self._disarm()
            await self._next_wave()
        return True

    async def _ringing(self, leg: OriginatedLeg) -> None:
        if leg is not self.customer and (
            leg.wave != self.wave or not self.tracker.ringing(leg.leg_id)
        ):
            return
        leg.rang = True
        await self._publish(
            CallRinging, leg_id=leg.leg_id, target=leg.target.target, at=self._now()
        )

    async def _answered(self, leg: OriginatedLeg, event: ResponseIn) -> None:
        dialog = event.dialog
        if dialog is None or leg.request is None:
            return
        self.host.ua.send_ack(dialog, leg.request, leg.flow)
        leg.dialog = dialog
        is_customer = leg is self.customer
        late = leg.state is not LegState.INVITING or self.done
        if not is_customer:
            late = late or leg.wave != self.wave or self.agent is not None
        leg.state = LegState.CONFIRMED
        if late:  # a 2xx crossing our CANCEL (§9.1): end that dialog
            self._hangup(leg)
            return
        body = sdp_body(event.response)
        if not body.strip() and leg.early is not None:
            body = leg.early  # the 2xx should repeat its 183's answer (§13.2.1); some omit it
        try:
            remote = remote_media(leg.oa.receive_answer(parse_body(body)))
            await self.host.engine.configure(leg.media_id, remote)
        except MediaError as exc:
            log.info("call %s: unusable answer on %s: %s", self.call_id, leg.leg_id, exc)
            self._hangup(leg)
            await self._leg_failed(leg, LegEndReason.failed)
            return
        leg.answered_at = self._now()
        if is_customer:
            await self._connect(leg)
            return
        self.tracker.answered(leg.leg_id)
        self.agent = leg
        self._disarm()
        for other in list(self.forks.values()):
            if other is not leg and other.state is LegState.INVITING:
                await self._stop_fork(other, LegEndReason.cancelled, elsewhere=True)
        await self._call_customer(leg)

    async def _leg_failed(self, leg: OriginatedLeg, reason: LegEndReason) -> None:
        """A leg ended by itself (a final non-2xx, a transport failure, a ring timeout)."""
        leg.state = LegState.ENDED
        if leg.dialog is not None:
            self.host.ua.forget_dialog(leg.dialog)
        if leg is self.customer:
            leg.reported = True
            await self._leg_ended(leg, reason)
            if reason in (LegEndReason.busy, LegEndReason.rejected):
                outcome, disposition = OriginationOutcome.then_busy, Disposition.busy
            elif reason in (LegEndReason.no_answer, LegEndReason.cancelled):
                outcome, disposition = OriginationOutcome.then_no_answer, Disposition.missed
            else:
                outcome, disposition = OriginationOutcome.failed, Disposition.failed
            await self._finish(outcome, disposition, HangupSide.system)
            return
        if leg is self.agent:  # its answer was unusable
            await self._finish(OriginationOutcome.failed, Disposition.failed, HangupSide.system)
            return
        await release_media(self.host, self.call_id, leg.media_id, leg.peer_media_id)
        if leg.wave == self.wave and self.tracker.ended(leg.leg_id, reason):
            self.reasons.append(reason)
            leg.reported = True
            await self._leg_ended(leg, reason)
            if self.tracker.over and self.agent is None:
                self._disarm()
                await self._next_wave()

    # -- side B ---------------------------------------------------------------------------------

    async def _call_customer(self, agent: OriginatedLeg) -> None:
        then = self.spec.then
        peer_media = f"{agent.leg_id}.b"
        try:  # in A's engine call: the pair's two legs belong together
            peer_end = await self.host.engine.allocate(agent.endpoint.call_id, peer_media)
        except MediaError as exc:  # no descriptors left: B cannot be rung
            log.warning("call %s: no media for %s: %s", self.call_id, then.uri, exc)
            await self._finish(OriginationOutcome.failed, Disposition.failed, HangupSide.system)
            return
        self.host.track_media(peer_media, self)
        agent.peer_media_id, agent.peer_endpoint = peer_media, peer_end
        leg = new_leg(self.host.ua, f"{self.call_id}.b", -1, then, peer_media, peer_end)
        self.customer = leg
        from_user = then.from_user or safe_user(self.spec.dialed) or "anonymous"
        try:
            self._invite(leg, from_user, then.from_display)
        except (SipError, ValueError) as exc:
            log.warning("call %s: cannot ring %s: %s", self.call_id, then.uri, exc)
            await self._leg_failed(leg, LegEndReason.failed)
            return
        self._arm(self.spec.then_timeout, RingTimeout(-1))
        try:  # A answered and waits: ringing, not silence
            await self.host.engine.play(agent.media_id, ringback_path(), loop=True)
        except MediaError as exc:
            log.info("call %s: no ringback for %s: %s", self.call_id, agent.leg_id, exc)

    async def _early_media(self, customer: OriginatedLeg, body: bytes) -> None:
        """B's 18x carried SDP: A hears what B plays instead of our ringback."""
        agent, engine = self.agent, self.host.engine
        if agent is None or customer.early is not None or not body.strip():
            return
        try:
            remote = remote_media(customer.oa.preview_answer(parse_body(body)))
            await engine.configure(customer.media_id, unwatched(remote))
            with contextlib.suppress(MediaError):
                await engine.stop_playback(agent.media_id)
            await engine.bridge(agent.media_id, customer.media_id)
        except MediaError as exc:
            log.info("call %s: no early media from %s: %s", self.call_id, customer.leg_id, exc)
            return
        customer.early = body

    async def _connect(self, customer: OriginatedLeg) -> None:
        agent, engine = self.agent, self.host.engine
        assert agent is not None
        self._disarm()
        with contextlib.suppress(MediaError):
            await engine.stop_playback(agent.media_id)  # our ringback, if still playing
        await engine.bridge(agent.media_id, customer.media_id)
        self.connected = True
        target = agent.target.target
        by = target.target_id if target.kind in (TargetKind.employee, TargetKind.mobile) else None
        for leg in (customer, agent):
            if not leg.rang:  # answered at once (a 200 without 18x): still a journal leg
                leg.rang = True
                await self._publish(
                    CallRinging,
                    leg_id=leg.leg_id,
                    target=leg.target.target,
                    at=leg.answered_at or self._now(),
                )
        await self._publish(CallAnswered, leg_id=customer.leg_id, at=customer.answered_at, by=by)
        await self._publish(CallAnswered, leg_id=agent.leg_id, at=agent.answered_at, by=by)
        self._settle(OriginationOutcome.connected, Disposition.answered)
        where = self.host.recording_path
        if self.spec.record and where is not None:
            path = where(self.account_id, self.call_id, self.started_at)
            # The customer on the left channel, as the caller of an inbound call.
            await self.recording.start(engine, customer.media_id, path)

    # -- requests from either side --------------------------------------------------------------

    async def _request(self, inc: IncomingRequest) -> None:
        dialog = inc.dialog
        if dialog is None:
            return
        leg = next((x for x in self._legs() if x.local_tag == dialog.id.local_tag), None)
        method = inc.request.method
        if method == "BYE":
            self._reply(inc, dialog, 200)
            if leg is None:
                return
            leg.state = LegState.ENDED
            self.host.ua.forget_dialog(dialog)
            if leg is self.customer:
                await self._finish(
                    OriginationOutcome.connected, Disposition.answered, HangupSide.caller
                )
            elif leg is self.agent:
                # The agent gave up before the customer answered: side A did not hold.
                outcome = (
                    OriginationOutcome.connected
                    if self.connected
                    else OriginationOutcome.first_no_answer
                )
                disposition = Disposition.answered if self.connected else Disposition.abandoned
                await self._finish(outcome, disposition, HangupSide.callee)
        elif is_offer(inc):  # a re-INVITE, or an UPDATE with SDP
            await self._reinvite(inc, dialog, leg)
        elif method == "REFER":
            self._reply(inc, dialog, 501)
        else:
            self._reply(inc, dialog, 200)

    async def _reinvite(
        self, inc: IncomingRequest, dialog: Dialog, leg: OriginatedLeg | None
    ) -> None:
        if leg is None or leg.state is not LegState.CONFIRMED:
            reply(self.host, inc, dialog, 491)
            return
        await answer_reinvite(self.host, inc, dialog, leg.oa, leg.media_id)

    def _reply(self, inc: IncomingRequest, dialog: Dialog, status: int, body: bytes = b"") -> None:
        reply(self.host, inc, dialog, status, body)

    # -- the end --------------------------------------------------------------------------------

    def _hangup(self, leg: OriginatedLeg) -> None:
        hang_up(self.host, leg)

    async def _finish(
        self, outcome: OriginationOutcome, disposition: Disposition, side: HangupSide
    ) -> None:
        if self.done:
            return
        self.done = True
        self._disarm()
        for leg in self._legs():
            answered = leg is self.agent or (leg is self.customer and self.connected)
            if leg.state is not LegState.ENDED:
                self._hangup(leg)
            if not leg.reported:
                leg.reported = True
                reason = LegEndReason.completed if answered else LegEndReason.cancelled
                await self._leg_ended(leg, reason)
        recorded = await self.recording.stop(self.host.engine, self.call_id)
        for leg in self.forks.values():
            await release_media(self.host, self.call_id, leg.media_id, leg.peer_media_id)
        if recorded is not None:
            await self._publish(CallRecorded, path=str(recorded.path), duration=recorded.duration)
        await self._publish(
            CallEnded,
            disposition=disposition,
            ended_at=self._now(),
            hangup=side,
            scheme_path=self.spec.scheme_path,
        )
        self._settle(outcome, disposition)

    # -- helpers --------------------------------------------------------------------------------

    def _arm(self, seconds: float, item: RingTimeout) -> None:
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, self.put, item)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _now(self) -> datetime:
        return self.host.clock.now()

    async def _publish(self, kind: type[CallEvent], **fields: object) -> None:
        try:
            event = kind(account_id=self.account_id, call_id=self.call_id, **fields)  # type: ignore[arg-type]
            await self.host.bus.publish(event)
        except Exception:
            log.exception("call %s: cannot publish %s", self.call_id, kind.__name__)
