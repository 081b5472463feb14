"""Server transactions: INVITE (RFC 3261 §17.2.1, Figure 7) and non-INVITE (§17.2.2, Figure 8).

Same shape as the client side: transition tables over enums, effects interpreted by the
transaction object, inputs missing from the table absorbed (e.g. a request retransmission
in the non-INVITE Trying state, §17.2.2, or a second final response from the TU).

§17.2.1: the INVITE server transaction answers 100 Trying by itself when the TU has not
sent a provisional response within `TimerConfig.trying_delay` (Timer.TRYING; 0 = at once).
RFC 6026 (TimerConfig.rfc6026) adds the Accepted state: after a 2xx the transaction lives
for Timer L = 64*T1, absorbing INVITE retransmissions and passing 2xx retransmissions
from the TU to the transport; without it a 2xx terminates the transaction (Figure 7).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from zvonar.sip.headers import Via
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.timers import Timer, TimerConfig, TimerSlot
from zvonar.sip.transaction_base import Address, TimedTransaction, TransportSink

if TYPE_CHECKING:
    from zvonar.sip.transaction import TransactionKey

__all__ = [
    "INVITE_SERVER_TABLE",
    "NON_INVITE_SERVER_TABLE",
    "ServerEffect",
    "ServerInput",
    "ServerSink",
    "ServerState",
    "ServerTransaction",
    "annotate_via",
    "is_reliable_transport",
    "response_address",
    "sent_by_key",
]


class ServerState(enum.Enum):
    TRYING = "Trying"  # non-INVITE only
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"  # INVITE only
    ACCEPTED = "Accepted"  # RFC 6026, INVITE only
    TERMINATED = "Terminated"


class ServerInput(enum.Enum):
    REQUEST = "request retransmission"
    ACK = "ACK"
    TU_PROVISIONAL = "1xx from TU"
    TU_SUCCESS = "2xx from TU"
    TU_FAILURE = "300-699 from TU"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_L = "Timer L"
    TIMER_TRYING = "Timer Trying"
    TRANSPORT_ERROR = "Transport error"


class ServerEffect(enum.Enum):
    STOP_TIMERS = enum.auto()
    SEND_RESPONSE = enum.auto()  # send the TU's response and remember it as the last one
    RESEND_LAST = enum.auto()  # retransmit the last response (if any was sent)
    SEND_TRYING = enum.auto()  # §17.2.1: 100 Trying on the TU's behalf
    ARM_G_FIRST = enum.auto()  # §17.2.1: G = T1 (unreliable only)
    ARM_G_NEXT = enum.auto()  # §17.2.1: G = MIN(2*G, T2)
    ARM_H = enum.auto()
    ARM_I = enum.auto()
    ARM_J = enum.auto()
    ARM_L = enum.auto()
    PASS_ACK_TO_TU = enum.auto()  # RFC 6026: an ACK matching an Accepted transaction
    REPORT_TIMEOUT = enum.auto()
    REPORT_TRANSPORT_ERROR = enum.auto()


_S = ServerState
_I = ServerInput
_E = ServerEffect
Transition: TypeAlias = tuple[tuple[ServerEffect, ...], ServerState]

_TRANSPORT: Final = ((_E.STOP_TIMERS, _E.REPORT_TRANSPORT_ERROR), _S.TERMINATED)

# RFC 3261 Figure 7 (+ RFC 6026 Figure 5 Accepted state, + the §17.2.1 100 Trying timer).
INVITE_SERVER_TABLE: Final[Mapping[tuple[ServerState, ServerInput], Transition]] = {
    (_S.PROCEEDING, _I.TIMER_TRYING): ((_E.SEND_TRYING,), _S.PROCEEDING),
    # §17.2.1: a retransmitted INVITE gets the most recent provisional again.
    (_S.PROCEEDING, _I.REQUEST): ((_E.RESEND_LAST,), _S.PROCEEDING),
    (_S.PROCEEDING, _I.TU_PROVISIONAL): ((_E.STOP_TIMERS, _E.SEND_RESPONSE), _S.PROCEEDING),
    (_S.PROCEEDING, _I.TU_SUCCESS): ((_E.STOP_TIMERS, _E.SEND_RESPONSE, _E.ARM_L), _S.ACCEPTED),
    (_S.PROCEEDING, _I.TU_FAILURE): (
        (_E.STOP_TIMERS, _E.SEND_RESPONSE, _E.ARM_G_FIRST, _E.ARM_H),
        _S.COMPLETED,
    ),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _TRANSPORT,
    (_S.COMPLETED, _I.TIMER_G): ((_E.RESEND_LAST, _E.ARM_G_NEXT), _S.COMPLETED),
    (_S.COMPLETED, _I.TIMER_H): ((_E.STOP_TIMERS, _E.REPORT_TIMEOUT), _S.TERMINATED),
    (_S.COMPLETED, _I.REQUEST): ((_E.RESEND_LAST,), _S.COMPLETED),
    (_S.COMPLETED, _I.ACK): ((_E.STOP_TIMERS, _E.ARM_I), _S.CONFIRMED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _TRANSPORT,
    # Confirmed absorbs ACK retransmissions (missing from the table) until Timer I.
    (_S.CONFIRMED, _I.TIMER_I): ((), _S.TERMINATED),
    # RFC 6026 §8.5–8.7: INVITE retransmissions absorbed; the TU's 2xx retransmissions
    # pass through; an ACK reaching the transaction goes up to the TU.
    (_S.ACCEPTED, _I.TU_SUCCESS): ((_E.SEND_RESPONSE,), _S.ACCEPTED),
    (_S.ACCEPTED, _I.ACK): ((_E.PASS_ACK_TO_TU,), _S.ACCEPTED),
    (_S.ACCEPTED, _I.TIMER_L): ((), _S.TERMINATED),
}

_FINAL: Final = ((_E.SEND_RESPONSE, _E.ARM_J), _S.COMPLETED)

# RFC 3261 Figure 8.
NON_INVITE_SERVER_TABLE: Final[Mapping[tuple[ServerState, ServerInput], Transition]] = {
    # Trying: request retransmissions are discarded (absent from the table).
    (_S.TRYING, _I.TU_PROVISIONAL): ((_E.SEND_RESPONSE,), _S.PROCEEDING),
    (_S.TRYING, _I.TU_SUCCESS): _FINAL,
    (_S.TRYING, _I.TU_FAILURE): _FINAL,
    (_S.PROCEEDING, _I.TU_PROVISIONAL): ((_E.SEND_RESPONSE,), _S.PROCEEDING),
    (_S.PROCEEDING, _I.REQUEST): ((_E.RESEND_LAST,), _S.PROCEEDING),
    (_S.PROCEEDING, _I.TU_SUCCESS): _FINAL,
    (_S.PROCEEDING, _I.TU_FAILURE): _FINAL,
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _TRANSPORT,
    # Completed: later finals from the TU are discarded (absent), retransmits answered.
    (_S.COMPLETED, _I.REQUEST): ((_E.RESEND_LAST,), _S.COMPLETED),
    (_S.COMPLETED, _I.TIMER_J): ((), _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _TRANSPORT,
}

_TIMER_INPUT: Final[Mapping[Timer, ServerInput]] = {
    Timer.G: _I.TIMER_G,
    Timer.H: _I.TIMER_H,
    Timer.I: _I.TIMER_I,
    Timer.J: _I.TIMER_J,
    Timer.L: _I.TIMER_L,
    Timer.TRYING: _I.TIMER_TRYING,
}


def tu_response_input(status: int) -> ServerInput:
    if status < 200:
        return _I.TU_PROVISIONAL
    return _I.TU_SUCCESS if status < 300 else _I.TU_FAILURE


class ServerSink(TransportSink, Protocol):
    """What a server transaction needs from the layer that owns it."""

    def server_ack(self, txn: ServerTransaction, ack: SipRequest) -> None: ...

    def server_timeout(self, txn: ServerTransaction) -> None: ...

    def server_transport_error(self, txn: ServerTransaction) -> None: ...

    def server_terminated(self, txn: ServerTransaction) -> None: ...


class ServerTransaction(TimedTransaction[ServerInput]):
    """One INVITE or non-INVITE server transaction (§17.2)."""

    _timer_inputs = _TIMER_INPUT
    _sink: ServerSink

    def __init__(
        self,
        key: TransactionKey,
        request: SipRequest,
        source: Address,
        response_dest: Address,
        *,
        reliable: bool,
        config: TimerConfig,
        sink: ServerSink,
    ) -> None:
        self.key = key
        self.request = request
        self.source = source
        self.response_dest = response_dest
        self.reliable = reliable
        self.config = config
        self.is_invite = request.method == "INVITE"
        self.table = INVITE_SERVER_TABLE if self.is_invite else NON_INVITE_SERVER_TABLE
        self.state = _S.PROCEEDING if self.is_invite else _S.TRYING
        self.last_response: SipResponse | None = None
        self._last_wire: bytes | None = None
        self._sink = sink
        self._interval = config.t1
        self._timers: dict[Timer, TimerSlot] = {}
        # Made when an input arrives, dropped when drained: a transaction waits out most of
        # its life (Timers J/L/I) idle, and one object less each is less for the GC to walk.
        self._inputs: deque[tuple[ServerInput, SipRequest | SipResponse | None]] | None = None
        self._busy = False

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.request.method} {self.state.value} {self.key}>"

    @property
    def to_tag(self) -> str | None:
        """The To tag of the last response sent (RFC 2543 ACK matching, CANCEL's 200)."""
        return None if self.last_response is None else self.last_response.to.tag

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    # -- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> None:
        if self.is_invite:
            self._arm(Timer.TRYING, self.config.trying_delay, now)
            self._run(now)

    def receive_request(self, request: SipRequest, now: float) -> None:
        """A retransmission of the transaction's request, or an ACK matched to it."""
        self._feed(_I.ACK if request.method == "ACK" else _I.REQUEST, now, request)

    def respond(self, response: SipResponse, now: float) -> bool:
        """A response from the TU. False if the state does not take it (it is discarded)."""
        return self._feed(tu_response_input(response.status), now, response)

    def transport_error(self, now: float) -> None:
        self._feed(_I.TRANSPORT_ERROR, now, None)

    # -- the machine ----------------------------------------------------------------------

    def _feed(self, inp: ServerInput, now: float, msg: SipRequest | SipResponse | None) -> bool:
        accepted = (self.state, inp) in self.table
        self._queue(inp, msg)
        self._run(now)
        return accepted

    def _queue(self, inp: ServerInput, msg: SipRequest | SipResponse | None) -> None:
        if self._inputs is None:
            self._inputs = deque()
        self._inputs.append((inp, msg))

    def _run(self, now: float) -> None:
        inputs = self._inputs
        if self._busy or inputs is None:  # re-entered from a zero-length timer: the outer
            return  # loop runs it (or nothing is queued)
        self._busy = True
        try:
            while inputs:
                inp, msg = inputs.popleft()
                self._step(inp, now, msg)
        finally:
            self._busy = False
            if not inputs:
                self._inputs = None

    def _step(self, inp: ServerInput, now: float, msg: SipRequest | SipResponse | None) -> None:
        transition = self.table.get((self.state, inp))
        if transition is None:
            return  # absorbed (§17.2.1, §17.2.2)
        effects, next_state = transition
        self.state = next_state
        for effect in effects:
            self._apply(effect, now, msg)
        if next_state is _S.TERMINATED:
            self._stop_timers()
            if self._inputs is not None:
                self._inputs.clear()
            self._sink.server_terminated(self)

    def _apply(
        self, effect: ServerEffect, now: float, msg: SipRequest | SipResponse | None
    ) -> None:
        cfg = self.config
        if effect is _E.STOP_TIMERS:
            self._stop_timers()
        elif effect is _E.SEND_RESPONSE:
            if isinstance(msg, SipResponse):
                self._send(msg)
        elif effect is _E.RESEND_LAST:
            if self._last_wire is not None:
                self._sink.transmit(self._last_wire, self.response_dest)
        elif effect is _E.SEND_TRYING:
            self._send(make_response(self.request, 100))
        elif effect is _E.ARM_G_FIRST:
            if not self.reliable:
                self._interval = cfg.t1
                self._arm(Timer.G, self._interval, now)
        elif effect is _E.ARM_G_NEXT:
            self._interval = min(2 * self._interval, cfg.t2)
            self._arm(Timer.G, self._interval, now)
        elif effect is _E.ARM_H:
            self._arm(Timer.H, cfg.timeout, now)
        elif effect is _E.ARM_I:
            self._arm(Timer.I, cfg.i(self.reliable), now)
        elif effect is _E.ARM_J:
            self._arm(Timer.J, cfg.j(self.reliable), now)
        elif effect is _E.ARM_L:
            self._arm(Timer.L, cfg.accepted(), now)
        elif effect is _E.PASS_ACK_TO_TU:
            if isinstance(msg, SipRequest):
                self._sink.server_ack(self, msg)
        elif effect is _E.REPORT_TIMEOUT:
            self._sink.server_timeout(self)
        elif effect is _E.REPORT_TRANSPORT_ERROR:
            self._sink.server_transport_error(self)

    def _send(self, response: SipResponse) -> None:
        self.last_response = response
        self._last_wire = response.serialize()
        self._sink.transmit(self._last_wire, self.response_dest)


_UNRELIABLE = frozenset({"UDP", "DTLS"})


def is_reliable_transport(transport: str) -> bool:
    """TCP, TLS, SCTP, WS, WSS are reliable (§17.1.1.1 timer rules); UDP is not."""
    return transport.upper() not in _UNRELIABLE


# -- §18.2 addressing ----------------------------------------------------------------------


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def sent_by_key(via: Via) -> str:
    """sent-by with the default port made explicit, for §17.2.3 comparisons."""
    port = via.port if via.port is not None else (5061 if via.transport == "TLS" else 5060)
    return f"{via.host}:{port}"


def response_address(via: Via, source: Address, reliable: bool) -> Address:
    """Where a server transaction sends its responses (§18.2.2, RFC 3581 §4).

    Reliable: back to the source (the connection). Unreliable: maddr if present, else
    the received address, with rport when the client asked for it, else the sent-by port.
    """
    if reliable:
        return source
    maddr = via.maddr
    if maddr:
        return (_bare_host(maddr), via.port or 5060)
    host = via.received or _bare_host(via.host)
    rport = via.rport
    if rport is True:
        return (host, source[1])
    if rport is not None:
        return (host, rport)
    return (host, via.port or 5060)


def annotate_via(request: SipRequest, source: Address) -> SipRequest:
    """§18.2.1: add received= when sent-by is not the source IP; RFC 3581: fill rport."""
    via = request.top_via
    ip, port = source
    updates: list[tuple[str, str | None]] = []
    if via.rport is True:
        updates += [("received", ip), ("rport", str(port))]
    elif _bare_host(via.host) != ip:
        updates.append(("received", ip))
    if not updates:
        return request
    return request.with_top_via(via.with_params(*updates))
