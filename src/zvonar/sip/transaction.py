"""The RFC 3261 §17 transaction layer, sans-IO (the aioquic `QuicConnection` shape).

Feed it `receive(msg, source, now)`, `send_request(...)`, `send_response(...)` and
`handle_timer(now)`; read `events()` for the TU, `datagrams_to_send(now)` for the transport
and `next_deadline()` for the one timer the I/O loop keeps. It never reads a clock.
The keys and the events it gives the TU are in transaction_events.py (re-exported here).

The four machines live in transaction_client.py (Figures 5, 6) and transaction_server.py
(Figures 7, 8); this module matches messages to them (§17.1.3, §17.2.3 with the RFC 2543
fallback), handles CANCEL (§9) and runs two UAS/UAC-core chores that need its timers:
the 2xx retransmission until ACK (§13.3.1.4) and the CANCEL wait for a provisional (§9.1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from zvonar.sip.errors import TransactionError
from zvonar.sip.headers import Via
from zvonar.sip.message import SipMessage, SipRequest, SipResponse, make_response
from zvonar.sip.timers import DeadlineHeap, Timer, TimerConfig, TimerSlot, TimerTarget
from zvonar.sip.transaction_client import (
    Address,
    ClientState,
    ClientTransaction,
    build_ack_for_non2xx,
    build_cancel,
)
from zvonar.sip.transaction_events import (
    MAGIC_COOKIE,
    AckFor2xx,
    AckTimeout,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    default_token,
    new_branch,
)
from zvonar.sip.transaction_server import (
    ServerState,
    ServerTransaction,
    annotate_via,
    is_reliable_transport,
    response_address,
    sent_by_key,
)
from zvonar.sip.uri import uri_equal

__all__ = [
    "MAGIC_COOKIE",
    "AckFor2xx",
    "AckTimeout",
    "Address",
    "CancelReceived",
    "ClientState",
    "ClientTransaction",
    "RequestReceived",
    "ResponseReceived",
    "ServerState",
    "ServerTransaction",
    "TimerConfig",
    "TransactionEvent",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportError",
    "annotate_via",
    "build_ack_for_non2xx",
    "build_cancel",
    "is_reliable_transport",
    "new_branch",
    "response_address",
]

# A transaction that has settled into one of its waiting states (Completed, Confirmed,
# Accepted: up to 32 s of absorbing retransmissions) no longer needs its messages' parsed
# headers; they are shed this long after the transaction began, once the TU is done with
# them (reading them again re-parses, same values). At hundreds of calls/s those parses
# were most of what the garbage collector walked.
SHED_AFTER = 2.0
_SHED_BATCH = 256  # per look: a burst of settled transactions is spread over the next runs
_SETTLED = frozenset(
    {
        ClientState.COMPLETED,
        ClientState.ACCEPTED,
        ServerState.COMPLETED,
        ServerState.CONFIRMED,
        ServerState.ACCEPTED,
    }
)
_OVER = frozenset({ClientState.TERMINATED, ServerState.TERMINATED})


# -- matching keys --------------------------------------------------------------------------


def _legacy_via(via: Via) -> str:
    """The top Via for RFC 2543 matching, ignoring what the receiver itself added."""
    params = sorted(
        ((n.lower(), v) for n, v in via.params if n.lower() not in ("received", "rport")),
        key=lambda p: (p[0], p[1] or ""),
    )
    return f"{via.transport}|{sent_by_key(via)}|{params}"


def _server_key(msg: SipMessage, method: str) -> TransactionKey:
    """§17.2.3 key of a request (or of a response the TU sends for it)."""
    via = msg.top_via
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return TransactionKey(True, method, branch, sent_by_key(via))
    legacy = (msg.call_id, msg.from_.tag or "", str(msg.cseq.seq))
    return TransactionKey(True, method, "", _legacy_via(via), legacy)


def _ok_key(msg: SipMessage) -> tuple[str, int, str]:
    return (msg.call_id, msg.cseq.seq, msg.from_.tag or "")


class _OkRetransmission:
    """§13.3.1.4: the UAS core re-sends a 2xx (T1 doubling to T2) until the ACK, 64*T1 max."""

    def __init__(
        self,
        layer: TransactionLayer,
        key: TransactionKey,
        response: SipResponse,
        dest: Address,
        branch: str,
        now: float,
    ) -> None:
        self.layer = layer
        self.key = key
        self.okey = _ok_key(response)  # its entry in TransactionLayer._oks
        self.response = response
        self.wire = response.serialize()
        self.dest = dest
        self.branch = branch  # of the INVITE: a retransmission of it gets the 2xx again
        self.to_tag = response.to.tag
        self.interval = layer.config.t1
        self.retransmit = layer.schedule(self, Timer.OK_RETRANSMIT, now + self.interval)
        self.give_up = layer.schedule(self, Timer.OK_TIMEOUT, now + layer.config.timeout)

    def on_timer(self, timer: Timer, now: float) -> None:
        if timer is Timer.OK_RETRANSMIT:
            self.layer.transmit(self.wire, self.dest)
            self.interval = min(2 * self.interval, self.layer.config.t2)
            self.retransmit = self.layer.schedule(self, Timer.OK_RETRANSMIT, now + self.interval)
        elif timer is Timer.OK_TIMEOUT:
            self.stop()
            self.layer.emit(AckTimeout(self.key, self.response))

    def stop(self) -> None:
        self.layer.unschedule(self.retransmit)
        self.layer.unschedule(self.give_up)
        self.layer.forget_ok(self)


class TransactionLayer:
    """All client and server transactions of one UA, with one deadline heap."""

    def __init__(
        self,
        config: TimerConfig | None = None,
        *,
        token: Callable[[], str] = default_token,
        retransmit_2xx: bool = True,
        annotate_via: bool = True,
    ) -> None:
        self.config = config or TimerConfig()
        self._token = token
        self._retransmit_2xx = retransmit_2xx
        self._annotate = annotate_via
        self._client: dict[TransactionKey, ClientTransaction] = {}
        self._server: dict[TransactionKey, ServerTransaction] = {}
        # key without method → transaction, to find what a CANCEL targets (§9.2)
        self._by_branch: dict[tuple[str, str, tuple[str, ...]], ServerTransaction] = {}
        self._internal: set[TransactionKey] = set()  # CANCEL server txns we answer ourselves
        self._cancels: dict[TransactionKey, TransactionKey] = {}  # INVITE → its CANCEL
        # A held CANCEL's extra headers (cancel(headers=...)), until it goes or is moot.
        self._cancel_headers: dict[TransactionKey, tuple[tuple[str, str], ...]] = {}
        self._oks: dict[tuple[str, int, str], _OkRetransmission] = {}
        self._heap: DeadlineHeap[tuple[TimerTarget, Timer]] = DeadlineHeap()
        self._events: list[TransactionEvent] = []
        self._out: list[tuple[bytes, Address]] = []
        self._now = 0.0
        # (when to look, transaction): transactions whose messages may be shed (SHED_AFTER).
        self._settling: deque[tuple[float, ClientTransaction | ServerTransaction]] = deque()

    # -- outputs ---------------------------------------------------------------------------

    def events(self) -> list[TransactionEvent]:
        out, self._events = self._events, []
        return out

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        return self._heap.next_deadline()

    def handle_timer(self, now: float) -> None:
        self._now = now
        while (handle := self._heap.pop_due(now)) is not None:
            target, timer = handle.payload
            target.on_timer(timer, now)
        self._shed(now)

    def _shed(self, now: float) -> None:
        """Shed the parsed messages of transactions that settled (see SHED_AFTER); look
        again later at those still running. O(1) per transaction and look."""
        settling = self._settling
        for _ in range(_SHED_BATCH):
            if not settling or settling[0][0] > now:
                return
            _when, txn = settling.popleft()
            state = txn.state
            if state in _SETTLED:
                txn.request.shed()
                if txn.last_response is not None:
                    txn.last_response.shed()
            elif state not in _OVER:
                settling.append((now + SHED_AFTER, txn))

    # -- introspection ---------------------------------------------------------------------

    def client(self, key: TransactionKey) -> ClientTransaction | None:
        return self._client.get(key)

    def server(self, key: TransactionKey) -> ServerTransaction | None:
        return self._server.get(key)

    def transactions(self) -> list[ClientTransaction | ServerTransaction]:
        return [*self._client.values(), *self._server.values()]

    # -- TU → network ----------------------------------------------------------------------

    def send_request(
        self, request: SipRequest, dest: Address, now: float, reliable: bool
    ) -> TransactionKey:
        """Start a client transaction; the top Via must carry a fresh z9hG4bK branch."""
        self._now = now
        if request.method == "ACK":
            raise TransactionError("an ACK for a 2xx is sent with send_stateless (§17.1.1.3)")
        branch = request.top_via.branch or ""
        if not branch.startswith(MAGIC_COOKIE):
            raise TransactionError(f"branch {branch!r} lacks the {MAGIC_COOKIE} cookie (§8.1.1.7)")
        key = TransactionKey(False, request.method, branch)
        if key in self._client:
            raise TransactionError(f"a client transaction {key} already exists")
        txn = ClientTransaction(
            key, request, dest, reliable=reliable, config=self.config, sink=self
        )
        self._client[key] = txn
        self._settling.append((now + SHED_AFTER, txn))
        txn.start(now)
        return key

    def send_response(self, response: SipResponse, now: float) -> bool:
        """Pass a TU response to its server transaction. False if none takes it."""
        self._now = now
        key = _server_key(response, response.cseq.method)
        txn = self._server.get(key)
        if txn is None:
            ok = self._oks.get(_ok_key(response))
            if ok is not None and 200 <= response.status < 300:
                self.transmit(response.serialize(), ok.dest)  # TU's own 2xx retransmission
                return True
            return False
        accepted = txn.respond(response, now)
        if accepted and txn.is_invite and 200 <= response.status < 300 and self._retransmit_2xx:
            okey = _ok_key(response)
            if okey not in self._oks:  # else: already retransmitting this 2xx
                self._oks[okey] = _OkRetransmission(
                    self, key, response, txn.response_dest, key.branch, now
                )
        return accepted

    def send_stateless(self, message: SipMessage, dest: Address) -> None:
        """Send outside any transaction: the ACK for a 2xx (§13.2.2.4), stateless replies."""
        self.transmit(message.serialize(), dest)

    def cancel(
        self, key: TransactionKey, now: float, *, headers: Sequence[tuple[str, str]] = ()
    ) -> TransactionKey | None:
        """CANCEL a pending INVITE (§9.1). Returns the CANCEL's key, None if too late.

        Before any provisional the CANCEL is held and sent when one arrives (§9.1).
        ``headers``: more for the CANCEL to carry, e.g. why (``Reason``, RFC 3326).
        """
        self._now = now
        txn = self._client.get(key)
        if txn is None or not txn.is_invite:
            return None
        cancel_key = TransactionKey(False, "CANCEL", key.branch)
        if key in self._cancels or txn.cancel_requested:
            return cancel_key
        if txn.state is ClientState.CALLING:
            txn.cancel_requested = True
            if headers:
                self._cancel_headers[key] = tuple(headers)
            return cancel_key
        if txn.state is ClientState.PROCEEDING:
            self._send_cancel(txn, now, tuple(headers))
            return cancel_key
        return None

    def _send_cancel(
        self, txn: ClientTransaction, now: float, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        cancel = build_cancel(txn.request)
        for name, value in self._cancel_headers.pop(txn.key, ()) + headers:
            cancel = cancel.adding_header(name, value)
        self._cancels[txn.key] = self.send_request(cancel, txn.dest, now, txn.reliable)
        txn.arm_cancel_guard(now)

    def transport_error(self, dest: Address, now: float) -> None:
        """The transport could not reach `dest`: fail every transaction sending there."""
        self._now = now
        for ctxn in [t for t in self._client.values() if t.dest == dest]:
            ctxn.transport_error(now)
        for stxn in [t for t in self._server.values() if t.response_dest == dest]:
            stxn.transport_error(now)

    # -- network → TU ----------------------------------------------------------------------

    def receive(
        self, msg: SipMessage, source: Address, now: float, *, reliable: bool | None = None
    ) -> None:
        """A parsed message from the transport. `reliable` defaults to the top Via's transport."""
        self._now = now
        if isinstance(msg, SipResponse):
            self._receive_response(msg, now)
            return
        if self._annotate:
            msg = annotate_via(msg, source)
        if reliable is None:
            reliable = is_reliable_transport(msg.top_via.transport)
        if msg.method == "ACK":
            self._receive_ack(msg, source, now)
        elif msg.method == "CANCEL":
            self._receive_cancel(msg, source, now, reliable)
        else:
            self._receive_request(msg, source, now, reliable)

    def _receive_response(self, response: SipResponse, now: float) -> None:
        # §17.1.3: top Via branch and CSeq method (a CANCEL's responses share the branch).
        key = TransactionKey(False, response.cseq.method, response.top_via.branch or "")
        txn = self._client.get(key)
        if txn is None:
            self.emit(ResponseReceived(None, response, None))
        else:
            txn.receive_response(response, now)

    def _match(self, request: SipRequest, method: str) -> ServerTransaction | None:
        key = _server_key(request, method)
        txn = self._server.get(key)
        if txn is None or not key.legacy:
            return txn
        return txn if self._legacy_same(txn, request) else None

    @staticmethod
    def _legacy_same(txn: ServerTransaction, request: SipRequest) -> bool:
        """§17.2.3 RFC 2543 rule: Request-URI and To tag too (ACK: To tag of our response)."""
        if not uri_equal(txn.request.uri, request.uri):
            return False
        tag = request.to.tag
        if request.method == "ACK":
            return tag == txn.to_tag
        return tag == txn.request.to.tag

    def _receive_ack(self, ack: SipRequest, source: Address, now: float) -> None:
        txn = self._match(ack, "INVITE")
        if txn is None:
            self._ack_for_2xx(ack, source)
        else:
            # ACK for our non-2xx: Completed → Confirmed; in Accepted (RFC 6026) the
            # transaction passes it up through server_ack.
            txn.receive_request(ack, now)

    def _ack_for_2xx(self, ack: SipRequest, source: Address) -> None:
        ok = self._oks.get(_ok_key(ack))
        if ok is not None and ok.to_tag == ack.to.tag:
            ok.stop()
        self.emit(AckFor2xx(ack, source))

    def _receive_cancel(
        self, cancel: SipRequest, source: Address, now: float, reliable: bool
    ) -> None:
        own = self._match(cancel, "CANCEL")
        if own is not None:
            own.receive_request(cancel, now)  # retransmission: the 200 again
            return
        key = _server_key(cancel, "CANCEL")
        target = self._by_branch.get((key.branch, key.sent_by, key.legacy))
        if (
            target is not None
            and key.legacy
            and not (
                uri_equal(target.request.uri, cancel.uri) and cancel.to.tag == target.request.to.tag
            )
        ):
            target = None
        txn = self._new_server(key, cancel, source, reliable, now)
        self._internal.add(key)
        # §9.2: 200 if a transaction matched (To tag as in its responses), else 481.
        if target is None:
            txn.respond(make_response(cancel, 481, to_tag=self._token()), now)
            return
        txn.respond(make_response(cancel, 200, to_tag=target.to_tag or self._token()), now)
        if target.is_invite and target.state is ServerState.PROCEEDING:
            self.emit(CancelReceived(target.key, target.request, cancel))

    def _receive_request(
        self, request: SipRequest, source: Address, now: float, reliable: bool
    ) -> None:
        key = _server_key(request, request.method)
        txn = self._server.get(key)
        if txn is not None:
            if not key.legacy or self._legacy_same(txn, request):
                txn.receive_request(request, now)  # a retransmission
            return  # an RFC 2543 near-duplicate we cannot tell apart: dropped
        if request.method == "INVITE":
            ok = self._oks.get(_ok_key(request))
            if ok is not None and ok.branch == key.branch and request.to.tag is None:
                # RFC 3261 mode: the transaction is gone, the INVITE was retransmitted.
                self.transmit(ok.wire, ok.dest)
                return
        txn = self._new_server(key, request, source, reliable, now)
        self.emit(RequestReceived(key, request, source, reliable))
        txn.start(now)

    def _new_server(
        self,
        key: TransactionKey,
        request: SipRequest,
        source: Address,
        reliable: bool,
        now: float,
    ) -> ServerTransaction:
        dest = response_address(request.top_via, source, reliable)
        txn = ServerTransaction(
            key, request, source, dest, reliable=reliable, config=self.config, sink=self
        )
        self._server[key] = txn
        self._settling.append((now + SHED_AFTER, txn))
        if request.method != "CANCEL":
            self._by_branch[(key.branch, key.sent_by, key.legacy)] = txn
        return txn

    # -- sink for transactions and helpers --------------------------------------------------

    def transmit(self, data: bytes, addr: Address) -> None:
        self._out.append((data, addr))

    def emit(self, event: TransactionEvent) -> None:
        self._events.append(event)

    def schedule(self, target: TimerTarget, timer: Timer, deadline: float) -> TimerSlot:
        return self._heap.push(deadline, (target, timer))

    def unschedule(self, handle: TimerSlot) -> None:
        self._heap.cancel(handle)

    def forget_ok(self, ok: _OkRetransmission) -> None:
        if self._oks.get(ok.okey) is ok:
            del self._oks[ok.okey]

    def client_response(self, txn: ClientTransaction, response: SipResponse) -> None:
        self.emit(ResponseReceived(txn.key, response, txn.request))
        if txn.cancel_requested and txn.key not in self._cancels:
            if txn.state is ClientState.PROCEEDING:
                self._send_cancel(txn, self._now)  # §9.1: the held CANCEL goes now
            elif response.status >= 200:
                txn.cancel_requested = False  # a final response came first: nothing to cancel
                self._cancel_headers.pop(txn.key, None)

    def client_timeout(self, txn: ClientTransaction) -> None:
        self.emit(TransactionTimeout(txn.key, txn.request))

    def client_transport_error(self, txn: ClientTransaction) -> None:
        self.emit(TransportError(txn.key, txn.request))

    def client_terminated(self, txn: ClientTransaction) -> None:
        if self._client.get(txn.key) is txn:
            del self._client[txn.key]
        self._cancels.pop(txn.key, None)
        self._cancel_headers.pop(txn.key, None)
        self.emit(TransactionTerminated(txn.key))

    def server_ack(self, txn: ServerTransaction, ack: SipRequest) -> None:
        self._ack_for_2xx(ack, txn.source)

    def server_timeout(self, txn: ServerTransaction) -> None:
        self.emit(TransactionTimeout(txn.key, txn.request))

    def server_transport_error(self, txn: ServerTransaction) -> None:
        self.emit(TransportError(txn.key, txn.request))

    def server_terminated(self, txn: ServerTransaction) -> None:
        key = txn.key
        if self._server.get(key) is txn:
            del self._server[key]
        bkey = (key.branch, key.sent_by, key.legacy)
        if self._by_branch.get(bkey) is txn:
            del self._by_branch[bkey]
        if key in self._internal:
            self._internal.discard(key)
            return
        self.emit(TransactionTerminated(key))
