"""One call of the B2BUA: an actor that owns the caller leg, the forks and the media.

Everything that concerns a call — UA events routed to it, media events of its legs, its
wave timer — goes into one queue and is handled in order by one task, so media operations
(coroutines) never interleave with another event of the same call. The decisions of
forking are pure (fork.py); SDP is ours on every dialog (sdp_bridge.py).

Life of an inbound call: resolve → CallStarted → check the offer (488) → waves of forks
(180 to the caller once, CallRinging per fork) → the first 2xx wins (ACK, CANCEL the
others, bridge, 200 to the caller, CallAnswered, recording) → BYE from either side (BYE the
other) → release media → CallRecorded, CallEnded. A failure anywhere ends the call cleanly.

This module is the actor: its queue, the forks' answers and the caller's responses. The
waves of forks live in waves.py, requests either side sends in the dialogs (BYE, re-INVITE
and hold, REFER, INFO) in requests.py, and the end of the call (hangups, prompt, recording,
media release) in teardown.py, as functions over the call that only this actor's task runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from zvonar.calls import accept, attended, early, park, redirect, steps
from zvonar.calls.answering import NoSession, answer_caller, caller_sdp, fork_answer_in_ack
from zvonar.calls.events import (
    CallAnswered,
    CallEvent,
    CallRinging,
    CallStarted,
    Direction,
    Disposition,
    HangupSide,
    LegEndReason,
    TargetKind,
)
from zvonar.calls.fork import WaveTracker, end_reason_for_status
from zvonar.calls.identity import presenting
from zvonar.calls.in_dialog import answer_challenge
from zvonar.calls.legs import CallDtmf, CalleeLeg, CallerLeg, LegState
from zvonar.calls.plan import (
    QUEUE_SIGNALS,
    InboundCall,
    Plan,
    QueueSession,
    QueueSignal,
    Reject,
    Route,
)
from zvonar.calls.recording import Recording
from zvonar.calls.requests import on_request
from zvonar.calls.sdp_bridge import check_offer, parse_body, remote_media
from zvonar.calls.signalling import response_to
from zvonar.calls.steps import StepTimeout
from zvonar.calls.teardown import finish, give_up, hangup_all, hangup_fork, stop_fork
from zvonar.calls.transfer import TransferOrder, ordered_transfer
from zvonar.calls.waves import (
    ForkTimeout,
    WaveTimeout,
    fork_over,
    fork_timeout,
    next_wave,
    wave_timeout,
)
from zvonar.media.engine import (
    DtmfReceived,
    MediaEvent,
    MediaTimeout,
    PlaybackFinished,
    RecordingFinished,
    RemoteMedia,
)
from zvonar.media.errors import MediaError
from zvonar.media.sdp import SessionDescription
from zvonar.sip.body import sdp_body
from zvonar.sip.dialog import Dialog, DialogId
from zvonar.sip.message import SipRequest, make_response
from zvonar.sip.ua import (
    AckReceived,
    AckTimeout,
    CancelRequested,
    IncomingRequest,
    RequestFailed,
    ResponseIn,
    SessionExpired,
    UaEvent,
)
from zvonar.sip.uri import parse_uri

if TYPE_CHECKING:
    from zvonar.calls.b2bua import B2bua

__all__ = ["Call"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shutdown:
    pass


_NO_INVITE = SipRequest("OPTIONS", parse_uri("sip:invalid"), ())


CallInput = (
    UaEvent
    | MediaEvent
    | WaveTimeout
    | ForkTimeout
    | StepTimeout
    | QueueSignal
    | Shutdown
    | NoSession
    | attended.Donate
    | attended.Handover
    | attended.HandoverTimeout
    | TransferOrder
    | accept.AcceptTimeout
    | park.ParkTimeout
)


class Call:
    """See the module docstring. Built and run by :class:`zvonar.calls.b2bua.B2bua`."""

    def __init__(self, host: B2bua, facts: InboundCall, caller: CallerLeg) -> None:
        self.host = host
        self.facts = facts
        self.call_id = facts.call_id
        self.caller = caller
        # The caller's INVITE, kept after it is answered: the forks copy its From, so it
        # names who calls (identity.py: a trunk's asserted identity may not be From's), as
        # handoff.py makes it name whoever becomes the caller.
        self.caller_request: SipRequest = _NO_INVITE
        if caller.invite is not None:
            self.caller_request = presenting(caller.invite.request, facts)
        # An INVITE without a body (RFC 3261 §13.2.1): the offer is ours, in our 200.
        self.delayed_offer = caller.invite is not None and not sdp_body(self.caller_request).strip()
        self.round = 0  # 0: the plan's waves; n: the n-th transfer's (transfer.py)
        self.was_answered = False  # a 2xx went to the caller (still true while transferring)
        self.transferring = False
        self.redirects = 0  # 3xx followed (redirect.py)
        self.queue: asyncio.Queue[CallInput] = asyncio.Queue()
        self.plan: Plan | None = None
        self.account_id: uuid.UUID | None = None  # set once resolved
        self.forks: dict[str, CalleeLeg] = {}
        self.wave = -1
        self.tracker = WaveTracker(())
        self.reasons: list[LegEndReason] = []  # every unanswered fork's end, all waves
        self.winner: CalleeLeg | None = None
        self.recording = Recording()
        self.prompt_media: str | None = None
        self.prompt_playback: str | None = None  # the final prompt's playback (teardown.py)
        self.route: Route | None = None  # the live route, when the plan has one (steps.py)
        self.live: steps.Live | None = None
        self.local_media: str | None = None  # our own media leg for the caller (steps.py)
        self.queued: QueueSession | None = None  # waiting in (or answered from) a queue
        self.final: Reject | None = None
        self.done = False
        self.wave_timer: asyncio.TimerHandle | None = None
        self.silence: float | None = None  # the current wave's Wave.silence
        self.fork_timers: dict[str, asyncio.TimerHandle] = {}  # by fork
        self._started_event = False
        self.final_disposition = Disposition.failed
        self.caller_answered_at: datetime | None = None  # our first 200 to the caller
        self.caller_offer: SessionDescription | None = None  # the caller's SDP, parsed
        self.early_media: str | None = None  # the caller's leg while it hears early media
        self.early_from: str | None = None  # the fork it hears (None: our ringback)
        self.attended: attended.Pending | None = None  # an attended transfer in progress
        self.holding: set[str] = set()  # legs whose peer holds the call: music to the other
        self.parked: park.Parked | None = None  # waiting in a park slot (park.py)
        self.invited_at: float | None = None  # the INVITE's arrival (loop time), until rung
        # Set while the actor waits for the ACK that answers our offer (answering.py); a BYE
        # of the caller's ends the wait too.
        self.ack_wait: asyncio.Future[AckReceived | AckTimeout | IncomingRequest] | None = None

    # -- input ----------------------------------------------------------------------------------

    def put(self, item: CallInput) -> None:
        if self.done:
            return
        waiting = self.ack_wait
        if waiting and not waiting.done():
            if isinstance(item, AckReceived | AckTimeout) and self._callers_ack(item):
                waiting.set_result(item)  # answering.answer_caller waits for it, not the queue
                return
            if isinstance(item, IncomingRequest) and self._callers_bye(item):
                # A caller that cannot take our offer may hang up before its ACK (Linphone
                # does): no answer will come, and the queued BYE ends the call.
                waiting.set_result(item)
        self.queue.put_nowait(item)

    def _callers_ack(self, item: AckReceived | AckTimeout) -> bool:
        """Of the caller's dialog, not of a picker's (pickup.py)."""
        message = item.request if isinstance(item, AckReceived) else item.response
        return message.to.tag == self.caller.local_tag

    def _callers_bye(self, inc: IncomingRequest) -> bool:
        return inc.request.method == "BYE" and inc.request.to.tag == self.caller.local_tag

    def offered_fork(self, local_tag: str | None) -> CalleeLeg | None:
        """The fork on our dialog ``local_tag`` whose ACK is to answer our offer."""
        for fork in self.forks.values():
            if fork.offered and fork.local_tag == local_tag:
                return fork
        return None

    def media_event(self, event: MediaEvent) -> None:
        if isinstance(event, RecordingFinished):
            self.recording.finished(event)
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
            await finish(self, Disposition.failed, side, caller_status=500)

    async def _begin(self) -> bool:
        """Resolve, announce, check the offer and ring the first wave; False if it ended."""
        host = self.host
        try:
            # A timeout scope, not wait_for: the resolver runs in this task (no task more per
            # call), cancelled the same way when it overruns.
            async with asyncio.timeout(host.resolve_timeout):
                outcome = await host.resolver(self.facts)
        except Exception:
            log.exception("resolver failed for call %s", self.call_id)
            outcome = Reject(500, "Server Internal Error")
        account_id = outcome.account_id
        if account_id is not None:
            self.account_id = account_id
            seen = self.facts.for_account(account_id)
            if seen is not self.facts:
                # The caller's trunk vouches for this account (plan.CallerAuth): its asserted
                # identity is the caller, for the journal, the forks' From and call-back.
                self.facts = seen
                if self.caller.invite is not None:
                    self.caller_request = presenting(self.caller.invite.request, seen)
            await self._started(outcome)
        if isinstance(outcome, Reject):
            self.final = outcome
            await give_up(self)
            return not self.done
        self.plan = outcome
        try:
            # Parsed once: checked now, answered when we answer the caller (answering.py).
            if not self.delayed_offer:
                self.caller_offer = parse_body(sdp_body(self.caller_request))
                check_offer(self.caller_offer, srtp=self.host.engine.srtp)
        except MediaError as exc:
            await finish(self, Disposition.failed, HangupSide.system, caller_status=488)
            log.info("call %s: offer refused: %s", self.call_id, exc)
            return False
        self.final = outcome.final
        if outcome.route is not None:
            self.route = outcome.route
            await steps.advance(self, None)
        else:
            await next_wave(self)
        return not self.done

    async def after_wave(self) -> None:
        """waves.py: the live route's current wave ended without a winner."""
        await steps.after_wave(self)

    async def _started(self, outcome: Plan | Reject) -> None:
        facts = self.facts
        plan = outcome if isinstance(outcome, Plan) else None
        self._started_event = True
        await self.publish(
            CallStarted,
            direction=outcome.direction or Direction.inbound,
            caller=((plan.caller if plan else None) or facts.caller)[:64],
            dialed=((plan.dialed if plan and plan.dialed else facts.dialed) or "unknown")[:64],
            started_at=facts.started_at,
            number_label=plan.number_label if plan else None,
            caller_contact_id=plan.contact_id if plan else None,
            placed_by=outcome.placed_by,
            tracking=dict(plan.tracking) if plan else {},
        )

    async def _handle(self, item: CallInput) -> None:
        if isinstance(item, IncomingRequest):
            await on_request(self, item)
        elif isinstance(item, ResponseIn):
            await self._response(item)
        elif isinstance(item, RequestFailed):
            fork = self._fork_by_key(item.key)
            if fork is not None and item.request.method == "INVITE":
                reason = LegEndReason.no_answer if item.status == 408 else LegEndReason.failed
                why = "Request Timeout" if item.status == 408 else "Service Unavailable"
                fork.final = (item.status, why)
                await fork_over(self, fork, reason)
        elif isinstance(item, CancelRequested):
            await self._caller_cancelled(item)
        elif isinstance(item, AckReceived):
            if (fork := self.offered_fork(item.request.to.tag)) is not None:
                await fork_answer_in_ack(self, fork, item)
            elif item.dialog is not None and self.caller.state is LegState.CONFIRMED:
                self.caller.dialog = item.dialog
        elif isinstance(item, AckTimeout):
            await hangup_all(self, HangupSide.system)
        elif isinstance(item, SessionExpired):  # RFC 4028: a side stopped refreshing
            log.info("call %s: session timer (%d s) expired", self.call_id, item.interval)
            await hangup_all(self, HangupSide.system)
        elif isinstance(item, WaveTimeout):
            await wave_timeout(self, item.wave)
        elif isinstance(item, ForkTimeout):
            await fork_timeout(self, item.leg_id)
        elif isinstance(item, DtmfReceived):
            leg_id = self._leg_of_media(item.leg_id)
            await self.publish(CallDtmf, leg_id=leg_id, digit=item.digit, duration=item.duration)
            if leg_id == self.caller.leg_id and item.leg_id == self.caller.media_id:
                await steps.on_digit(self, item.digit)
            elif (asked := self.forks.get(leg_id)) is not None and asked.accept_timer:
                await accept.key(self, asked, item.digit)
        elif isinstance(item, StepTimeout):
            await steps.on_timeout(self, item)
        elif isinstance(item, QUEUE_SIGNALS):
            await steps.on_queue_signal(self, item)
        elif isinstance(item, MediaTimeout):
            log.info("call %s: no RTP on %s for %.0f s", self.call_id, item.leg_id, item.seconds)
            await hangup_all(self, HangupSide.system)
        elif isinstance(item, PlaybackFinished):
            if await accept.on_playback(self, item) or await steps.on_playback(self, item):
                return
            if item.leg_id == self.prompt_media and item.playback_id == self.prompt_playback:
                await hangup_all(self, HangupSide.system)
        elif isinstance(item, Shutdown | NoSession):
            await hangup_all(self, HangupSide.system)
        elif isinstance(item, attended.Donate):
            await attended.on_donate(self, item)
        elif isinstance(item, attended.Handover):
            await attended.on_handover(self, item)
        elif isinstance(item, attended.HandoverTimeout):
            await attended.on_handover_timeout(self, item)
        elif isinstance(item, TransferOrder):
            await ordered_transfer(self, item)
        elif isinstance(item, accept.AcceptTimeout):
            await accept.timed_out(self, item)
        elif isinstance(item, park.ParkTimeout):
            await park.timed_out(self, item)

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

    # -- responses from the targets ---------------------------------------------------------

    async def _response(self, event: ResponseIn) -> None:
        fork = self._fork_by_key(event.key)
        resp = event.response
        if fork is None or resp.cseq.method != "INVITE" or event.request is not fork.request:
            return
        fork.heard = True
        if resp.status < 200:
            if resp.status > 100 and fork.state is LegState.INVITING:
                fork.early_tag = fork.early_tag or resp.to.tag
                await self._ringing(fork, sdp_body(resp))
        elif resp.status < 300:
            await self._answered(fork, event)
        elif fork.state is not LegState.ENDED:
            if answer_challenge(self.host, self, fork, resp):
                return  # sent again with the carrier's credentials: still ringing
            if resp.status < 400 and await redirect.follow(self, fork, resp):
                return  # its Contact rings instead (a phone's own call forwarding)
            fork.final = (resp.status, resp.reason)
            await fork_over(self, fork, end_reason_for_status(resp.status))

    async def _ringing(self, fork: CalleeLeg, body: bytes) -> None:
        if fork.wave != self.wave:
            return
        first = self.tracker.ringing(fork.leg_id)
        if body:
            await early.progress(self, fork, body)  # a 183 with our SDP, if it plays something
        if not first:
            return
        caller = self.caller
        if not caller.ringing_sent and caller.invite is not None:
            caller.ringing_sent = True  # one 180 for the whole call: ringback from the phone
            self.respond_caller(180)
        fork.rang = True
        await self.publish(
            CallRinging, leg_id=fork.leg_id, target=fork.target.target, at=self.now()
        )

    async def _answered(self, fork: CalleeLeg, event: ResponseIn) -> None:
        ua = self.host.ua
        dialog = event.dialog
        if dialog is None or fork.request is None:
            return
        ua.send_ack(dialog, fork.request, fork.flow)
        fork.dialog = dialog
        late = fork.state is not LegState.INVITING or fork.wave != self.wave
        caller_gone = self.caller.invite is None and self.caller.state is not LegState.CONFIRMED
        if late or self.winner is not None or caller_gone or self.caller.state is LegState.ENDED:
            fork.state = LegState.CONFIRMED  # a 2xx crossing our CANCEL (§9.1): end it
            hangup_fork(self, fork)
            return
        fork.state = LegState.CONFIRMED
        body = sdp_body(event.response)
        if not body.strip() and fork.early is not None:
            body = fork.early  # the 2xx should repeat its 183's answer (§13.2.1); some omit it
        try:
            remote = remote_media(fork.oa.receive_answer(parse_body(body)))
        except MediaError as exc:
            log.info("call %s: unusable answer from %s: %s", self.call_id, fork.leg_id, exc)
            hangup_fork(self, fork)
            await fork_over(self, fork, LegEndReason.failed)
            return
        if fork.target.accept_prompt is not None or fork.target.announce is not None:
            await accept.ask(self, fork, remote)  # it wins once announced / it pressed 1
            return
        await self.win(fork, remote)

    async def win(self, fork: CalleeLeg, remote: RemoteMedia) -> None:
        """``fork`` answered (and accepted, when asked to): it takes the call. A caller with
        no media yet is answered on the fork's caller side; if that cannot be opened, the
        fork is hung up as failed and the wave goes on without it."""
        if self.caller.media_id is None and await early.caller_side(self, fork) is None:
            hangup_fork(self, fork)
            await fork_over(self, fork, LegEndReason.failed)
            return
        self.tracker.answered(fork.leg_id)
        self.winner = fork
        self.cancel_timer()
        for other in self.forks.values():
            if other is not fork and other.pending:
                await stop_fork(self, other, LegEndReason.cancelled, elsewhere=True)
        await self._connect(fork, remote)

    async def _connect(self, fork: CalleeLeg, remote: RemoteMedia) -> None:
        """Bridge the winner to the caller and answer the caller with our SDP."""
        engine, caller = self.host.engine, self.caller
        # A caller hearing early media is answered on that leg, the 200 repeating the 183's
        # SDP; no fork opened a caller side of its own then (win, early.caller_side).
        await early.confirm(self)
        if caller.state is LegState.CONFIRMED and caller.media_id is not None:
            # The caller is answered already: a transfer target (the caller talked to someone
            # before), an agent after a menu or a queue (we answered to play prompts), or
            # whoever answers a caller that heard early media.
            with contextlib.suppress(MediaError):
                await engine.stop_playback(caller.media_id)
            await engine.configure(fork.media_id, remote)
            await engine.bridge(caller.media_id, fork.media_id)
            first = not self.was_answered
            self.was_answered = True
            await self._answered_event(fork)
            if first:
                await steps.connected(self, fork)
                await self.record()
            return
        endpoint = fork.caller_endpoint
        assert endpoint is not None  # win() opened it: the caller had no media
        sdp = await caller_sdp(self, fork.caller_media_id, endpoint)
        await engine.configure(fork.media_id, remote)
        await engine.bridge(fork.caller_media_id, fork.media_id)
        await answer_caller(self, sdp)
        self.was_answered = True
        await self._answered_event(fork)
        await steps.connected(self, fork)
        await self.record()

    async def record(self) -> None:
        """Start recording the caller's media leg (with its bridged peer) if the plan says so
        (once: an answer, a pickup or a transfer's answer may all ask)."""
        plan, where, media = self.plan, self.host.recording_path, self.caller.media_id
        if plan is None or not plan.record or where is None or not self.account_id:
            return
        if media is None:
            return
        path = where(self.account_id, self.call_id, self.facts.started_at)
        await self.recording.start(self.host.engine, media, path)

    async def _answered_event(self, fork: CalleeLeg) -> None:
        target = fork.target.target
        if not fork.rang:  # answered at once (a carrier's 200 without 18x): still a leg
            fork.rang = True
            await self.publish(
                CallRinging,
                leg_id=fork.leg_id,
                target=target,
                at=self.now(),
                invited_at=fork.invited_at,
            )
        # The journal's answered_by: the employee behind the leg (their phone or mobile).
        by = target.target_id if target.kind in (TargetKind.employee, TargetKind.mobile) else None
        await self.publish(CallAnswered, leg_id=fork.leg_id, at=self.now(), by=by)

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
        await finish(self, Disposition.abandoned, HangupSide.caller, fork_reason="cancelled")

    # -- the caller -----------------------------------------------------------------------------

    def respond_caller(self, status: int, body: bytes = b"", reason: str | None = None) -> None:
        caller, ua = self.caller, self.host.ua
        inc = caller.invite
        if inc is None:
            return
        contact = str(ua.contact_uri(inc.flow))
        resp = response_to(
            inc.request,
            status,
            caller.local_tag,
            contact=contact,
            body=body,
            reason=reason,
            allow=ua.allow_header,
        )
        ua.respond(inc, resp, self.host.now())
        if status >= 200:
            caller.invite = None
            if status < 300 and self.caller_answered_at is None:  # by anyone, the PBX too
                self.caller_answered_at = self.now()
        self.host.flush()

    def find_caller_dialog(self) -> Dialog | None:
        caller = self.caller
        dialog_id = DialogId(caller.sip_call_id, caller.local_tag, caller.remote_tag)
        return self.host.ua.dialogs.get(dialog_id)

    def cancel_timer(self) -> None:
        if self.wave_timer is not None:
            self.wave_timer.cancel()
            self.wave_timer = None
        for handle in self.fork_timers.values():
            handle.cancel()
        self.fork_timers.clear()

    # -- events ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.host.clock.now()

    async def publish(self, kind: type[CallEvent], **fields: object) -> None:
        if self.account_id is None or not self._started_event:
            return
        try:
            event = kind(account_id=self.account_id, call_id=self.call_id, **fields)  # type: ignore[arg-type]
            await self.host.bus.publish(event)
        except Exception:
            log.exception("call %s: cannot publish %s", self.call_id, kind.__name__)
