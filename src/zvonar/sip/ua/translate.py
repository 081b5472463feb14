"""Transaction events into application events: the UA core's inner half (ua/__init__.py).

After every input (a datagram, a timer, the application's own response or request) the UA
drains its transaction layers and :func:`collect` turns what they report into ``UaEvent``s,
doing on the way what the application must never see: REGISTER goes to the registrar,
requests pass the dialog layer's checks (481 / 491 / 500), PRACKs and session refreshes and
their answers stay in ua/reliable.py and ua/session_timer.py, retransmitted 2xx are
re-ACKed (§13.2.2.4), outbound registrations get their responses and failures. These are
the ``UserAgent``'s own steps over its own state (flows, registrations, event list), kept
in a module of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zvonar.sip.message import SipResponse
from zvonar.sip.transaction import (
    AckFor2xx,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from zvonar.sip.transaction import AckTimeout as TxnAckTimeout
from zvonar.sip.ua import reliable, session_timer
from zvonar.sip.ua.events import (
    AckReceived,
    AckTimeout,
    BindingNotice,
    CancelRequested,
    Flow,
    IncomingRequest,
    RequestFailed,
    ResponseIn,
    SecurityNotice,
)

if TYPE_CHECKING:
    from zvonar.sip.ua import UserAgent

__all__ = ["NOWHERE", "collect"]

NOWHERE = Flow("UDP", "", 0)  # the flow of an event whose own is forgotten


def collect(ua: UserAgent, now: float) -> None:
    """Turn the layers' events into application events, at once (so `now` is right)."""
    for name, layer in ua._layers.items():
        for event in layer.events():
            _translate(ua, name, event, now)
    if ua.security is not None:
        ua._events.extend(SecurityNotice(e) for e in ua.security.events())
    if ua.registrar is not None:
        ua._events.extend(BindingNotice(e) for e in ua.registrar.events())


def _translate(ua: UserAgent, transport: str, event: object, now: float) -> None:
    if isinstance(event, RequestReceived):
        _request(ua, transport, event, now)
    elif isinstance(event, AckFor2xx):
        check = ua.dialogs.on_request(event.request)
        flow = Flow(transport, event.source[0], event.source[1])
        ua._events.append(AckReceived(event.request, flow, check.dialog))
    elif isinstance(event, ResponseReceived):
        _response(ua, transport, event, now)
    elif isinstance(event, CancelReceived):
        flow = ua._flows.get(event.key, NOWHERE)
        ua._events.append(CancelRequested(event.key, event.request, event.cancel, flow))
    elif isinstance(event, TransactionTimeout | TransportError):
        if event.key.server:
            return  # Timer H: the ACK for our error response never came (§17.2.1)
        _client_failed(ua, event, now)
    elif isinstance(event, TxnAckTimeout):
        flow = ua._flows.get(event.key, NOWHERE)
        ua._events.append(AckTimeout(event.response, flow))
    elif isinstance(event, TransactionTerminated):
        ua._flows.pop(event.key, None)
        ua._registrations.pop(event.key, None)


def _request(ua: UserAgent, transport: str, event: RequestReceived, now: float) -> None:
    flow = Flow(transport, event.source[0], event.source[1])
    ua._flows[event.key] = flow
    incoming = IncomingRequest(event.request, flow, event.key)
    if event.request.method == "REGISTER" and ua.registrar is not None:
        ua._register(incoming, now)
        return
    check = ua.dialogs.on_request(event.request)
    if check.response is not None:  # 481 / 500 / 491 / 400 (§12.2.2, §14.2)
        ua.respond(incoming, check.response, now)
        return
    if check.dialog is not None:
        incoming = IncomingRequest(event.request, flow, event.key, check.dialog)
        if event.request.method == "PRACK":  # RFC 3262: the UA's own business
            reliable.on_prack(ua, incoming, check.dialog.id, now)
            return
    ua._events.append(incoming)


def _response(ua: UserAgent, transport: str, event: ResponseReceived, now: float) -> None:
    key, response = event.key, event.response
    if _reack(ua, response) or key is None:
        return  # a 2xx retransmission (RFC 6026 Accepted state or stray) or a stray
    reg = ua._registrations.get(key)
    if reg is not None:
        if response.status >= 200:
            del ua._registrations[key]
        reg[0].receive_response(response, now)
        ua._pump_registration(reg[0], reg[1], now)
        return
    if key in ua.reliable.pracks:  # the answer to our PRACK: nothing for the application
        if response.status >= 200:
            ua.reliable.pracks.discard(key)
        return
    dialog = None
    if event.request is not None:
        dialog = ua.dialogs.on_response(event.request, response)
    flow = ua._flows.get(key, Flow(transport, "", 0))
    if key in ua.sessions.refreshes:  # a refresh of our own (RFC 4028): not shown
        session_timer.refresh_answered(
            ua, ResponseIn(key, response, event.request, flow, dialog), now
        )
        return
    if response.cseq.method == "INVITE":
        if response.status >= 200:
            ua.reliable.invite_over(response.call_id)  # no more provisionals to PRACK
        elif (
            dialog is not None
            and response.status > 100
            and not reliable.on_provisional(ua, dialog, response, flow, now)
        ):
            return
    response_in = ResponseIn(key, response, event.request, flow, dialog)
    if 200 <= response.status < 300 and response.cseq.method in session_timer.REFRESHED:
        session_timer.answered(ua, response_in, now)  # RFC 4028 §7.2
    ua._events.append(response_in)


def _reack(ua: UserAgent, response: SipResponse) -> bool:
    """Re-send our ACK for a retransmitted 2xx we already ACKed (§13.2.2.4)."""
    if not (200 <= response.status < 300 and response.cseq.method == "INVITE"):
        return False
    dialog = ua.dialogs.find_for_response(response)
    if dialog is None or dialog.last_ack is None:
        return False
    if dialog.last_ack.cseq.seq != response.cseq.seq:
        return False
    flow = ua._ack_flows.get(dialog.id)
    if flow is not None:
        ua.send_stateless(dialog.last_ack, flow)
    return True


def _client_failed(ua: UserAgent, event: TransactionTimeout | TransportError, now: float) -> None:
    status = 408 if isinstance(event, TransactionTimeout) else 503
    if event.key in ua.reliable.pracks:  # an unanswered PRACK: the INVITE decides
        ua.reliable.pracks.discard(event.key)
        return
    if event.key in ua.sessions.refreshes:  # our refresh unanswered: session over
        session_timer.refresh_failed(ua, event.key)
        return
    reg = ua._registrations.pop(event.key, None)
    if reg is not None:
        reg[0].transaction_failed(now, "timeout" if status == 408 else "transport error")
        ua._pump_registration(reg[0], reg[1], now)
        return
    dialog = ua.dialogs.on_timeout(event.request) if event.request.to.tag else None
    flow = ua._flows.get(event.key, NOWHERE)
    ua._events.append(RequestFailed(event.key, event.request, status, flow, dialog))
