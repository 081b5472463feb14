"""Property tests: any input in any state never raises and never leaves an impossible state."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zvonar.sip.message import SipRequest, SipResponse, make_response, parse_message
from zvonar.sip.timers import DeadlineHeap, Timer, TimerConfig, TimerSlot, TimerTarget
from zvonar.sip.transaction import (
    RequestReceived,
    TransactionEvent,
    TransactionKey,
    TransactionLayer,
)
from zvonar.sip.transaction_client import ClientState, ClientTransaction
from zvonar.sip.transaction_server import ServerState, ServerTransaction

PEER = ("192.0.2.1", 5060)
STATUSES = [100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 503, 699]
CS, SS, T = ClientState, ServerState, Timer


def request(method: str, branch: str = "z9hG4bKp1", to_tag: str | None = None) -> SipRequest:
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"
        if branch
        else "Via: SIP/2.0/UDP 192.0.2.1",
        "From: <sip:alice@example.com>;tag=f1",
        "To: <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: prop@example.com",
        f"CSeq: 5 {method}",
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


def response(req: SipRequest, status: int) -> SipResponse:
    return make_response(req, status, to_tag=None if status == 100 else "t1")


@dataclass
class Sink:
    """A layer stand-in with a real heap that records what the machine reports."""

    heap: DeadlineHeap[tuple[TimerTarget, Timer]] = field(default_factory=DeadlineHeap)
    sent: int = 0
    terminated: int = 0
    reports: list[str] = field(default_factory=list)

    def transmit(self, data: bytes, addr: tuple[str, int]) -> None:
        assert isinstance(data, bytes) and addr == PEER
        self.sent += 1

    def schedule(self, target: TimerTarget, timer: Timer, deadline: float) -> TimerSlot:
        return self.heap.push(deadline, (target, timer))

    def unschedule(self, handle: TimerSlot) -> None:
        self.heap.cancel(handle)

    def _report(self, what: str) -> None:
        assert self.terminated == 0, f"{what} after termination"
        self.reports.append(what)

    def client_response(self, txn: object, resp: SipResponse) -> None:
        self._report("response")

    def client_timeout(self, txn: object) -> None:
        self._report("timeout")

    def client_transport_error(self, txn: object) -> None:
        self._report("transport")

    def client_terminated(self, txn: object) -> None:
        self.terminated += 1

    def server_ack(self, txn: object, ack: SipRequest) -> None:
        self._report("ack")

    def server_timeout(self, txn: object) -> None:
        self._report("timeout")

    def server_transport_error(self, txn: object) -> None:
        self._report("transport")

    def server_terminated(self, txn: object) -> None:
        self.terminated += 1


def allowed_client_timers(invite: bool, reliable: bool) -> dict[ClientState, set[Timer]]:
    retrans = set() if reliable else {T.A if invite else T.E}
    if invite:
        return {
            CS.CALLING: retrans | {T.B},
            CS.PROCEEDING: {T.CANCEL_GUARD},
            CS.COMPLETED: set() if reliable else {T.D},
            CS.ACCEPTED: {T.M},
            CS.TERMINATED: set(),
        }
    return {
        CS.TRYING: retrans | {T.F},
        CS.PROCEEDING: retrans | {T.F},
        CS.COMPLETED: set() if reliable else {T.K},
        CS.TERMINATED: set(),
    }


def allowed_server_timers(invite: bool, reliable: bool) -> dict[ServerState, set[Timer]]:
    if invite:
        return {
            SS.PROCEEDING: {T.TRYING},
            SS.COMPLETED: ({T.H} if reliable else {T.G, T.H}),
            SS.CONFIRMED: set() if reliable else {T.I},
            SS.ACCEPTED: {T.L},
            SS.TERMINATED: set(),
        }
    return {
        SS.TRYING: set(),
        SS.PROCEEDING: set(),
        SS.COMPLETED: set() if reliable else {T.J},
        SS.TERMINATED: set(),
    }


def check_machine(
    txn: ClientTransaction | ServerTransaction, sink: Sink, allowed: dict[object, set[Timer]]
) -> None:
    assert txn.state in allowed, f"{txn.state} impossible for {txn}"
    assert txn.timers <= allowed[txn.state], f"{txn.timers} running in {txn.state}"
    live = {handle.payload[1] for _, _, handle in sink.heap._heap if handle.active}
    assert live == set(txn.timers), "heap and transaction disagree on running timers"
    assert len(sink.heap) == len(txn.timers)
    done = txn.state in (CS.TERMINATED, SS.TERMINATED)
    assert sink.terminated == (1 if done else 0)


def step(
    txn: ClientTransaction | ServerTransaction,
    sink: Sink,
    action: tuple[typing.Any, ...],
    now: float,
) -> float:
    kind = action[0]
    if kind == "advance":
        now += action[1]
        while (h := sink.heap.pop_due(now)) is not None:
            target, timer = h.payload
            target.on_timer(timer, now)
    elif kind == "timer":  # a timer input whether or not it runs: ignored if stale
        txn.on_timer(action[1], now)
    elif kind == "transport":
        txn.transport_error(now)
    elif kind == "guard" and isinstance(txn, ClientTransaction):
        txn.arm_cancel_guard(now)
    elif kind == "status" and isinstance(txn, ClientTransaction):
        txn.receive_response(response(txn.request, action[1]), now)
    elif kind == "status" and isinstance(txn, ServerTransaction):
        txn.respond(response(txn.request, action[1]), now)
    elif kind == "retransmit" and isinstance(txn, ServerTransaction):
        txn.receive_request(txn.request, now)
    elif kind == "ack" and isinstance(txn, ServerTransaction):
        txn.receive_request(request("ACK", to_tag="t1"), now)
    return now


ACTIONS = st.one_of(
    st.tuples(
        st.just("advance"), st.sampled_from([0.0, 0.05, 0.1, 0.5, 1.0, 4.0, 5.0, 32.0, 64.0])
    ),
    st.tuples(st.just("timer"), st.sampled_from(list(Timer))),
    st.tuples(st.just("status"), st.sampled_from(STATUSES)),
    st.tuples(st.just("transport")),
    st.tuples(st.just("guard")),
    st.tuples(st.just("retransmit")),
    st.tuples(st.just("ack")),
)
CONFIGS = st.sampled_from([TimerConfig(), TimerConfig(rfc6026=False, trying_delay=0.0)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["INVITE", "OPTIONS"]),
    reliable=st.booleans(),
    config=CONFIGS,
    actions=st.lists(ACTIONS, max_size=30),
)
def test_client_machines_never_raise_or_reach_impossible_states(
    method: str, reliable: bool, config: TimerConfig, actions: list[tuple[typing.Any, ...]]
) -> None:
    sink = Sink()
    key = TransactionKey(False, method, "z9hG4bKp1")
    txn = ClientTransaction(key, request(method), PEER, reliable=reliable, config=config, sink=sink)
    allowed = allowed_client_timers(method == "INVITE", reliable)
    txn.start(0.0)
    check_machine(txn, sink, allowed)  # type: ignore[arg-type]
    now = 0.0
    for action in actions:
        now = step(txn, sink, action, now)
        check_machine(txn, sink, allowed)  # type: ignore[arg-type]
    # Terminated is absorbing: nothing moves it, nothing is reported.
    if txn.state is CS.TERMINATED:
        before = (sink.sent, list(sink.reports))
        for action in actions:
            now = step(txn, sink, action, now)
        assert (sink.sent, sink.reports) == before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["INVITE", "BYE"]),
    reliable=st.booleans(),
    config=CONFIGS,
    actions=st.lists(ACTIONS, max_size=30),
)
def test_server_machines_never_raise_or_reach_impossible_states(
    method: str, reliable: bool, config: TimerConfig, actions: list[tuple[typing.Any, ...]]
) -> None:
    sink = Sink()
    key = TransactionKey(True, method, "z9hG4bKp1", "192.0.2.1:5060")
    txn = ServerTransaction(
        key, request(method), PEER, PEER, reliable=reliable, config=config, sink=sink
    )
    allowed = allowed_server_timers(method == "INVITE", reliable)
    txn.start(0.0)
    check_machine(txn, sink, allowed)  # type: ignore[arg-type]
    now = 0.0
    for action in actions:
        now = step(txn, sink, action, now)
        check_machine(txn, sink, allowed)  # type: ignore[arg-type]
    if txn.final_sent:
        assert txn.last_response is not None and txn.last_response.status >= 200


# -- the whole layer ------------------------------------------------------------------------

BRANCHES = ["z9hG4bKa", "z9hG4bKb", "legacy1", ""]
LAYER_OPS = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(["INVITE", "OPTIONS", "BYE"]), st.booleans()),
    st.tuples(st.just("response"), st.integers(0, 5), st.sampled_from(STATUSES)),
    st.tuples(
        st.just("request"),
        st.sampled_from(["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"]),
        st.sampled_from(BRANCHES),
        st.sampled_from([None, "t1", "zz"]),
    ),
    st.tuples(st.just("respond"), st.integers(0, 5), st.sampled_from(STATUSES)),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("transport"), st.booleans()),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.1, 0.5, 2.0, 5.0, 40.0])),
)
EVENT_TYPES = typing.get_args(TransactionEvent)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(LAYER_OPS, max_size=40), config=CONFIGS)
def test_layer_never_raises_and_drains(
    ops: list[tuple[typing.Any, ...]], config: TimerConfig
) -> None:
    layer = TransactionLayer(config)
    now = 0.0
    sent: list[tuple[TransactionKey, SipRequest]] = []
    received: list[SipRequest] = []
    for n, op in enumerate(ops):
        kind = op[0]
        if kind == "send":
            req = request(op[1], f"z9hG4bKc{n}")
            sent.append((layer.send_request(req, PEER, now, op[2]), req))
        elif kind == "response" and sent:
            _, req = sent[op[1] % len(sent)]
            layer.receive(parse_message(response(req, op[2]).serialize()), PEER, now)
        elif kind == "request":
            req = request(op[1], op[2], op[3])
            layer.receive(req, PEER, now)
        elif kind == "respond" and received:
            layer.send_response(response(received[op[1] % len(received)], op[2]), now)
        elif kind == "cancel" and sent:
            layer.cancel(sent[op[1] % len(sent)][0], now)
        elif kind == "transport":
            layer.transport_error(PEER if op[1] else ("203.0.113.1", 5060), now)
        elif kind == "advance":
            now += op[1]
            layer.handle_timer(now)
            deadline = layer.next_deadline()
            assert deadline is None or deadline > now
        for ev in layer.events():
            assert isinstance(ev, EVENT_TYPES)
            if isinstance(ev, RequestReceived):
                received.append(ev.request)
        assert all(isinstance(d, bytes) for d, _ in layer.datagrams_to_send(now))
        for txn in layer.transactions():
            assert txn.state not in (CS.TERMINATED, SS.TERMINATED)
    # Let every timer run out: only transactions waiting on the peer or the TU remain,
    # and they hold no timers.
    for _ in range(200):
        deadline = layer.next_deadline()
        if deadline is None:
            break
        now = deadline
        layer.handle_timer(now)
    assert layer.next_deadline() is None
    for txn in layer.transactions():
        assert not txn.timers
        assert txn.state in (CS.PROCEEDING, SS.TRYING, SS.PROCEEDING), txn
