"""One call of the B2BUA: an actor that owns the caller leg, the forks and the media.

Everything that concerns a call — UA events routed to it, media events of its legs, its
wave timer — goes into one queue and is handled in order by one task, so media operations
(coroutines) never interleave with another event of the same call. The decisions of
forking are pure (fork.py); SDP is ours on every dialog (sdp_bridge.py).

Life of an inbound call: resolve → CallStarted → check the offer (488) → waves of forks
(180 to the caller once, CallRinging per fork) → the first 2xx wins (ACK, CANCEL the
others, bridge, 200 to the caller, CallAnswered, recording) → BYE from either side (BYE the
other) → release media → CallRecorded, CallEnded. A failure anywhere ends the call cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from zvonar.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRecorded,
    CallRinging,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    LegEndReason,
)
from zvonar.calls.events import LegEnded as LegEndedEvent
from zvonar.calls.fork import WaveTracker, disposition_for, end_reason_for_status
from zvonar.calls.legs import CallDtmf, CalleeLeg, CallerLeg, LegState
from zvonar.calls.plan import InboundCall, Plan, Reject, RingTarget
from zvonar.calls.sdp_bridge import check_offer, new_offer_answer, parse_body, remote_media
from zvonar.calls.signalling import invite_request, response_to
from zvonar.media.engine import (
    DtmfReceived,
    MediaEngineError,
    MediaEvent,
    MediaTimeout,
    PlaybackFinished,
    RecordingFinished,
    RemoteMedia,
)
from zvonar.media.errors import MediaError
from zvonar.sip.dialog import Dialog, DialogId
from zvonar.sip.errors import SipError
from zvonar.sip.message import SipRequest, make_response
from zvonar.sip.ua import (
    AckReceived,
    AckTimeout,
    CancelRequested,
    IncomingRequest,
    RequestFailed,
    ResponseIn,
    UaEvent,
)

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua

__all__ = ["Call"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaveTimeout:
    wave: int


@dataclass(frozen=True)
class Shutdown:
    pass


CallInput = UaEvent | MediaEvent | WaveTimeout | Shutdown


class Call:
    """See the module docstring. Built and run by :class:`zvonar.calls.b2bua.B2bua`."""

    def __init__(self, host: B2bua, facts: InboundCall, caller: CallerLeg) -> None:
        self.host = host
        self.facts = facts
        self.call_id = facts.call_id
        self.caller = caller
        self.queue: asyncio.Queue[CallInput] = asyncio.Queue()
        self.plan: Plan | None = None
        self.account_id: uuid.UUID | None = None  # set once resolved
        self.forks: dict[str, CalleeLeg] = {}
        self.wave = -1
        self.tracker = WaveTracker(())
        self.reasons: list[LegEndReason] = []  # every unanswered fork's end, all waves
        self.winner: CalleeLeg | None = None
        self.recording_id: str | None = None
        self.recording_path: Path | None = None
        self.recording_done: asyncio.Future[RecordingFinished] | None = None
        self.prompt_media: str | None = None
        self.final: Reject | None = None
        self.done = False
        self._timer: asyncio.TimerHandle | None = None
        self._started_event = False
        self._final_disposition = Disposition.failed

    # -- input ----------------------------------------------------------------------------------

    def put(self, item: CallInput) -> None:
        if not self.done:
            self.queue.put_nowait(item)

    def media_event(self, event: MediaEvent) -> None:
        if isinstance(event, RecordingFinished):
            fut = self.recording_done
            if fut is not None and not fut.done():
                fut.set_result(event)
            return
        self.put(event)

    # -- the actor ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            if await self._begin():
                while not self.done:
                    await self._handle(await self.queue.get())
        except asyncio.CancelledError:
            await self._abort(HangupSide.system)
            raise
        except Exception:
            log.exception("call %s failed", self.call_id)
            await self._abort(HangupSide.system)
        finally:
            self.host.forget(self)

    async def _abort(self, side: HangupSide) -> None:
        """Best-effort end after a failure: every leg hung up, media released, CallEnded."""
        if self.done:
            return
        with contextlib.suppress(Exception):
            await self._finish(Disposition.failed, side, caller_status=500)

    async def _begin(self) -> bool:
        """Resolve, announce, check the offer and ring the first wave; False if it ended."""
        host = self.host
        try:
            outcome = await asyncio.wait_for(host.resolver(self.facts), host.resolve_timeout)
        except Exception:
            log.exception("resolver failed for call %s", self.call_id)
            outcome = Reject(500, "Server Internal Error")
        account_id = outcome.account_id
        if account_id is not None:
            self.account_id = account_id
            await self._started(outcome)
        if isinstance(outcome, Reject):
            self.final = outcome
            await self._give_up()
            return not self.done
        self.plan = outcome
        try:
            check_offer(self.caller.invite.request.body if self.caller.invite else b"")
        except MediaError as exc:
            await self._finish(Disposition.failed, HangupSide.system, caller_status=488)
            log.info("call %s: offer refused: %s", self.call_id, exc)
            return False
        self.final = outcome.final
        await self._next_wave()
        return not self.done

    async def _started(self, outcome: Plan | Reject) -> None:
        facts = self.facts
        plan = outcome if isinstance(outcome, Plan) else None
        self._started_event = True
        await self._publish(
            CallStarted,
            direction=plan.direction if plan else Direction.inbound,
            caller=facts.caller[:64],
            dialed=(facts.dialed or "unknown")[:64],
            started_at=facts.started_at,
            number_label=plan.number_label if plan else None,
            tracking=dict(plan.tracking) if plan else {},
        )

    async def _handle(self, item: CallInput) -> None:
        if isinstance(item, IncomingRequest):
            await self._request(item)
        elif isinstance(item, ResponseIn):
            await self._response(item)
        elif isinstance(item, RequestFailed):
            fork = self._fork_by_key(item.key)
            if fork is not None and item.request.method == "INVITE":
                reason = LegEndReason.no_answer if item.status == 408 else LegEndReason.failed
                await self._fork_over(fork, reason)
        elif isinstance(item, CancelRequested):
            await self._caller_cancelled(item)
        elif isinstance(item, AckReceived):
            if item.dialog is not None and self.caller.state is LegState.CONFIRMED:
                self.caller.dialog = item.dialog
        elif isinstance(item, AckTimeout):
            await self._hangup_all(HangupSide.system)
        elif isinstance(item, WaveTimeout):
            await self._wave_timeout(item.wave)
        elif isinstance(item, DtmfReceived):
            await self._publish(
                CallDtmf,
                leg_id=self._leg_of_media(item.leg_id),
                digit=item.digit,
                duration=item.duration,
            )
        elif isinstance(item, MediaTimeout):
            log.info("call %s: no RTP on %s for %.0f s", self.call_id, item.leg_id, item.seconds)
            await self._hangup_all(HangupSide.system)
        elif isinstance(item, PlaybackFinished):
            if item.leg_id == self.prompt_media:
                await self._hangup_all(HangupSide.system)
        elif isinstance(item, Shutdown):
            await self._hangup_all(HangupSide.system)

    def _leg_of_media(self, media_id: str) -> str:
        for fork in self.forks.values():
            if media_id == fork.media_id:
                return fork.leg_id
        return self.caller.leg_id

    def _fork_by_key(self, key: object) -> CalleeLeg | None:
        for fork in self.forks.values():
            if fork.invite_key == key:
                return fork
        return None

    # -- waves ----------------------------------------------------------------------------------

    async def _next_wave(self) -> None:
        plan = self.plan
        while plan is not None and not self.done:
            self.wave += 1
            if self.wave >= len(plan.waves):
                await self._give_up()
                return
            wave = plan.waves[self.wave]
            ids = [f"{self.call_id}.w{self.wave}t{i}" for i in range(len(wave.targets))]
            self.tracker = WaveTracker(ids)
            for leg_id, target in zip(ids, wave.targets, strict=True):
                await self._start_fork(leg_id, target)
            if not self.tracker.over:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(wave.timeout, self.put, WaveTimeout(self.wave))
                return

    async def _start_fork(self, leg_id: str, target: RingTarget) -> None:
        host, ua = self.host, self.host.ua
        engine_call = f"{self.call_id}.{leg_id.rsplit('.', 1)[-1]}"
        caller_media, media = f"{leg_id}.c", leg_id
        try:
            caller_end = await host.engine.allocate(engine_call, caller_media)
            host.track_media(caller_media, self)
            endpoint = await host.engine.allocate(engine_call, media)
            host.track_media(media, self)
            oa = new_offer_answer(endpoint)
            offer = oa.create_offer().serialize().encode()
            fork = CalleeLeg(
                leg_id=leg_id,
                wave=self.wave,
                target=target,
                flow=target.flow,
                local_tag=ua.token(),
                sip_call_id=f"{ua.token()}@zvonar",
                media_id=media,
                caller_media_id=caller_media,
                endpoint=endpoint,
                caller_endpoint=caller_end,
                oa=oa,
            )
            self.forks[leg_id] = fork
            fork.request = invite_request(
                target=target.uri,
                caller=self._caller_invite(),
                local_tag=fork.local_tag,
                call_id=fork.sip_call_id,
                via=ua.via_for(fork.flow),
                contact=str(ua.contact_uri(fork.flow)),
                user_agent=ua.user_agent,
                sdp=offer,
            )
            host.track_dialog(fork.sip_call_id, fork.local_tag, self)
            fork.invite_key = ua.send_request(fork.request, fork.flow, host.now())
            host.track_key(fork.invite_key, self)
            host.flush()
        except (MediaError, SipError, ValueError) as exc:
            log.warning("call %s: cannot ring %s: %s", self.call_id, target.uri, exc)
            await self._release(caller_media, media)
            self.tracker.ended(leg_id, LegEndReason.failed)
            self.reasons.append(LegEndReason.failed)
            await self._publish(
                LegEndedEvent, leg_id=leg_id, reason=LegEndReason.failed, at=self._now()
            )

    async def _wave_timeout(self, wave: int) -> None:
        if wave != self.wave or self.winner is not None or self.done:
            return
        for leg_id in self.tracker.live:
            await self._stop_fork(self.forks[leg_id], LegEndReason.no_answer)
        await self._next_wave()

    async def _fork_over(self, fork: CalleeLeg, reason: LegEndReason) -> None:
        """A fork ended by itself (final non-2xx, failure): count it, maybe move on."""
        fork.state = LegState.ENDED
        await self._release(fork.caller_media_id, fork.media_id)
        if fork.dialog is not None:
            self.host.ua.forget_dialog(fork.dialog)
        if fork.wave == self.wave and self.tracker.ended(fork.leg_id, reason):
            self.reasons.append(reason)
            await self._publish(LegEndedEvent, leg_id=fork.leg_id, reason=reason, at=self._now())
            if self.tracker.over and self.winner is None:
                self._cancel_timer()
                await self._next_wave()

    async def _stop_fork(self, fork: CalleeLeg, reason: LegEndReason) -> None:
        """We end a ringing fork (someone else answered, a timeout, the caller left)."""
        if fork.wave == self.wave and self.tracker.ended(fork.leg_id, reason):
            self.reasons.append(reason)
            await self._publish(LegEndedEvent, leg_id=fork.leg_id, reason=reason, at=self._now())
        self._hangup_fork(fork)
        await self._release(fork.caller_media_id, fork.media_id)

    def _hangup_fork(self, fork: CalleeLeg) -> None:
        ua, now = self.host.ua, self.host.now()
        if fork.state is LegState.CONFIRMED and fork.dialog is not None:
            ua.send_request(ua.create_request(fork.dialog, "BYE", fork.flow), fork.flow, now)
            ua.forget_dialog(fork.dialog)
        elif (
            fork.state is LegState.INVITING and fork.invite_key is not None and not fork.cancel_sent
        ):
            fork.cancel_sent = True
            ua.cancel(fork.invite_key, fork.flow, now)  # a crossing 2xx gets ACK + BYE
        fork.state = LegState.ENDED
        self.host.flush()

    # -- responses from the targets ---------------------------------------------------------

    async def _response(self, event: ResponseIn) -> None:
        fork = self._fork_by_key(event.key)
        resp = event.response
        if fork is None or resp.cseq.method != "INVITE" or event.request is not fork.request:
            return
        if resp.status < 200:
            if resp.status > 100 and fork.state is LegState.INVITING:
                await self._ringing(fork)
        elif resp.status < 300:
            await self._answered(fork, event)
        elif fork.state is not LegState.ENDED:
            await self._fork_over(fork, end_reason_for_status(resp.status))

    async def _ringing(self, fork: CalleeLeg) -> None:
        if fork.wave != self.wave or not self.tracker.ringing(fork.leg_id):
            return
        caller = self.caller
        if not caller.ringing_sent and caller.invite is not None:
            caller.ringing_sent = True  # one 180 for the whole call: ringback from the phone
            self._respond_caller(180)
        await self._publish(
            CallRinging, leg_id=fork.leg_id, target=fork.target.target, at=self._now()
        )

    async def _answered(self, fork: CalleeLeg, event: ResponseIn) -> None:
        ua = self.host.ua
        dialog = event.dialog
        if dialog is None or fork.request is None:
            return
        ua.send_ack(dialog, fork.request, fork.flow)
        fork.dialog = dialog
        late = fork.state is not LegState.INVITING or fork.wave != self.wave
        if late or self.winner is not None or self.caller.invite is None:
            fork.state = LegState.CONFIRMED  # a 2xx crossing our CANCEL (§9.1): end it
            self._hangup_fork(fork)
            return
        fork.state = LegState.CONFIRMED
        try:
            remote = remote_media(fork.oa.receive_answer(parse_body(event.response.body)))
        except MediaError as exc:
            log.info("call %s: unusable answer from %s: %s", self.call_id, fork.leg_id, exc)
            self._hangup_fork(fork)
            await self._fork_over(fork, LegEndReason.failed)
            return
        self.tracker.answered(fork.leg_id)
        self.winner = fork
        self._cancel_timer()
        for other in self.forks.values():
            if other is not fork and other.state is LegState.INVITING:
                await self._stop_fork(other, LegEndReason.cancelled)
        await self._connect(fork, remote)

    async def _connect(self, fork: CalleeLeg, remote: RemoteMedia) -> None:
        """Bridge the winner to the caller and answer the caller with our SDP."""
        engine, caller = self.host.engine, self.caller
        caller.media_id, caller.endpoint = fork.caller_media_id, fork.caller_endpoint
        caller.oa = new_offer_answer(fork.caller_endpoint)
        answer, negotiated = caller.oa.receive_offer(parse_body(self._caller_invite().body))
        await engine.configure(fork.media_id, remote)
        await engine.configure(fork.caller_media_id, remote_media(negotiated))
        await engine.bridge(fork.caller_media_id, fork.media_id)
        self._respond_caller(200, answer.serialize().encode())
        caller.state = LegState.CONFIRMED
        caller.dialog = self._find_caller_dialog()
        await self._publish(CallAnswered, leg_id=fork.leg_id, at=self._now())
        plan, where = self.plan, self.host.recording_path
        if plan is not None and plan.record and where is not None and self.account_id:
            path = where(self.account_id, self.call_id, self.facts.started_at)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.recording_done = asyncio.get_running_loop().create_future()
            self.recording_id = await engine.start_recording(fork.caller_media_id, path)
            self.recording_path = path

    # -- requests from either side --------------------------------------------------------------

    async def _request(self, inc: IncomingRequest) -> None:
        dialog, method = inc.dialog, inc.request.method
        if dialog is None:
            return
        fork = next((f for f in self.forks.values() if f.local_tag == dialog.id.local_tag), None)
        from_caller = fork is None
        if method == "BYE":
            self._reply(inc, dialog, 200)
            if from_caller:
                self.caller.state = LegState.ENDED
            elif fork is not None:
                fork.state = LegState.ENDED
            side = HangupSide.caller if from_caller else HangupSide.callee
            if fork is not None and fork is not self.winner:
                return
            await self._hangup_all(side)
        elif method == "INVITE":
            await self._reinvite(inc, dialog, fork)
        else:
            self._reply(inc, dialog, 200)

    async def _reinvite(self, inc: IncomingRequest, dialog: Dialog, fork: CalleeLeg | None) -> None:
        """Answer a re-INVITE (hold/resume, new address) locally; see sdp_bridge.py."""
        oa = self.caller.oa if fork is None else fork.oa
        media = self.caller.media_id if fork is None else fork.media_id
        if oa is None or media is None:
            self._reply(inc, dialog, 491)
            return
        if not inc.request.body.strip():  # an offerless re-INVITE: our current SDP
            body = oa.local_sdp.serialize().encode() if oa.local_sdp else b""
            self._reply(inc, dialog, 200, body)
            return
        try:
            answer, negotiated = oa.receive_offer(parse_body(inc.request.body))
            await self.host.engine.configure(media, remote_media(negotiated))
        except MediaError as exc:
            self._reply(inc, dialog, exc.status_hint if exc.status_hint >= 400 else 488)
            return
        self._reply(inc, dialog, 200, answer.serialize().encode())

    def _reply(self, inc: IncomingRequest, dialog: Dialog, status: int, body: bytes = b"") -> None:
        ua = self.host.ua
        contact = str(ua.contact_uri(inc.flow)) if inc.request.method == "INVITE" else None
        resp = response_to(inc.request, status, dialog.id.local_tag, contact=contact, body=body)
        ua.respond(inc, resp, self.host.now())
        self.host.flush()

    async def _caller_cancelled(self, event: CancelRequested) -> None:
        caller = self.caller
        if caller.invite is None or event.key != caller.invite.key:
            return
        caller.invite = None
        ua = self.host.ua
        cancelled = make_response(event.invite, 487, to_tag=caller.local_tag)
        ua.respond(event, cancelled, self.host.now())
        self.host.flush()
        caller.state = LegState.ENDED
        await self._finish(Disposition.abandoned, HangupSide.caller, fork_reason="cancelled")

    # -- the caller -----------------------------------------------------------------------------

    def _caller_invite(self) -> SipRequest:
        inc = self.caller.invite
        if inc is None:
            raise SipError("the caller's INVITE was already answered")
        return inc.request

    def _respond_caller(self, status: int, body: bytes = b"", reason: str | None = None) -> None:
        caller, ua = self.caller, self.host.ua
        inc = caller.invite
        if inc is None:
            return
        contact = str(ua.contact_uri(inc.flow))
        resp = response_to(
            inc.request, status, caller.local_tag, contact=contact, body=body, reason=reason
        )
        ua.respond(inc, resp, self.host.now())
        if status >= 200:
            caller.invite = None
        self.host.flush()

    async def _give_up(self) -> None:
        """No wave left (or a Reject): the final answer, or a prompt before hanging up."""
        final = self.final or Reject()
        disposition = disposition_for(self.reasons) if self.reasons else Disposition.failed
        if final.status in (486, 600) and not self.reasons:
            disposition = Disposition.busy
        if final.prompt is not None and self.caller.invite is not None:
            try:
                await self._play_prompt(final)
                self._final_disposition = disposition
                return
            except MediaError as exc:
                log.warning("call %s: prompt failed: %s", self.call_id, exc)
        await self._finish(disposition, HangupSide.system, caller_status=final.status)

    async def _play_prompt(self, final: Reject) -> None:
        engine, caller = self.host.engine, self.caller
        media = f"{self.call_id}.p"
        endpoint = await engine.allocate(f"{self.call_id}.p", media)
        self.host.track_media(media, self)
        self.prompt_media = caller.media_id = media
        caller.endpoint = endpoint
        caller.oa = new_offer_answer(endpoint)
        answer, negotiated = caller.oa.receive_offer(parse_body(self._caller_invite().body))
        await engine.configure(media, remote_media(negotiated))
        self._respond_caller(200, answer.serialize().encode())
        caller.state = LegState.CONFIRMED
        assert final.prompt is not None
        await engine.play(media, final.prompt)

    # -- the end --------------------------------------------------------------------------------

    async def _hangup_all(self, side: HangupSide) -> None:
        if self.prompt_media is not None:
            disposition = self._final_disposition
        elif self.winner is not None:
            disposition = Disposition.answered
        elif side is HangupSide.caller:
            disposition = Disposition.abandoned
        else:
            disposition = Disposition.failed
        await self._finish(disposition, side, caller_status=480 if self.winner is None else 0)

    async def _finish(
        self,
        disposition: Disposition,
        side: HangupSide,
        *,
        caller_status: int = 0,
        fork_reason: str = "cancelled",
    ) -> None:
        if self.done:
            return
        self.done = True
        self._cancel_timer()
        caller = self.caller
        if caller.invite is not None:  # never answered: a final response (487 sent elsewhere)
            final = self.final
            status = caller_status or 480
            reason = final.reason if final is not None and final.status == status else None
            self._respond_caller(max(status, 400), reason=reason)
        elif caller.state is LegState.CONFIRMED:
            self._bye_caller()
        for fork in self.forks.values():
            if fork is self.winner:
                if fork.state is not LegState.ENDED:
                    self._hangup_fork(fork)
                elif fork.dialog is not None:
                    self.host.ua.forget_dialog(fork.dialog)
                await self._publish(
                    LegEndedEvent, leg_id=fork.leg_id, reason=LegEndReason.completed, at=self._now()
                )
            elif fork.state is LegState.INVITING:
                await self._stop_fork(fork, LegEndReason(fork_reason))
        recorded = await self._stop_recording()
        for fork in self.forks.values():
            await self._release(fork.caller_media_id, fork.media_id)
        if self.prompt_media is not None:
            await self._release(self.prompt_media)
        if recorded is not None:
            await self._publish(CallRecorded, path=str(recorded.path), duration=recorded.duration)
        await self._publish(CallEnded, disposition=disposition, ended_at=self._now(), hangup=side)

    def _bye_caller(self) -> None:
        caller, ua = self.caller, self.host.ua
        dialog = caller.dialog or self._find_caller_dialog()
        caller.state = LegState.ENDED
        if dialog is None:
            return
        ua.send_request(ua.create_request(dialog, "BYE", caller.flow), caller.flow, self.host.now())
        ua.forget_dialog(dialog)
        self.host.flush()

    def _find_caller_dialog(self) -> Dialog | None:
        caller = self.caller
        dialog_id = DialogId(caller.sip_call_id, caller.local_tag, caller.remote_tag)
        return self.host.ua.dialogs.get(dialog_id)

    async def _stop_recording(self) -> RecordingFinished | None:
        rid, fut = self.recording_id, self.recording_done
        if rid is None or fut is None:
            return None
        self.recording_id = None
        try:
            await self.host.engine.stop_recording(rid)
            return await asyncio.wait_for(asyncio.shield(fut), 3.0)
        except (MediaEngineError, TimeoutError) as exc:
            log.warning("call %s: recording not finished: %s", self.call_id, exc)
            return None

    async def _release(self, *media_ids: str) -> None:
        for media_id in media_ids:
            if not self.host.untrack_media(media_id):
                continue
            try:
                await self.host.engine.release(media_id)
            except MediaError as exc:
                log.debug("call %s: release %s: %s", self.call_id, media_id, exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- events ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.host.clock.now()

    async def _publish(self, kind: type[CallEvent], **fields: object) -> None:
        if self.account_id is None or not self._started_event:
            return
        try:
            event = kind(account_id=self.account_id, call_id=self.call_id, **fields)  # type: ignore[arg-type]
            await self.host.bus.publish(event)
        except Exception:
            log.exception("call %s: cannot publish %s", self.call_id, kind.__name__)
