"""The user-agent core, sans-IO: one object between the transports and the application.

`UserAgent` takes raw messages (`receive(data, flow, now)`) and turns them into application
events (ua/events.py), doing on the way what the RFCs ask of the edge:

- every input is classified by `message.classify_datagram`: broken requests are answered
  statelessly (400 with the reason, 505, 513 for an oversize datagram, …) and broken
  responses dropped, all counted (RFC 3261 §18.2, RFC 4475); nothing a peer sends raises;
- the `SecurityPolicy` sees the source before parsing (blocked IPs) and every request
  after (scanners, floods), and hears about failed digest logins;
- requests are checked per §8.2.1-8.2.2 (405 + Allow, 416, 420 + Unsupported; ua/edge.py);
- 100rel (RFC 3262, ua/reliable.py) and session timers (RFC 4028, ua/session_timer.py) are
  the UA's own: the application never sees a PRACK or a refresh, only `SessionExpired`;
- one `TransactionLayer` per transport ("UDP", "TCP") runs the §17 machines; it adds
  RFC 3581 received/rport to the top Via and answers to the received address/rport;
- the `DialogLayer` sees every request and response: it answers 481 / 500 / 491 itself
  (§12.2.2, §14) and hands the application the `Dialog` of each event; 2xx
  retransmissions are re-ACKed here (§13.2.2.4);
- REGISTER goes to the `Registrar` after the `DigestChallenger` (§10.3, §22);
- outbound registrations (`outbound.OutboundRegistration`) ride on client transactions;
- what the transaction layers report becomes application events in ua/translate.py.

The application answers with `respond`, starts requests with `send_request` (building
in-dialog ones with `create_request` / `send_ack`), and reads `events()`; the I/O runner
reads `datagrams_to_send(now)` and arms one timer at `next_deadline()`. Destinations are
`Flow`s (transport, host, port): the runner picks the socket or connection from them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence

from zvonar.sip.auth import Authorized, Challenge, DigestChallenger, auth_response
from zvonar.sip.dialog import Dialog, DialogId, DialogLayer
from zvonar.sip.errors import SipError
from zvonar.sip.headers import parse_via
from zvonar.sip.location import Binding
from zvonar.sip.message import (
    Drop,
    ParsedOk,
    Reject,
    SipMessage,
    SipRequest,
    SipResponse,
    classify_datagram,
    make_response,
)
from zvonar.sip.outbound import OutboundRegistration, RegistrationState
from zvonar.sip.registrar import Registrar
from zvonar.sip.security import Allow, SecurityPolicy
from zvonar.sip.security import Drop as SecurityDrop
from zvonar.sip.transaction import TimerConfig, TransactionKey, TransactionLayer, new_branch
from zvonar.sip.ua import reliable, session_timer, translate
from zvonar.sip.ua.edge import Headers, oversize_request, reason_text, refusal, response_dest
from zvonar.sip.ua.events import (
    AckReceived,
    AckTimeout,
    BindingNotice,
    CancelRequested,
    Flow,
    IncomingRequest,
    RegistrationUpdate,
    RequestFailed,
    ResponseIn,
    SecurityNotice,
    SessionExpired,
    UaCounters,
    UaEvent,
)
from zvonar.sip.ua.reliable import REL, Reliable
from zvonar.sip.ua.session_timer import TIMER, SessionTimers
from zvonar.sip.uri import SipUri

__all__ = [
    "COMPLETED_ELSEWHERE",
    "DEFAULT_ALLOW",
    "AckReceived",
    "AckTimeout",
    "BindingNotice",
    "CancelRequested",
    "Flow",
    "IncomingRequest",
    "RegistrationUpdate",
    "RequestFailed",
    "ResponseIn",
    "SecurityNotice",
    "SessionExpired",
    "UaCounters",
    "UaEvent",
    "UserAgent",
]

DEFAULT_ALLOW = (
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK",
)  # fmt: skip
# RFC 3326 §2 (its example): the CANCEL to the forks that lost to another's answer, so a
# phone does not list a call someone else took as missed.
COMPLETED_ELSEWHERE = (("Reason", 'SIP;cause=200;text="Call completed elsewhere"'),)
# The dialog layer sees our responses to these even outside a dialog: their 2xx creates one.
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE"})


class UserAgent:
    """The sans-IO UA core. See the module docstring."""

    def __init__(
        self,
        *,
        timers: TimerConfig | None = None,
        security: SecurityPolicy | None = None,
        registrar: Registrar | None = None,
        challenger: DigestChallenger | None = None,
        dialogs: DialogLayer | None = None,
        allow: Iterable[str] = DEFAULT_ALLOW,
        supported: Iterable[str] = (),
        max_size: int = 65535,
        min_session_expires: int = session_timer.MIN_SE,
        token: Callable[[], str] = lambda: secrets.token_hex(8),
        user_agent: str = "Zvonar",
    ) -> None:
        self.timers = timers or TimerConfig()
        self.security = security
        self.registrar = registrar
        self.challenger = challenger
        self.dialogs = dialogs or DialogLayer(token=token)
        self.allow = frozenset(allow)
        self.allow_header = ", ".join(sorted(self.allow))
        # The event packages the application notifies (RFC 6665 §4.4.4: OPTIONS answers list
        # them); set by whoever takes SUBSCRIBEs (pbx/blf.py).
        self.allow_events: tuple[str, ...] = ()
        # 100rel and timer are the UA's own (ua/reliable.py, ua/session_timer.py): an INVITE
        # may require them.
        self.supported = frozenset(s.lower() for s in supported) | {REL, TIMER}
        self.reliable = Reliable(self.timers.t1)
        self.sessions = SessionTimers(min_session_expires)
        self.max_size = max_size
        self.token = token
        self.user_agent = user_agent
        self.counters = UaCounters()
        self._layers: dict[str, TransactionLayer] = {}
        self._events: list[UaEvent] = []
        self._out: list[tuple[bytes, Flow]] = []
        self._locals: dict[tuple[str, int], tuple[str, int]] = {}  # (transport, family) → addr
        self._flows: dict[TransactionKey, Flow] = {}  # live transactions' peers
        self._registrations: dict[TransactionKey, tuple[OutboundRegistration, Flow]] = {}
        self._reg_flows: dict[int, tuple[OutboundRegistration, Flow]] = {}
        self._ack_flows: dict[DialogId, Flow] = {}  # where each dialog's ACK went

    # -- configuration ------------------------------------------------------------------------

    def set_local_address(self, transport: str, host: str, port: int) -> None:
        """Tell the core where it listens (for Via sent-by and Contact), per IP family."""
        self._locals[(transport, 6 if ":" in host else 4)] = (host, port)

    def local_address(self, transport: str, family: int = 4) -> tuple[str, int]:
        addr = self._locals.get((transport, family))
        if addr is None:
            raise SipError(f"no local {transport} IPv{family} address configured")
        return addr

    def local_for(self, flow: Flow) -> tuple[str, int]:
        return self.local_address(flow.transport, 6 if ":" in flow.host else 4)

    def via_for(self, flow: Flow, branch: str | None = None) -> str:
        """A top Via for a request we send over `flow` (§8.1.1.7, RFC 3581 rport)."""
        host, port = self.local_for(flow)
        sent_by = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"SIP/2.0/{flow.transport} {sent_by};branch={branch or self.new_branch()};rport"

    def contact_uri(self, flow: Flow, user: str | None = None) -> SipUri:
        host, port = self.local_for(flow)
        params: tuple[tuple[str, str | None], ...] = (
            () if flow.transport == "UDP" else (("transport", flow.transport.lower()),)
        )
        return SipUri("sip", user, None, f"[{host}]" if ":" in host else host, port, params)

    def new_branch(self) -> str:
        return new_branch(self.token)

    def layer(self, transport: str) -> TransactionLayer:
        layer = self._layers.get(transport)
        if layer is None:
            layer = self._layers[transport] = TransactionLayer(self.timers, token=self.token)
        return layer

    # -- outputs ------------------------------------------------------------------------------

    def events(self) -> list[UaEvent]:
        out, self._events = self._events, []
        return out

    def emit(self, event: UaEvent) -> None:
        """An event of the UA's own extensions (ua/session_timer.py) for the application."""
        self._events.append(event)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Flow]]:
        out = self._out
        for name, layer in self._layers.items():
            for data, addr in layer.datagrams_to_send(now):
                out.append((data, Flow(name, addr[0], addr[1])))
        self._out = []
        return out

    def next_deadline(self) -> float | None:
        # Asked after every message the runner handles: no intermediate lists.
        best: float | None = None
        for layer in self._layers.values():
            t = layer.next_deadline()
            if t is not None and (best is None or t < best):
                best = t
        for reg, _flow in self._reg_flows.values():
            t = reg.next_deadline()
            if t is not None and (best is None or t < best):
                best = t
        for t in (
            self.security.next_deadline() if self.security is not None else None,
            self.registrar.next_deadline() if self.registrar is not None else None,
            self.reliable.next_deadline(),
            self.sessions.next_deadline(),
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> None:
        for layer in self._layers.values():
            layer.handle_timer(now)
        for reg, flow in list(self._reg_flows.values()):
            reg.handle_timer(now)
            self._pump_registration(reg, flow, now)
        if self.security is not None:
            self.security.handle_timer(now)
        if self.registrar is not None:
            self.registrar.handle_timer(now)
        reliable.retransmit(self, now)  # RFC 3262 §3: a reliable 1xx until its PRACK
        session_timer.due(self, now)  # RFC 4028: refreshes to send, silent peers given up
        translate.collect(self, now)

    # -- network input ------------------------------------------------------------------------

    def receive(self, data: bytes, flow: Flow, now: float, *, truncated: bool = False) -> None:
        """One datagram or one framed stream message from `flow`. Never raises SipError."""
        security = self.security
        if security is not None and isinstance(
            security.check_source(flow.address, now), SecurityDrop
        ):
            self.counters.blocked += 1
            return
        verdict = classify_datagram(data, max_size=self.max_size)
        if truncated:
            self._oversize(verdict, flow)
        elif isinstance(verdict, ParsedOk):
            self._dispatch(verdict.message, flow, now)
        elif isinstance(verdict, Reject):
            reason = reason_text(verdict.response().reason, verdict.reason)
            self._reject(verdict.request, verdict.status, reason, flow)
        elif verdict.reason == "keep-alive":
            self.counters.keepalives += 1
        else:
            self.counters.dropped_malformed += 1

    def transport_error(self, flow: Flow, now: float) -> None:
        """The runner could not deliver to `flow` (connect failed, connection lost)."""
        layer = self._layers.get(flow.transport)
        if layer is not None:
            layer.transport_error(flow.address, now)
            translate.collect(self, now)

    def _oversize(self, verdict: ParsedOk | Reject | Drop, flow: Flow) -> None:
        request = oversize_request(verdict)
        if request is None:
            self.counters.dropped_oversize += 1
            return
        self._reject(request, 513, f"Message Too Large (limit {self.max_size} bytes)", flow)

    def _dispatch(self, msg: SipMessage, flow: Flow, now: float) -> None:
        if isinstance(msg, SipResponse):
            self.counters.responses_received += 1
            self.layer(flow.transport).receive(msg, flow.address, now, reliable=flow.reliable)
            translate.collect(self, now)
            return
        self.counters.requests_received += 1
        if self.security is not None:
            decision = self.security.check_request(msg, flow.address, now)
            if isinstance(decision, SecurityDrop):
                self.counters.blocked += 1
                return
            if not isinstance(decision, Allow):
                self._reject(msg, decision.status, decision.reason, flow, decision.headers)
                return
        if msg.method not in ("ACK", "CANCEL"):
            refused = refusal(msg, self.allow, self.allow_header, self.supported)
            if refused is None and msg.method in session_timer.REFRESHED:
                refused = session_timer.refusal(self, msg)  # 422: interval too small
            if refused is not None:
                status, reason, headers = refused
                self._reject(msg, status, reason, flow, headers)
                return
        self.layer(flow.transport).receive(msg, flow.address, now, reliable=flow.reliable)
        translate.collect(self, now)

    def _reject(
        self, request: SipRequest, status: int, reason: str, flow: Flow, headers: Headers = ()
    ) -> None:
        """A stateless error response (§8.2.6), to the Via's received/rport address."""
        if request.method == "ACK":  # §17: an ACK is never answered
            self.counters.dropped_malformed += 1
            return
        if status < 500:
            self.counters.rejected_4xx += 1
        else:
            self.counters.rejected_5xx += 1
        try:
            response = make_response(request, status, reason, to_tag=self.token(), headers=headers)
            dest = response_dest(request, flow)
            wire = response.serialize()
        except (SipError, ValueError):
            return  # too broken even to answer: counted above, dropped
        self._out.append((wire, dest))

    # -- application output -------------------------------------------------------------------

    def respond(
        self, incoming: IncomingRequest | CancelRequested, response: SipResponse, now: float
    ) -> bool:
        """Answer a request (or the INVITE a CANCEL targets) through its server transaction.

        The dialog layer sees the response (creating the UAS dialog of a 1xx/2xx to an
        INVITE, §12.1.1). False if the transaction no longer takes it.
        """
        request = incoming.request if isinstance(incoming, IncomingRequest) else incoming.invite
        negotiated = None
        if request.method == "INVITE":  # 100rel (ua/reliable.py) may stamp or queue it
            out = reliable.outgoing(self, incoming, response)
            if out is None:
                return True
            response = out
        if request.method in session_timer.REFRESHED and 200 <= response.status < 300:
            response, negotiated = session_timer.answer(self, request, response)
        accepted = self.layer(incoming.flow.transport).send_response(response, now)
        if accepted and (request.method in _DIALOG_CREATING or request.to.tag is not None):
            dialog = self.dialogs.on_response_sent(request, response)
            if dialog is not None:
                reliable.sent(self, incoming, dialog, response, now)
                if negotiated is not None:
                    session_timer.answered_by_us(
                        self, dialog, incoming.flow, request, response, negotiated, now
                    )
        translate.collect(self, now)
        return accepted

    def reply(
        self,
        incoming: IncomingRequest,
        status: int,
        now: float,
        headers: Headers = (),
        reason: str | None = None,
    ) -> bool:
        """A final answer of ``status`` with no body (a new To tag outside a dialog), through
        the request's transaction (``respond``)."""
        response = make_response(
            incoming.request, status, reason, to_tag=self.token(), headers=headers
        )
        return self.respond(incoming, response, now)

    def send_request(self, request: SipRequest, flow: Flow, now: float) -> TransactionKey:
        """Send a request (not ACK) in a new client transaction to `flow`."""
        key = self.layer(flow.transport).send_request(request, flow.address, now, flow.reliable)
        self._flows[key] = flow
        translate.collect(self, now)
        return key

    def create_request(
        self,
        dialog: Dialog,
        method: str,
        flow: Flow,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """The next request in `dialog` (§12.2.1.1), with our Via for `flow`; an INVITE or
        UPDATE in a dialog with a session timer carries it (ua/session_timer.py)."""
        via = parse_via(self.via_for(flow))
        headers = session_timer.stamp(self.sessions, dialog, method, tuple(headers))
        headers = (*headers, ("User-Agent", self.user_agent))
        return self.dialogs.create_request(
            dialog, method, via, headers=headers, body=body, content_type=content_type
        )

    def send_ack(self, dialog: Dialog, invite: SipRequest, flow: Flow, sdp: bytes = b"") -> None:
        """ACK a 2xx (§13.2.2.4): outside any transaction; remembered for retransmissions.
        ``sdp``: our answer, when the 2xx made the offer (§13.2.1)."""
        ack = self.dialogs.create_ack(dialog, invite, parse_via(self.via_for(flow)), sdp=sdp)
        self._ack_flows[dialog.id] = flow
        self.send_stateless(ack, flow)

    def send_stateless(self, message: SipMessage, flow: Flow) -> None:
        """A message outside any transaction (an ACK for a 2xx, a stateless reply)."""
        self._out.append((message.serialize(), flow))

    def cancel(
        self,
        key: TransactionKey,
        flow: Flow,
        now: float,
        *,
        headers: Sequence[tuple[str, str]] = (),
    ) -> TransactionKey | None:
        """CANCEL our pending INVITE (§9.1); None if it is too late. ``headers``: more for the
        CANCEL to carry (``Reason``, RFC 3326: see :data:`COMPLETED_ELSEWHERE`)."""
        cancel_key = self.layer(flow.transport).cancel(key, now, headers=headers)
        if cancel_key is not None:
            self._flows[cancel_key] = flow
        translate.collect(self, now)
        return cancel_key

    def forget_dialog(self, dialog: Dialog) -> None:
        """Drop a dialog the application is done with (e.g. after BYE or a failed INVITE)."""
        self.dialogs.terminate(dialog.id)
        self._ack_flows.pop(dialog.id, None)
        self.reliable.invite_over(dialog.id.call_id)
        self.sessions.forget(dialog.id)

    # -- outbound registrations ---------------------------------------------------------------

    def add_registration(self, registration: OutboundRegistration, flow: Flow, now: float) -> None:
        """Host a registration towards the registrar at `flow` and start it."""
        self._reg_flows[id(registration)] = (registration, flow)
        registration.start(now)
        self._pump_registration(registration, flow, now)

    def move_registration(self, registration: OutboundRegistration, flow: Flow) -> None:
        """Send ``registration``'s next requests (its retry, its refreshes) to ``flow``: the
        registrar's next server after this one failed (RFC 3263 §4.3)."""
        if id(registration) in self._reg_flows:
            self._reg_flows[id(registration)] = (registration, flow)

    def stop_registration(self, registration: OutboundRegistration, now: float) -> None:
        """Unregister (Expires: 0); the registration leaves the UA once that completes."""
        entry = self._reg_flows.get(id(registration))
        if entry is not None:
            registration.stop(now)
            self._pump_registration(registration, entry[1], now)

    @property
    def registrations(self) -> list[OutboundRegistration]:
        """The outbound registrations hosted here that have not been stopped yet."""
        return [reg for reg, _flow in self._reg_flows.values()]

    def _pump_registration(self, reg: OutboundRegistration, flow: Flow, now: float) -> None:
        for request in reg.requests_to_send():
            key = self.send_request(request, flow, now)
            self._registrations[key] = (reg, flow)
        for event in reg.events():
            self._events.append(RegistrationUpdate(reg, event))
        if reg.state is RegistrationState.STOPPED:
            self._reg_flows.pop(id(reg), None)

    # -- registrar and digest -----------------------------------------------------------------

    def authenticate(self, incoming: IncomingRequest, now: float) -> str | None:
        """Digest-check a request (§22); the authenticated username, or None once answered.

        Without a challenger every request passes (returns ""). On a challenge or a refusal
        the 401/407 is sent here and refusals are reported to the security policy.
        """
        if self.challenger is None:
            return ""
        result = self.challenger.check(incoming.request, now)
        if isinstance(result, Authorized):
            return result.username
        self.counters.auth_challenges += 1
        if not isinstance(result, Challenge):  # Failed: wrong password, replay, unknown user
            self.counters.auth_failures += 1
            if self.security is not None:
                self.security.record_auth_failure(incoming.flow.address, result.username, now)
        self.respond(incoming, auth_response(incoming.request, result, to_tag=self.token()), now)
        return None

    def lookup(self, aor: str | SipUri, now: float) -> list[Binding]:
        """Live bindings of an AOR (a str is a canonical `location.aor_key`); [] without one."""
        return [] if self.registrar is None else self.registrar.lookup(aor, now)

    @staticmethod
    def binding_flow(binding: Binding) -> Flow:
        """Where to send a request for a binding: the flow its REGISTER came over (RFC 3581)."""
        target = binding.target
        return Flow(target.transport, target.host.strip("[]"), target.port)

    def _register(self, incoming: IncomingRequest, now: float) -> None:
        if self.registrar is None:
            return
        user = self.authenticate(incoming, now)
        if user is None:
            return
        flow = incoming.flow
        flow_id = f"{flow.transport}:{flow.host}:{flow.port}" if flow.reliable else None
        response = self.registrar.handle_register(
            incoming.request, flow.address, flow.transport, flow_id, now, user=user or None
        )
        self.respond(incoming, response, now)
