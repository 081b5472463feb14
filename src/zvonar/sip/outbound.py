"""Outbound registration client, sans-IO (RFC 3261 §10.2, digest per §22.2).

`OutboundRegistration` keeps one binding of our Contact at a registrar (a SIP trunk, or a
PBX we register to): it builds REGISTER requests, answers 401/407 challenges through
`auth.client_auth_flow`, refreshes the binding before it expires, backs off exponentially
with jitter after a failure, and unregisters (Expires: 0) on `stop`.

It does no transaction work: the owner (the UA core) sends each request of
`requests_to_send()` in a non-INVITE client transaction and reports the final response
(`receive_response`) or the transaction's timeout / transport error (`transaction_failed`).
Time comes in as `now`; `next_deadline()` / `handle_timer(now)` drive refreshes and retries.
"""

from __future__ import annotations

import enum
import random
import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from zvonar.sip.auth import ClientCredentials, client_auth_flow
from zvonar.sip.errors import SipError
from zvonar.sip.message import SipRequest, SipResponse
from zvonar.sip.uri import SipUri, uri_equal

__all__ = [
    "OutboundRegistration",
    "Registered",
    "RegistrationConfig",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationState",
    "Unregistered",
]


class RegistrationState(enum.Enum):
    IDLE = "idle"  # not started
    REGISTERING = "registering"  # a REGISTER is in flight
    REGISTERED = "registered"  # bound; a refresh is scheduled
    RETRY_WAIT = "retry_wait"  # the last attempt failed; a retry is scheduled
    UNREGISTERING = "unregistering"  # stop() sent Expires: 0
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Registered:
    expires: int  # seconds granted by the registrar
    refresh_at: float  # when the refresh will be sent
    at: float


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    status: int | None  # final response status, None for a timeout / transport error
    reason: str
    retry_at: float | None  # None: given up (e.g. stop() during the failure)
    at: float


@dataclass(frozen=True, slots=True)
class Unregistered:
    status: int | None  # 200 or the failure (None: timed out); the binding is gone either way
    at: float


RegistrationEvent = Registered | RegistrationFailed | Unregistered


@dataclass(frozen=True)
class RegistrationConfig:
    """What to register. `registrar` is the Request-URI (§10.2: the domain, no user part)."""

    registrar: SipUri
    aor: SipUri  # the address-of-record: To and From
    contact: SipUri  # our reachable address, bound to `aor`
    via: str  # sent-by and transport of our Via, e.g. "SIP/2.0/UDP 192.0.2.1:5060"
    credentials: ClientCredentials | None = field(default=None, repr=False)
    expires: int = 3600
    # §10.2.4 leaves the refresh time to us: a random point in this fraction of the granted
    # interval, so that many clients started together do not refresh together.
    refresh_min: float = 0.5
    refresh_max: float = 0.8
    min_refresh_margin: float = 2.0  # never refresh later than this before expiry
    retry_base: float = 2.0  # first retry delay after a failure
    retry_max: float = 300.0  # cap of the exponential back-off
    user_agent: str | None = "Zvonar"

    def __post_init__(self) -> None:
        if self.expires <= 0:
            raise ValueError("expires must be positive")
        if not 0 < self.refresh_min <= self.refresh_max < 1:
            raise ValueError("need 0 < refresh_min <= refresh_max < 1")
        if not 0 < self.retry_base <= self.retry_max:
            raise ValueError("need 0 < retry_base <= retry_max")


_REFRESH = 0
_RETRY = 1


class OutboundRegistration:
    """One Contact binding at one registrar. See the module docstring for the I/O contract."""

    def __init__(
        self,
        config: RegistrationConfig,
        *,
        rng: random.Random | None = None,
        token: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.config = config
        self.state = RegistrationState.IDLE
        self.failures = 0  # consecutive failed attempts, for the back-off
        self.granted: int | None = None
        self._rng = rng or random.Random()
        self._token = token
        self.call_id = f"{token()}@zvonar"  # §10.2: one Call-ID for all our REGISTERs
        self._tag = token()
        self._cseq = 0
        self._outbox: list[SipRequest] = []
        self._events: list[RegistrationEvent] = []
        self._flow: Generator[SipRequest, SipResponse, None] | None = None
        self._pending: SipRequest | None = None  # the request whose response we wait for
        self._deadline: float | None = None
        self._deadline_kind = _REFRESH
        self._requested = config.expires

    # -- public inputs ------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Register now (no-op unless idle or stopped)."""
        if self.state in (RegistrationState.IDLE, RegistrationState.STOPPED):
            self.failures = 0
            self._register(self.config.expires, now)

    def stop(self, now: float) -> None:
        """Remove the binding (Expires: 0), or just stop if nothing is bound."""
        self._deadline = None
        if self.state in (RegistrationState.REGISTERED, RegistrationState.REGISTERING):
            self._register(0, now)
        else:
            self.state = RegistrationState.STOPPED
            self._flow = self._pending = None

    def receive_response(self, response: SipResponse, now: float) -> None:
        """A response to one of our requests (provisionals and strays are ignored)."""
        pending = self._pending
        if pending is None or response.status < 200:
            return
        try:
            if response.call_id != self.call_id or response.cseq.seq != pending.cseq.seq:
                return
        except SipError:
            return
        flow = self._flow
        if flow is not None:
            try:
                self._send(flow.send(response))
                return  # a challenge answered: wait for the next response
            except StopIteration:
                self._flow = None
        self._pending = None
        self._final(response, now)

    def transaction_failed(self, now: float, reason: str = "timeout") -> None:
        """The client transaction of the pending request timed out or hit a transport error."""
        if self._pending is None:
            return
        self._pending = self._flow = None
        if self.state is RegistrationState.UNREGISTERING:
            self._stopped(None, now)
        else:
            self._failed(None, reason, now)

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.state in (RegistrationState.REGISTERED, RegistrationState.RETRY_WAIT):
            self._register(self.config.expires, now)

    # -- public outputs -----------------------------------------------------------------------

    def requests_to_send(self) -> list[SipRequest]:
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[RegistrationEvent]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def registered(self) -> bool:
        return self.state is RegistrationState.REGISTERED

    # -- internals ----------------------------------------------------------------------------

    def _register(self, expires: int, now: float) -> None:
        self._requested = expires
        self.state = (
            RegistrationState.UNREGISTERING if expires == 0 else RegistrationState.REGISTERING
        )
        self._cseq += 1
        request = self._build(expires)
        if self.config.credentials is not None:
            self._flow = client_auth_flow(
                request,
                self.config.credentials,
                branch_factory=lambda: "z9hG4bK" + self._token(),
            )
            self._send(next(self._flow))
        else:
            self._flow = None
            self._send(request)

    def _send(self, request: SipRequest) -> None:
        # The auth flow bumps CSeq on each retry (§22.2, new transaction): adopt it (§10.2).
        self._cseq = request.cseq.seq
        self._pending = request
        self._outbox.append(request)

    def _build(self, expires: int) -> SipRequest:
        c = self.config
        aor = f"<{c.aor}>"
        headers: list[tuple[str, str]] = [
            ("Via", f"{c.via};branch=z9hG4bK{self._token()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{aor};tag={self._tag}"),
            ("To", aor),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<{c.contact}>"),
            ("Expires", str(expires)),
        ]
        if c.user_agent:
            headers.append(("User-Agent", c.user_agent))
        headers.append(("Content-Length", "0"))
        return SipRequest("REGISTER", c.registrar, tuple(headers))

    def _final(self, response: SipResponse, now: float) -> None:
        status = response.status
        if self.state is RegistrationState.UNREGISTERING:
            self._stopped(status, now)
            return
        if 200 <= status < 300:
            self._registered(response, now)
            return
        if status == 423:  # §10.3 step 7: Interval Too Brief, retry with Min-Expires
            min_expires = _int(response.header("Min-Expires"))
            if min_expires is not None and min_expires > self._requested:
                self._register(min_expires, now)
                return
        retry_after = _int(response.header("Retry-After")) if status in (500, 503) else None
        self._failed(status, response.reason, now, retry_after)

    def _registered(self, response: SipResponse, now: float) -> None:
        granted = self._granted(response)
        if granted <= 0:  # the registrar dropped our binding: treat as a failure
            self._failed(response.status, "binding not kept by the registrar", now)
            return
        self.granted = granted
        self.failures = 0
        frac = self._rng.uniform(self.config.refresh_min, self.config.refresh_max)
        delay = min(granted * frac, max(granted - self.config.min_refresh_margin, granted / 2))
        self.state = RegistrationState.REGISTERED
        self._deadline = now + delay
        self._events.append(Registered(granted, now + delay, now))

    def _granted(self, response: SipResponse) -> int:
        """§10.2.4: the expires of our Contact in the 200, else its Expires header."""
        header_expires = _int(response.header("Expires"))
        try:
            contacts = response.contacts
        except SipError:
            contacts = []
        for contact in contacts:
            if uri_equal(contact.uri, self.config.contact):
                value = _int(contact.param("expires"))
                if value is not None:
                    return value
                break
        if header_expires is not None:
            return header_expires
        return self._requested if contacts else 0

    def _failed(
        self, status: int | None, reason: str, now: float, retry_after: int | None = None
    ) -> None:
        self.failures += 1
        self.granted = None
        backoff = min(self.config.retry_max, self.config.retry_base * 2 ** (self.failures - 1))
        # "Equal jitter": half fixed, half random, so retries spread but never come too soon.
        delay = backoff / 2 + self._rng.uniform(0, backoff / 2)
        if retry_after is not None:
            delay = max(delay, float(retry_after))
        self.state = RegistrationState.RETRY_WAIT
        self._deadline = now + delay
        self._events.append(RegistrationFailed(status, reason, now + delay, now))

    def _stopped(self, status: int | None, now: float) -> None:
        self.state = RegistrationState.STOPPED
        self.granted = None
        self._deadline = None
        self._events.append(Unregistered(status, now))


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 11 else None
