"""Client transactions: INVITE (RFC 3261 §17.1.1, Figure 5) and non-INVITE (§17.1.2, Figure 6).

Each machine is a transition table `(State, Input) -> (effects, next_state)`. An input that
is not in the table is a protocol event the figure does not allow in that state (a late
provisional, a timer of a state already left, a response retransmission): it is absorbed,
never raised. The transaction object interprets the effects: it sends through its sink,
arms timers on the layer's heap and reports to the TU through the sink.

RFC 6026 (on by default, see TimerConfig.rfc6026) adds the INVITE "Accepted" state: after a
2xx the transaction lives for Timer M = 64*T1 and passes 2xx retransmissions to the TU
(which ACKs them end to end) instead of leaving them to stray-response handling.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from zvonar.sip.errors import TransactionError
from zvonar.sip.message import SipMessage, SipRequest, SipResponse
from zvonar.sip.timers import Timer, TimerConfig, TimerSlot
from zvonar.sip.transaction_base import Address, TimedTransaction, TransportSink

if TYPE_CHECKING:
    from zvonar.sip.transaction import TransactionKey

__all__ = [
    "INVITE_CLIENT_TABLE",
    "NON_INVITE_CLIENT_TABLE",
    "Address",
    "ClientEffect",
    "ClientInput",
    "ClientSink",
    "ClientState",
    "ClientTransaction",
    "build_ack_for_non2xx",
    "build_cancel",
]


class ClientState(enum.Enum):
    CALLING = "Calling"  # INVITE only
    TRYING = "Trying"  # non-INVITE only
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"  # RFC 6026, INVITE only
    TERMINATED = "Terminated"


class ClientInput(enum.Enum):
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_K = "Timer K"
    TIMER_M = "Timer M"
    CANCEL_GUARD = "Cancel guard"
    TRANSPORT_ERROR = "Transport error"


class ClientEffect(enum.Enum):
    STOP_TIMERS = enum.auto()  # cancel every running timer of the transaction
    RETRANSMIT = enum.auto()  # pass the request to the transport again
    ARM_A_NEXT = enum.auto()  # §17.1.1.2: reset A with twice its last value
    ARM_E_NEXT = enum.auto()  # §17.1.2.2: reset E with MIN(2*E, T2)
    ARM_E_T2 = enum.auto()  # §17.1.2.2: in Proceeding, E fires every T2
    ARM_D = enum.auto()
    ARM_K = enum.auto()
    ARM_M = enum.auto()
    PASS_TO_TU = enum.auto()
    SEND_ACK = enum.auto()  # §17.1.1.3: ACK for a non-2xx final, built in the transaction
    REPORT_TIMEOUT = enum.auto()
    REPORT_TRANSPORT_ERROR = enum.auto()


_S = ClientState
_I = ClientInput
_E = ClientEffect
Transition: TypeAlias = tuple[tuple[ClientEffect, ...], ClientState]

_FAIL_TO_COMPLETED: Final = ((_E.STOP_TIMERS, _E.PASS_TO_TU, _E.SEND_ACK, _E.ARM_D), _S.COMPLETED)
_OK_TO_ACCEPTED: Final = ((_E.STOP_TIMERS, _E.PASS_TO_TU, _E.ARM_M), _S.ACCEPTED)
_TIMEOUT: Final = ((_E.STOP_TIMERS, _E.REPORT_TIMEOUT), _S.TERMINATED)
_TRANSPORT: Final = ((_E.STOP_TIMERS, _E.REPORT_TRANSPORT_ERROR), _S.TERMINATED)

# RFC 3261 Figure 5 (+ RFC 6026 Figure 3 Accepted state, + the §9.1 CANCEL guard).
INVITE_CLIENT_TABLE: Final[Mapping[tuple[ClientState, ClientInput], Transition]] = {
    (_S.CALLING, _I.TIMER_A): ((_E.RETRANSMIT, _E.ARM_A_NEXT), _S.CALLING),
    (_S.CALLING, _I.TIMER_B): _TIMEOUT,
    (_S.CALLING, _I.TRANSPORT_ERROR): _TRANSPORT,
    # §17.1.1.2: a provisional stops retransmissions; Timer B only guards Calling.
    (_S.CALLING, _I.PROVISIONAL): ((_E.STOP_TIMERS, _E.PASS_TO_TU), _S.PROCEEDING),
    (_S.CALLING, _I.SUCCESS): _OK_TO_ACCEPTED,
    (_S.CALLING, _I.FAILURE): _FAIL_TO_COMPLETED,
    (_S.PROCEEDING, _I.PROVISIONAL): ((_E.PASS_TO_TU,), _S.PROCEEDING),
    (_S.PROCEEDING, _I.SUCCESS): _OK_TO_ACCEPTED,
    (_S.PROCEEDING, _I.FAILURE): _FAIL_TO_COMPLETED,
    (_S.PROCEEDING, _I.CANCEL_GUARD): _TIMEOUT,
    # §17.1.1.2: retransmitted finals in Completed re-send the ACK and are not passed up.
    (_S.COMPLETED, _I.FAILURE): ((_E.SEND_ACK,), _S.COMPLETED),
    (_S.COMPLETED, _I.TIMER_D): ((), _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _TRANSPORT,
    # RFC 6026 §8.4: 2xx retransmissions go to the TU, which re-sends its own ACK.
    (_S.ACCEPTED, _I.SUCCESS): ((_E.PASS_TO_TU,), _S.ACCEPTED),
    (_S.ACCEPTED, _I.TIMER_M): ((), _S.TERMINATED),
}

_FINAL_TO_COMPLETED: Final = ((_E.STOP_TIMERS, _E.PASS_TO_TU, _E.ARM_K), _S.COMPLETED)

# RFC 3261 Figure 6.
NON_INVITE_CLIENT_TABLE: Final[Mapping[tuple[ClientState, ClientInput], Transition]] = {
    (_S.TRYING, _I.TIMER_E): ((_E.RETRANSMIT, _E.ARM_E_NEXT), _S.TRYING),
    (_S.TRYING, _I.TIMER_F): _TIMEOUT,
    (_S.TRYING, _I.TRANSPORT_ERROR): _TRANSPORT,
    # Timers E and F keep running in Proceeding (§17.1.2.2).
    (_S.TRYING, _I.PROVISIONAL): ((_E.PASS_TO_TU,), _S.PROCEEDING),
    (_S.TRYING, _I.SUCCESS): _FINAL_TO_COMPLETED,
    (_S.TRYING, _I.FAILURE): _FINAL_TO_COMPLETED,
    (_S.PROCEEDING, _I.TIMER_E): ((_E.RETRANSMIT, _E.ARM_E_T2), _S.PROCEEDING),
    (_S.PROCEEDING, _I.TIMER_F): _TIMEOUT,
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _TRANSPORT,
    (_S.PROCEEDING, _I.PROVISIONAL): ((_E.PASS_TO_TU,), _S.PROCEEDING),
    (_S.PROCEEDING, _I.SUCCESS): _FINAL_TO_COMPLETED,
    (_S.PROCEEDING, _I.FAILURE): _FINAL_TO_COMPLETED,
    # Completed buffers response retransmissions (absent from the table → absorbed).
    (_S.COMPLETED, _I.TIMER_K): ((), _S.TERMINATED),
}

_TIMER_INPUT: Final[Mapping[Timer, ClientInput]] = {
    Timer.A: _I.TIMER_A,
    Timer.B: _I.TIMER_B,
    Timer.D: _I.TIMER_D,
    Timer.E: _I.TIMER_E,
    Timer.F: _I.TIMER_F,
    Timer.K: _I.TIMER_K,
    Timer.M: _I.TIMER_M,
    Timer.CANCEL_GUARD: _I.CANCEL_GUARD,
}


def response_input(status: int) -> ClientInput:
    if status < 200:
        return _I.PROVISIONAL
    return _I.SUCCESS if status < 300 else _I.FAILURE


class ClientSink(TransportSink, Protocol):
    """What a client transaction needs from the layer that owns it."""

    def client_response(self, txn: ClientTransaction, response: SipResponse) -> None: ...

    def client_timeout(self, txn: ClientTransaction) -> None: ...

    def client_transport_error(self, txn: ClientTransaction) -> None: ...

    def client_terminated(self, txn: ClientTransaction) -> None: ...


class ClientTransaction(TimedTransaction[ClientInput]):
    """One INVITE or non-INVITE client transaction (§17.1)."""

    _timer_inputs = _TIMER_INPUT
    _sink: ClientSink

    def __init__(
        self,
        key: TransactionKey,
        request: SipRequest,
        dest: Address,
        *,
        reliable: bool,
        config: TimerConfig,
        sink: ClientSink,
    ) -> None:
        self.key = key
        self.request = request
        self.dest = dest
        self.reliable = reliable
        self.config = config
        self.is_invite = request.method == "INVITE"
        self.table = INVITE_CLIENT_TABLE if self.is_invite else NON_INVITE_CLIENT_TABLE
        self.state = _S.CALLING if self.is_invite else _S.TRYING
        self.last_response: SipResponse | None = None
        self.cancel_requested = False  # §9.1: CANCEL waits for a provisional
        self._sink = sink
        self._wire = request.serialize()
        self._ack: bytes | None = None
        self._interval = config.t1
        self._timers: dict[Timer, TimerSlot] = {}
        # Made when an input arrives, dropped when drained (as on the server side): most of a
        # transaction's life is spent idle in Completed/Accepted, one object less each.
        self._inputs: deque[tuple[ClientInput, SipResponse | None]] | None = None
        self._busy = False

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.request.method} {self.state.value} {self.key}>"

    # -- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Send the request and arm the first timers (§17.1.1.2 / §17.1.2.2)."""
        self._sink.transmit(self._wire, self.dest)
        if self.is_invite:
            if not self.reliable:
                self._arm(Timer.A, self.config.t1, now)
            self._arm(Timer.B, self.config.timeout, now)
        else:
            if not self.reliable:
                self._arm(Timer.E, self.config.t1, now)
            self._arm(Timer.F, self.config.timeout, now)

    def receive_response(self, response: SipResponse, now: float) -> None:
        self._feed(response_input(response.status), now, response)

    def transport_error(self, now: float) -> None:
        self._feed(_I.TRANSPORT_ERROR, now, None)

    def arm_cancel_guard(self, now: float) -> None:
        """§9.1: after sending CANCEL, give the INVITE 64*T1 to see a final response."""
        if self.is_invite and self.state is _S.PROCEEDING:
            self._arm(Timer.CANCEL_GUARD, self.config.timeout, now)

    # -- the machine ----------------------------------------------------------------------

    def _feed(self, inp: ClientInput, now: float, response: SipResponse | None) -> None:
        self._queue(inp, response)
        if self._busy:  # a zero-length timer fired inside a transition: run it after
            return
        inputs = self._inputs
        assert inputs is not None
        self._busy = True
        try:
            while inputs:
                inp, response = inputs.popleft()
                self._step(inp, now, response)
        finally:
            self._busy = False
            if not inputs:
                self._inputs = None

    def _queue(self, inp: ClientInput, response: SipResponse | None) -> None:
        if self._inputs is None:
            self._inputs = deque()
        self._inputs.append((inp, response))

    def _step(self, inp: ClientInput, now: float, response: SipResponse | None) -> None:
        transition = self.table.get((self.state, inp))
        if transition is None:
            return  # not allowed in this state: absorbed (§17.1.1.2, §17.1.2.2)
        effects, next_state = transition
        self.state = next_state
        if response is not None:
            self.last_response = response
        for effect in effects:
            self._apply(effect, now, response)
        if next_state is _S.TERMINATED:
            self._stop_timers()
            if self._inputs is not None:
                self._inputs.clear()
            self._sink.client_terminated(self)

    def _apply(self, effect: ClientEffect, now: float, response: SipResponse | None) -> None:
        cfg = self.config
        if effect is _E.STOP_TIMERS:
            self._stop_timers()
        elif effect is _E.RETRANSMIT:
            self._sink.transmit(self._wire, self.dest)
        elif effect is _E.ARM_A_NEXT:
            self._interval *= 2
            self._arm(Timer.A, self._interval, now)
        elif effect is _E.ARM_E_NEXT:
            self._interval = min(2 * self._interval, cfg.t2)
            self._arm(Timer.E, self._interval, now)
        elif effect is _E.ARM_E_T2:
            self._interval = cfg.t2
            self._arm(Timer.E, self._interval, now)
        elif effect is _E.ARM_D:
            self._arm(Timer.D, cfg.d(self.reliable), now)
        elif effect is _E.ARM_K:
            self._arm(Timer.K, cfg.k(self.reliable), now)
        elif effect is _E.ARM_M:
            self._arm(Timer.M, cfg.accepted(), now)
        elif effect is _E.PASS_TO_TU:
            if response is not None:
                self._sink.client_response(self, response)
        elif effect is _E.SEND_ACK:
            if self._ack is None and response is not None:
                self._ack = build_ack_for_non2xx(self.request, response).serialize()
            if self._ack is not None:
                self._sink.transmit(self._ack, self.dest)
        elif effect is _E.REPORT_TIMEOUT:
            self._sink.client_timeout(self)
        elif effect is _E.REPORT_TRANSPORT_ERROR:
            self._sink.client_transport_error(self)


# -- messages the client side builds ------------------------------------------------------


def _need(msg: SipMessage, name: str) -> str:
    value = msg.header(name)
    if value is None:
        raise TransactionError(f"request has no {name} header", 400)
    return value


def _top_via_text(request: SipRequest) -> str:
    vias = request.header_values("Via")
    if not vias:
        raise TransactionError("request has no Via header", 400)
    return vias[0]


def build_ack_for_non2xx(request: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK a client INVITE transaction sends for a 300-699 response (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE; To from the response
    (with its tag); a single Via equal to the INVITE's top Via (same branch); the INVITE's
    Route header fields.
    """
    headers: list[tuple[str, str]] = [
        ("Via", _top_via_text(request)),
        ("Max-Forwards", "70"),
        ("From", _need(request, "From")),
        ("To", _need(response, "To")),
        ("Call-ID", _need(request, "Call-ID")),
        ("CSeq", f"{request.cseq.seq} ACK"),
    ]
    headers.extend(("Route", value) for value in request.header_values("Route"))
    return SipRequest("ACK", request.uri, tuple(headers))


def build_cancel(request: SipRequest) -> SipRequest:
    """CANCEL for a pending request (§9.1).

    Request-URI, Call-ID, To, From (tags included, so no To tag for an initial INVITE) and
    the CSeq number are those of the request; CSeq method CANCEL; a single Via equal to
    the request's top Via (same branch, so the server matches it, §9.2); the Route set.
    """
    if request.method in ("ACK", "CANCEL"):
        raise TransactionError(f"cannot CANCEL a {request.method}", 400)
    headers: list[tuple[str, str]] = [
        ("Via", _top_via_text(request)),
        ("Max-Forwards", "70"),
        ("From", _need(request, "From")),
        ("To", _need(request, "To")),
        ("Call-ID", _need(request, "Call-ID")),
        ("CSeq", f"{request.cseq.seq} CANCEL"),
    ]
    headers.extend(("Route", value) for value in request.header_values("Route"))
    return SipRequest("CANCEL", request.uri, tuple(headers))
