"""Employees' phones: register with digest as ``<ext>@<slug>.zvonar`` and answer calls.

Each device rings for a drawn answer delay (180 Ringing, then 200 OK with SDP), or answers
486 Busy Here with ``busy_probability`` (and always while on a call when
``one_call_per_device``); once answered it sends G.711 silence if asked and hangs up
(BYE) after a drawn talk time, unless the PBX ends the call first (BYE or CANCEL).
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from zvonar.media.errors import MediaError
from zvonar.media.offer_answer import LocalMedia
from zvonar.media.offer_answer_dialog import OfferAnswer
from zvonar.media.sdp import parse_sdp
from zvonar.sim.config import SimConfig, SimReport
from zvonar.sim.endpoint import Endpoint, Handler
from zvonar.sip.auth import ClientCredentials
from zvonar.sip.body import SDP
from zvonar.sip.dialog import DialogId
from zvonar.sip.message import make_response
from zvonar.sip.outbound import (
    OutboundRegistration,
    Registered,
    RegistrationConfig,
    RegistrationFailed,
)
from zvonar.sip.ua import (
    CancelRequested,
    Flow,
    IncomingRequest,
    RegistrationUpdate,
    RequestFailed,
    ResponseIn,
    UaEvent,
)
from zvonar.sip.uri import SipUri

__all__ = ["Device", "Devices", "SimError"]


class SimError(Exception):
    """The simulation could not run (registration refused, PBX unreachable)."""


@dataclass
class Device:
    ext: str
    password: str
    busy_probability: float | None = None  # None: the config's
    active: int = 0
    registration: OutboundRegistration | None = None


class Devices:
    """N employee devices on one :class:`Endpoint`; see the module docstring."""

    def __init__(
        self,
        endpoint: Endpoint,
        pbx: Flow,
        realm: str,
        devices: Sequence[Device],
        config: SimConfig,
        report: SimReport,
        rng: random.Random,
    ) -> None:
        self.endpoint = endpoint
        self.pbx = pbx
        self.realm = realm
        self.devices = {d.ext: d for d in devices}
        self.config = config
        self.report = report
        self.rng = rng
        self.calls: set[_Answer] = set()
        endpoint.on_invite = self._invite

    async def register(self, within: float = 5.0, expires: int = 300) -> None:
        """Register every device; :class:`SimError` if any is refused or not answered."""
        ep = self.endpoint
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future[str | None]] = {}
        for ext, device in self.devices.items():
            fut: asyncio.Future[str | None] = loop.create_future()
            waiting[ext] = fut
            reg = OutboundRegistration(
                RegistrationConfig(
                    registrar=SipUri("sip", None, None, self.realm),
                    aor=SipUri("sip", ext, None, self.realm),
                    contact=SipUri("sip", ext, None, ep.flow.host, ep.flow.port),
                    via=f"SIP/2.0/UDP {ep.flow.host}:{ep.flow.port}",
                    credentials=ClientCredentials(ext, device.password),
                    expires=expires,
                    user_agent="zvonar-sim",
                ),
                rng=self.rng,
            )
            device.registration = reg
            ep.register(reg, self.pbx, _registered(fut))
        try:
            async with asyncio.timeout(within):
                results = {ext: await fut for ext, fut in waiting.items()}
        except TimeoutError:
            raise SimError("the PBX did not answer the devices' REGISTERs") from None
        refused = {ext: why for ext, why in results.items() if why is not None}
        if refused:
            raise SimError(f"registration refused: {refused}")

    async def close(self, within: float = 5.0) -> None:
        """Hang up what is still up (BYE) and wait for it, bounded."""
        tasks = [c.task for c in self.calls if c.task is not None]
        for call in list(self.calls):
            call.hangup()
        if tasks:
            await asyncio.wait(tasks, timeout=within)

    def _invite(self, inc: IncomingRequest) -> None:
        user = inc.request.uri.user if isinstance(inc.request.uri, SipUri) else None
        device = self.devices.get(user or "")
        if device is None:
            self.endpoint.reply(inc, 404)
            return
        busy = self.config.busy_probability
        if device.busy_probability is not None:
            busy = device.busy_probability
        if self.rng.random() < busy or (self.config.one_call_per_device and device.active):
            self.report.device_busy += 1
            self.endpoint.reply(inc, 486)
            return
        call = _Answer(self, device, inc)
        self.calls.add(call)
        call.start()


def _registered(fut: asyncio.Future[str | None]) -> Handler:
    def handler(event: UaEvent) -> None:
        if not isinstance(event, RegistrationUpdate) or fut.done():
            return
        if isinstance(event.event, Registered):
            fut.set_result(None)
        elif isinstance(event.event, RegistrationFailed):
            fut.set_result(f"{event.event.status} {event.event.reason}")

    return handler


class _Answer:
    """One INVITE a device serves, from ringing to the end of the dialog."""

    def __init__(self, owner: Devices, device: Device, inc: IncomingRequest) -> None:
        self.owner = owner
        self.device = device
        self.inc = inc
        self.ep = owner.endpoint
        self.tag = self.ep.ua.token()
        self.req = inc.request
        self.remote_tag = self.req.from_.tag or ""
        self.answered = False
        self.over = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.device.active += 1
        self.ep.watch_key(self.inc.key, self._event)
        self.ep.watch_dialog(self.req.call_id, self.tag, self._event)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        cfg, rng = self.owner.config, self.owner.rng
        try:
            delay = cfg.answer_delay.draw(rng)
            if delay > 0:
                self._respond(180)
                await asyncio.sleep(delay)
            media = self.ep.media
            if media is None:
                raise SimError("the endpoint has no media socket")
            oa = OfferAnswer(
                LocalMedia(media.host, media.port, username="sim"),
                session_id=zlib.crc32(self.tag.encode()) or 1,
            )
            try:
                answer, negotiated = oa.receive_offer(parse_sdp(self.req.body))
            except MediaError:
                self._respond(488)
                return
            self._respond(200, answer.serialize().encode())
            self.answered = True
            self.owner.report.device_answers += 1
            talk = cfg.talk_time.draw(rng)
            if cfg.rtp and negotiated.sends:
                remote = (negotiated.remote_address, negotiated.remote_port)
                await media.stream(remote, negotiated.payload_type, talk, rng)
            else:
                await asyncio.sleep(talk)
            self.hangup()
        except asyncio.CancelledError:
            pass
        finally:
            self._done()

    def _respond(self, status: int, body: bytes = b"") -> None:
        headers: tuple[tuple[str, str], ...] = ()
        if 100 < status < 300:
            headers = (("Contact", f"<{self.ep.ua.contact_uri(self.inc.flow, self.device.ext)}>"),)
        resp = make_response(self.req, status, to_tag=self.tag, headers=headers)
        if body:
            resp = resp.with_body(body, SDP)
        self.ep.respond(self.inc, resp)

    def hangup(self) -> None:
        """BYE an answered call (once); a ringing one is refused 480 instead."""
        if self.over:
            return
        self.over = True
        if self.task is not None and asyncio.current_task() is not self.task:
            self.task.cancel()
        ua = self.ep.ua
        dialog = ua.dialogs.get(DialogId(self.req.call_id, self.tag, self.remote_tag))
        if not self.answered:
            self._respond(480)
            return
        if dialog is None:
            return
        bye = ua.create_request(dialog, "BYE", self.inc.flow)
        ua.forget_dialog(dialog)
        self.ep.send(bye, self.inc.flow, lambda _e: None)

    def _event(self, event: UaEvent) -> None:
        if isinstance(event, IncomingRequest) and event.request.method == "BYE":
            self.over = True
            self.ep.reply(event, 200, to_tag=self.tag)
            if event.dialog is not None:
                self.ep.ua.forget_dialog(event.dialog)
            self._stop()
        elif isinstance(event, IncomingRequest):
            self.ep.reply(event, 200, to_tag=self.tag)
        elif isinstance(event, CancelRequested):
            self.over = True
            self.ep.respond(event, make_response(event.invite, 487, to_tag=self.tag))
            self._stop()
        elif isinstance(event, ResponseIn | RequestFailed):
            pass

    def _stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _done(self) -> None:
        self.device.active -= 1
        self.ep.unwatch_key(self.inc.key)
        self.ep.unwatch_dialog(self.req.call_id, self.tag)
        self.owner.calls.discard(self)
