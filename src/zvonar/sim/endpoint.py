"""One simulated SIP host on loopback: our UA core on a UDP socket plus one media socket.

The simulator's phones (devices and callers) are many SIP users on one `Endpoint`: the
endpoint is the runner's application and hands each UA event to whoever waits for it — the
owner of a client transaction (by key), of a dialog (by Call-ID and our tag), of a pending
INVITE we serve (its CANCEL) or of a registration. Media is one UDP socket per endpoint:
every call's RTP goes out of it and whatever arrives is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from zvonar.media.g711 import ULAW_SILENCE
from zvonar.media.rtp import RtpPacketizer
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.outbound import OutboundRegistration
from zvonar.sip.transaction import TransactionKey
from zvonar.sip.ua import (
    AckReceived,
    CancelRequested,
    Flow,
    IncomingRequest,
    RegistrationUpdate,
    RequestFailed,
    ResponseIn,
    UaEvent,
    UserAgent,
)

__all__ = ["Endpoint", "Handler", "MediaPort"]

Handler = Callable[[UaEvent], None]
FRAME = bytes([ULAW_SILENCE]) * 160  # 20 ms of PCMU silence


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.received += 1

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable on loopback
        pass


class MediaPort:
    """One UDP socket: the RTP address every simulated call advertises."""

    def __init__(self, transport: asyncio.DatagramTransport, sink: _Sink) -> None:
        self.transport = transport
        self.sink = sink
        self.sent = 0
        host, port = transport.get_extra_info("sockname")[:2]
        self.host: str = host
        self.port: int = port

    @classmethod
    async def open(cls, host: str) -> MediaPort:
        loop = asyncio.get_running_loop()
        transport, sink = await loop.create_datagram_endpoint(_Sink, local_addr=(host, 0))
        return cls(transport, sink)

    async def stream(
        self, remote: tuple[str, int], payload_type: int, seconds: float, rng: random.Random
    ) -> None:
        """G.711 silence to ``remote`` every 20 ms for ``seconds`` (or until cancelled)."""
        rtp = RtpPacketizer(
            ssrc=rng.getrandbits(32),
            payload_type=payload_type,
            sequence=rng.getrandbits(16),
            timestamp=rng.getrandbits(32),
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while n * 0.02 < seconds and not self.transport.is_closing():
            self.transport.sendto(rtp.packet(FRAME, 160, marker=n == 0).serialize(), remote)
            self.sent += 1
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))

    def close(self) -> None:
        self.transport.close()


class Endpoint:
    """A UA core on one loopback UDP port; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", user_agent: str = "zvonar-sim") -> None:
        self.host = host
        self.ua = UserAgent(user_agent=user_agent)
        self.runner: SipRunner | None = None
        self.media: MediaPort | None = None
        self.flow = Flow("UDP", host, 0)
        self.on_invite: Callable[[IncomingRequest], None] | None = None
        self._keys: dict[TransactionKey, Handler] = {}
        self._dialogs: dict[tuple[str, str], Handler] = {}
        self._regs: dict[int, Handler] = {}
        self._delivering = False

    async def start(self) -> None:
        self.runner = SipRunner(self.ua, self)
        self.flow = await self.runner.listen_udp(self.host, 0)
        self.media = await MediaPort.open(self.host)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.close(unregister_within=1.0)
        if self.media is not None:
            self.media.close()

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- routing of UA events --------------------------------------------------------------

    def handle_event(self, event: UaEvent, now: float) -> None:
        self._delivering = True
        try:
            self._route(event)
        finally:
            self._delivering = False

    def _route(self, event: UaEvent) -> None:
        handler: Handler | None = None
        if isinstance(event, IncomingRequest):
            if event.dialog is not None:
                d = event.dialog.id
                handler = self._dialogs.get((d.call_id, d.local_tag))
                if handler is None:
                    self.reply(event, 481)
                    return
            elif event.request.method == "INVITE" and event.request.to.tag is None:
                if self.on_invite is None:
                    self.reply(event, 480)
                else:
                    self.on_invite(event)
                return
            else:
                self.reply(event, 200 if event.request.method == "OPTIONS" else 481)
                return
        elif isinstance(event, AckReceived):
            if event.dialog is not None:
                d = event.dialog.id
                handler = self._dialogs.get((d.call_id, d.local_tag))
        elif isinstance(event, CancelRequested | RequestFailed):
            handler = self._keys.get(event.key)
        elif isinstance(event, ResponseIn):
            handler = self._keys.get(event.key) if event.key is not None else None
        elif isinstance(event, RegistrationUpdate):
            handler = self._regs.get(id(event.registration))
        if handler is not None:
            handler(event)

    # -- what phones do ------------------------------------------------------------------------

    def watch_key(self, key: TransactionKey, handler: Handler) -> None:
        self._keys[key] = handler

    def unwatch_key(self, key: TransactionKey) -> None:
        self._keys.pop(key, None)

    def watch_dialog(self, call_id: str, local_tag: str, handler: Handler) -> None:
        self._dialogs[(call_id, local_tag)] = handler

    def unwatch_dialog(self, call_id: str, local_tag: str) -> None:
        self._dialogs.pop((call_id, local_tag), None)

    def register(self, registration: OutboundRegistration, pbx: Flow, handler: Handler) -> None:
        self._regs[id(registration)] = handler
        self.ua.add_registration(registration, pbx, self.now)
        self.flush()

    def send(self, request: SipRequest, flow: Flow, handler: Handler) -> TransactionKey:
        key = self.ua.send_request(request, flow, self.now)
        self._keys[key] = handler
        self.flush()
        return key

    def respond(self, incoming: IncomingRequest | CancelRequested, response: SipResponse) -> None:
        self.ua.respond(incoming, response, self.now)
        self.flush()

    def reply(self, incoming: IncomingRequest, status: int, to_tag: str | None = None) -> None:
        tag = to_tag or (None if incoming.request.to.tag else self.ua.token())
        self.respond(incoming, make_response(incoming.request, status, to_tag=tag))

    def flush(self) -> None:
        """Push what the core queued (the runner pumps by itself while delivering)."""
        if self.runner is not None and not self._delivering:
            with contextlib.suppress(RuntimeError):
                self.runner.pump()
