"""Callers: INVITEs to the account's numbers arriving as a Poisson process.

Arrivals follow ``SimConfig.rate_at`` (thinning of a homogeneous process at the peak rate,
so the hour-of-day profile shapes the stream). A caller waits for an answer up to a drawn
patience and then CANCELs (abandons); once answered it ACKs and sends G.711 silence if asked.
Who hangs up depends on who answered:

* after ringing (a 180/183 came first), an employee's device: the caller stays until the
  PBX hangs up (the device's BYE crosses the B2BUA), bounded by the talk time's cap;
* with no ringing, the PBX itself (voicemail, a greeting, a menu, a queue's music): the
  caller talks for its own drawn talk time and hangs up, as a caller leaving a message does.
  Without this a simulation at off hours left every call in voicemail until its limit.

Each call is counted once. One still talking when the drain after the last arrival runs out
is hung up and counted as ``cut`` besides ``answered``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import zlib
from collections.abc import Sequence

from zvonar.media.errors import MediaError
from zvonar.media.offer_answer import LocalMedia
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.media.sdp import parse_sdp
from zvonar.sim.config import SimConfig, SimReport
from zvonar.sim.endpoint import Endpoint
from zvonar.sim.numbers import CallerPool
from zvonar.sip.body import SDP
from zvonar.sip.message import SipRequest
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import Flow, IncomingRequest, RequestFailed, ResponseIn, UaEvent
from zvonar.sip.uri import SipUri

__all__ = ["Callers"]

CANCEL_WAIT = 10.0  # after our CANCEL, how long the 487 (or a crossing 200) may take


class Callers:
    """Places calls from one :class:`Endpoint` to ``numbers`` at the PBX ``pbx``, each from a
    number drawn from ``callers``."""

    def __init__(
        self,
        endpoint: Endpoint,
        pbx: Flow,
        numbers: Sequence[str],
        callers: CallerPool,
        config: SimConfig,
        report: SimReport,
        rng: random.Random,
    ) -> None:
        if not numbers:
            raise ValueError("no numbers to call")
        self.endpoint = endpoint
        self.pbx = pbx
        self.numbers = list(numbers)
        self.callers = callers
        self.config = config
        self.report = report
        self.rng = rng
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Place calls for ``config.duration`` seconds, then wait (bounded) for them to end."""
        cfg, rng = self.config, self.rng
        loop = asyncio.get_running_loop()
        start = loop.time()
        peak = cfg.peak_rate
        t = 0.0
        while self.report.placed < cfg.max_calls:
            t += rng.expovariate(peak)
            if t >= cfg.duration:
                break
            if rng.random() * peak > cfg.rate_at(t):
                continue  # thinned: the profile is below its peak at this hour
            await asyncio.sleep(max(0.0, start + t - loop.time()))
            self.report.placed += 1
            task = loop.create_task(self.call(rng.choice(self.numbers)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if self.tasks:
            _done, pending = await asyncio.wait(set(self.tasks), timeout=cfg.drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    async def call(self, number: str) -> None:
        """One call; its outcome is counted in the report (once)."""
        call = _Call(self, number)
        try:
            await call.run()
        except asyncio.CancelledError:
            if call.counted:  # answered, and still talking at the drain
                self.report.cut += 1
            else:
                self.report.failed += 1
            raise
        except Exception:
            if not call.counted:
                self.report.failed += 1


class _Call:
    def __init__(self, owner: Callers, number: str) -> None:
        self.owner = owner
        self.ep = owner.endpoint
        self.pbx = owner.pbx
        self.number = number
        loop = asyncio.get_running_loop()
        self.final: asyncio.Future[ResponseIn | RequestFailed] = loop.create_future()
        self.bye: asyncio.Future[None] = loop.create_future()
        self.tag = self.ep.ua.token()
        self.call_id = f"{secrets.token_hex(8)}@sim"
        self.key: TransactionKey | None = None
        self.dialog_answered: ResponseIn | None = None
        self.rang = False  # a 180/183 came before the answer: a device, not the PBX itself
        self.counted = False  # its outcome is in the report

    def _invite(self, offer: bytes) -> SipRequest:
        ep, pbx = self.ep, self.pbx
        caller = self.owner.callers.draw(self.owner.rng)
        uri = SipUri("sip", self.number, None, pbx.host, pbx.port)
        me = ep.flow
        headers = (
            ("Via", ep.ua.via_for(pbx)),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{caller}@{me.host}:{me.port}>;tag={self.tag}"),
            ("To", f"<sip:{self.number}@{pbx.host}:{pbx.port}>"),
            ("Call-ID", self.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<{ep.ua.contact_uri(pbx, caller)}>"),
            ("User-Agent", ep.ua.user_agent),
            ("Content-Type", SDP),
        )
        return SipRequest("INVITE", uri, headers, offer)

    async def run(self) -> None:
        cfg, rng, report = self.owner.config, self.owner.rng, self.owner.report
        media = self.ep.media
        if media is None:
            raise RuntimeError("the endpoint has no media socket")
        loop = asyncio.get_running_loop()
        oa = OfferAnswer(
            LocalMedia(media.host, media.port, username="sim"),
            session_id=zlib.crc32(self.tag.encode()) or 1,
        )
        offer = oa.create_offer().serialize().encode()
        sent_at = loop.time()
        self.ep.watch_dialog(self.call_id, self.tag, self._in_dialog)
        try:
            self.key = self.ep.send(self._invite(offer), self.pbx, self._response)
            abandoned = False
            try:
                final = await asyncio.wait_for(asyncio.shield(self.final), cfg.patience.draw(rng))
            except TimeoutError:
                abandoned = True
                self.ep.ua.cancel(self.key, self.pbx, loop.time())
                self.ep.flush()
                final = await asyncio.wait_for(self.final, CANCEL_WAIT)
            self.counted = True
            if isinstance(final, RequestFailed):
                report.failed += 1
                return
            status = final.response.status
            if status >= 300:
                if abandoned and status == 487:
                    report.abandoned += 1
                elif 500 <= status < 600:
                    report.failed += 1
                else:
                    report.rejected += 1
                report.statuses[status] = report.statuses.get(status, 0) + 1
                return
            report.answered += 1
            report.answer_waits.append(loop.time() - sent_at)
            if not self.rang:
                report.pbx_answered += 1
            await self._talk(oa, final, abandoned)
        finally:
            if self.key is not None:
                self.ep.unwatch_key(self.key)
            self.ep.unwatch_dialog(self.call_id, self.tag)

    async def _talk(self, oa: OfferAnswer, final: ResponseIn, abandoned: bool) -> None:
        cfg, rng = self.owner.config, self.owner.rng
        media = self.ep.media
        if abandoned:  # a 2xx crossed our CANCEL: hang up at once
            cap = 0.0
        elif self.rang:  # a device answered: it hangs up, after its own talk time
            cap = cfg.talk_time.cap + 30.0
        else:  # the PBX answered (voicemail, a menu): we say our piece and hang up
            cap = cfg.talk_time.draw(rng)
        streaming: asyncio.Task[None] | None = None
        if cfg.rtp and media is not None and not abandoned:
            try:
                negotiated = oa.receive_answer(parse_sdp(final.response.body))
            except MediaError:
                negotiated = None
            if negotiated is not None and negotiated.sends:
                remote = (negotiated.remote_address, negotiated.remote_port)
                streaming = asyncio.get_running_loop().create_task(
                    media.stream(remote, negotiated.payload_type, cap, rng)
                )
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.bye), cap)
        finally:
            if streaming is not None:
                streaming.cancel()
        if not self.bye.done():
            self._hangup(final)

    def _hangup(self, final: ResponseIn) -> None:
        dialog = final.dialog
        if dialog is None:
            return
        ua = self.ep.ua
        bye = ua.create_request(dialog, "BYE", self.pbx)
        ua.forget_dialog(dialog)
        self.ep.send(bye, self.pbx, lambda _e: None)

    def _response(self, event: UaEvent) -> None:
        if isinstance(event, RequestFailed):
            if not self.final.done():
                self.final.set_result(event)
            return
        if not isinstance(event, ResponseIn) or event.response.cseq.method != "INVITE":
            return
        status = event.response.status
        if status < 200:
            self.rang = self.rang or status in (180, 183)
            return
        if 200 <= status < 300 and event.dialog is not None and event.request is not None:
            self.ep.ua.send_ack(event.dialog, event.request, self.pbx)
        if not self.final.done():
            self.final.set_result(event)

    def _in_dialog(self, event: UaEvent) -> None:
        if isinstance(event, IncomingRequest):
            self.ep.reply(event, 200, to_tag=self.tag)
            if event.request.method == "BYE":
                if event.dialog is not None:
                    self.ep.ua.forget_dialog(event.dialog)
                if not self.bye.done():
                    self.bye.set_result(None)
