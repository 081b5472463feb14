"""Registrar (RFC 3261 §10.3) and OPTIONS qualify, sans-IO.

`Registrar.handle_register` turns an already *authenticated* REGISTER into the response to
send: the caller runs `DigestChallenger.check` first (401 until `Authorized`) and passes the
authenticated user, which may only register its own AOR. Bindings live in a
`LocationService` (see sip/location.py), which persists them through a `LocationStore`.

`OptionsQualifier` schedules OPTIONS probes per binding and turns answers and timeouts into
`ContactReachable` / `ContactUnreachable` events (the UA sends the OPTIONS and reports back).

The UA's REGISTER path, in order::

    policy.check_request(req, src, now)          # Allow, else drop/reject
    match challenger.check(req, now):
        case Authorized(username=user):
            resp = registrar.handle_register(req, src, "UDP", flow_id, now, user=user)
        case Failed() as failed:
            policy.record_auth_failure(src, failed.username, now)
            resp = auth_response(req, failed, to_tag=tag)
        case Challenge() as challenge:
            resp = auth_response(req, challenge, to_tag=tag)
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate

from zvonar.sip.errors import SipError, SipParseError
from zvonar.sip.headers import NameAddr
from zvonar.sip.location import (
    Address,
    Binding,
    BindingEvent,
    BindingKey,
    LocationService,
    LocationStoreError,
    Target,
    aor_key,
)
from zvonar.sip.message import SipRequest, SipResponse, make_response
from zvonar.sip.uri import SipUri

__all__ = [
    "ContactReachable",
    "ContactUnreachable",
    "OptionsQualifier",
    "QualifyProbe",
    "Registrar",
    "RegistrarConfig",
]

# q-value (§25.1): "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_DIGITS = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class RegistrarConfig:
    default_expires: int = 3600  # §10.2.1.1: no Expires anywhere means the registrar's choice
    min_expires: int = 60  # below it (and below an hour) → 423 with Min-Expires (§10.3 step 7)
    max_expires: int = 7200  # longer requests are shortened (§10.3 step 7 allows it)
    max_contacts: int = 10  # per AOR; older bindings are displaced, oldest first
    domains: frozenset[str] | None = None  # served domains; None accepts any
    supported: frozenset[str] = frozenset({"path"})  # option tags a Require may name (§8.2.2.3)

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= min(self.default_expires, self.max_expires):
            raise ValueError("need 0 < min_expires <= default_expires, max_expires")
        if self.min_expires > 3600:  # §10.3 step 7 lets a registrar reject only below an hour
            raise ValueError("min_expires above one hour cannot be enforced with 423")
        if self.max_contacts < 1:
            raise ValueError("max_contacts must be at least 1")


class _Refuse(Exception):
    """Internal: stop handling and answer `status` (with `headers`)."""

    def __init__(
        self, status: int, reason: str | None = None, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(reason or str(status))
        self.status, self.reason, self.headers = status, reason, headers


def _qvalue(contact: NameAddr) -> float:
    if not contact.has_param("q"):
        return 1.0
    text = contact.param("q")
    if text is None or not _QVALUE.fullmatch(text):
        raise _Refuse(400, "Bad q-value")
    return float(text)


def _format_q(q: float) -> str:
    return f"{q:.3f}".rstrip("0").rstrip(".") if q not in (0.0, 1.0) else str(int(q))


class Registrar:
    """The §10.3 REGISTER processing over a `LocationService`."""

    def __init__(
        self,
        location: LocationService | None = None,
        config: RegistrarConfig | None = None,
        *,
        wall_offset: float = 0.0,
        tag_factory: Callable[[], str] | None = None,
    ) -> None:
        """`wall_offset` is wall-clock time minus `now` (0 when `now` is already wall time);
        it is only used to write the Date header (§10.3 step 8)."""
        self.location = location or LocationService()
        self.config = config or RegistrarConfig()
        self.wall_offset = wall_offset
        self._tag = tag_factory or (lambda: secrets.token_hex(6))

    # -- delegation to the location service ---------------------------------------------

    def load(self, now: float) -> int:
        return self.location.load(now)

    def lookup(self, aor: str | SipUri, now: float) -> list[Binding]:
        return self.location.lookup(aor, now)

    def events(self) -> list[BindingEvent]:
        return self.location.events()

    def next_deadline(self) -> float | None:
        return self.location.next_deadline()

    def handle_timer(self, now: float) -> list[Binding]:
        return self.location.handle_timer(now)

    # -- REGISTER -------------------------------------------------------------------------

    def handle_register(
        self,
        request: SipRequest,
        source_addr: Address,
        transport: str,
        flow_id: str | None,
        now: float,
        *,
        user: str | None = None,
    ) -> SipResponse:
        """Process an authenticated REGISTER and return the response to send.

        `source_addr` is the packet's source (ip, port) — recorded as the binding's target
        (RFC 3581); `flow_id` identifies the connection for TCP/TLS/WS. `user` is the digest
        username that authenticated the request; when given, only the AOR with that user
        part may be changed (§10.3 step 4), otherwise 403.
        """
        if request.method != "REGISTER":
            raise ValueError(f"not a REGISTER: {request.method}")
        try:
            aor, headers = self._process(request, source_addr, transport, flow_id, now, user)
        except _Refuse as refusal:
            return self._response(request, refusal.status, refusal.reason, refusal.headers)
        except SipParseError as exc:
            return self._response(request, exc.status_hint, None, ())
        except LocationStoreError:
            return self._response(request, 500, "Registration Not Stored", ())
        return self._response(request, 200, None, (*headers, *self._contacts(aor, now)), date=now)

    def _process(
        self,
        request: SipRequest,
        source: Address,
        transport: str,
        flow_id: str | None,
        now: float,
        user: str | None,
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        cfg = self.config
        # Step 1: are we the registrar for the Request-URI's domain?
        if not isinstance(request.uri, SipUri):
            raise _Refuse(416)
        if cfg.domains is not None and request.uri.host not in cfg.domains:
            raise _Refuse(404, "Domain Not Served")
        # Step 2: extensions the UAC requires (§8.2.2.3).
        unsupported = [t for t in request.header_values("Require") if t not in cfg.supported]
        if unsupported:
            raise _Refuse(420, None, (("Unsupported", ", ".join(unsupported)),))
        # Steps 4–5: the AOR, canonical, in a served domain, owned by the authenticated user.
        to_uri = request.to.uri
        try:
            aor = aor_key(to_uri)
        except SipError:
            raise _Refuse(404, "Not A Valid Address-Of-Record") from None
        if not isinstance(to_uri, SipUri) or (
            cfg.domains is not None and to_uri.host not in cfg.domains
        ):
            raise _Refuse(404, "Not A Valid Address-Of-Record")
        if user is not None and aor != aor_key(SipUri(user=user, host=to_uri.host)):
            raise _Refuse(403, "Not Allowed To Register This AOR")

        contacts = request.contacts
        header_expires = self._header_expires(request)
        call_id, cseq = request.call_id, request.cseq.seq
        self.location.purge(aor, now)
        current = {b.contact: b for b in self.location.bindings(aor)}
        echo: tuple[tuple[str, str], ...] = ()
        path = tuple(request.header_values("Path"))
        if path and "path" in request.header_values("Supported") and "path" in cfg.supported:
            echo = tuple(("Path", p) for p in path)  # RFC 3327 §5.3
        else:
            path = ()
        if not contacts:  # a query: answer with the current bindings (§10.2.3)
            return aor, echo

        # Step 6: "*" removes everything, only alone and with Expires: 0.
        if any(c.is_wildcard for c in contacts):
            if len(contacts) != 1 or header_expires != 0:
                raise _Refuse(400, "Invalid Wildcard Contact")
            for b in current.values():
                self._check_order(b, call_id, cseq)
            self.location.apply((), current.values(), now)
            return aor, echo

        # Step 7: validate every contact first; commit only if all succeed.
        removals: dict[str, Binding] = {}
        upserts: dict[str, Binding] = {}
        for contact in contacts:
            expires = self._contact_expires(contact, header_expires)
            if 0 < expires < cfg.min_expires:
                raise _Refuse(423, None, (("Min-Expires", str(cfg.min_expires)),))
            expires = min(expires, cfg.max_expires)
            q = _qvalue(contact)
            existing = self.location.find(aor, contact.uri)
            if existing is not None:
                self._check_order(existing, call_id, cseq)
                if existing.contact != str(contact.uri) or expires == 0:
                    removals[existing.contact] = existing
            key = str(contact.uri)
            if expires == 0:
                upserts.pop(key, None)
                continue
            removals.pop(key, None)
            upserts[key] = Binding(
                aor=aor,
                contact=key,
                expires_at=now + expires,
                q=q,
                call_id=call_id,
                cseq=cseq,
                source=source,
                transport=transport.upper(),
                flow_id=flow_id,
                registered_at=now,
                params=tuple(p for p in contact.params if p[0].lower() not in ("q", "expires")),
                path=path,
                user_agent=request.user_agent,
            )
        if len(upserts) > cfg.max_contacts:
            raise _Refuse(403, "Too Many Contacts")
        # Displace the oldest other bindings beyond max_contacts (a rebooted phone's old
        # Contact would otherwise block it until it expires).
        keep = [b for c, b in current.items() if c not in upserts and c not in removals]
        keep.sort(key=lambda b: b.registered_at)
        overflow = len(keep) + len(upserts) - cfg.max_contacts
        for b in keep[: max(0, overflow)]:
            removals[b.contact] = b
        self.location.apply(upserts.values(), removals.values(), now)
        return aor, echo

    @staticmethod
    def _check_order(binding: Binding, call_id: str, cseq: int) -> None:
        # §10.3 steps 6–7: a request of the same Call-ID must carry a higher CSeq.
        if binding.call_id == call_id and cseq <= binding.cseq:
            raise _Refuse(500, "Out Of Order Request")

    def _header_expires(self, request: SipRequest) -> int | None:
        try:
            return request.expires
        except SipParseError:  # §20.19: a malformed value counts as 3600
            return 3600

    def _contact_expires(self, contact: NameAddr, header: int | None) -> int:
        if contact.has_param("expires"):
            text = contact.param("expires") or ""
            # §20.19 / §10.2.1.1: malformed → 3600; values above 2**32-1 are capped.
            return min(int(text), 2**32 - 1) if _DIGITS.fullmatch(text) else 3600
        return self.config.default_expires if header is None else header

    def _contacts(self, aor: str, now: float) -> list[tuple[str, str]]:
        out = []
        for b in self.location.lookup(aor, now):
            na = NameAddr(None, b.contact_uri, b.params)
            value = f"{na};expires={b.remaining(now)}"
            if b.q != 1.0:
                value += f";q={_format_q(b.q)}"
            out.append(("Contact", value))
        return out

    def _response(
        self,
        request: SipRequest,
        status: int,
        reason: str | None,
        headers: Iterable[tuple[str, str]],
        *,
        date: float | None = None,
    ) -> SipResponse:
        extra = list(headers)
        if date is not None:  # §10.3 step 8 (and §20.17: rfc1123-date in GMT)
            extra.append(("Date", formatdate(date + self.wall_offset, usegmt=True)))
        return make_response(request, status, reason, to_tag=self._tag(), headers=extra)


# --------------------------------------------------------------------------------------------
# Qualify
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QualifyProbe:
    """Send an OPTIONS to `contact` via `target` now; report the answer with its `key`."""

    key: BindingKey
    contact: str
    target: Target


@dataclass(frozen=True)
class ContactReachable:
    key: BindingKey
    at: float
    rtt: float | None  # None when the answer came after the probe had timed out


@dataclass(frozen=True)
class ContactUnreachable:
    key: BindingKey
    at: float
    probe_sent_at: float


QualifyEvent = ContactReachable | ContactUnreachable


@dataclass
class _Qualify:
    contact: str
    target: Target
    next_probe: float
    sent_at: float | None = None  # the outstanding probe, if any
    reachable: bool | None = None  # None until the first answer or timeout


@dataclass
class OptionsQualifier:
    """Decides when to probe each binding and tracks reachability (timers, no I/O).

    A tracked binding is probed at once, then every `interval` seconds. A probe not
    answered within `timeout` marks the contact unreachable (one event per change); any
    later answer marks it reachable again. The UA treats any response to the OPTIONS —
    even 4xx/5xx from the UA itself — as an answer, but not a locally generated 408.
    """

    interval: float = 60.0
    timeout: float = 5.0
    _tracked: dict[BindingKey, _Qualify] = field(default_factory=dict, init=False)
    _events: list[QualifyEvent] = field(default_factory=list, init=False)

    def track(self, binding: Binding, now: float) -> None:
        """Start (or keep) probing a binding; a refresh updates its target, not its schedule."""
        entry = self._tracked.get(binding.key)
        if entry is None:
            self._tracked[binding.key] = _Qualify(binding.contact, binding.target, now)
        else:
            entry.target = binding.target

    def untrack(self, key: BindingKey) -> None:
        self._tracked.pop(key, None)

    def sync(self, bindings: Iterable[Binding], now: float) -> None:
        """Track exactly `bindings` (e.g. `registrar.location.all_bindings()`)."""
        wanted = {b.key: b for b in bindings}
        for key in [k for k in self._tracked if k not in wanted]:
            del self._tracked[key]
        for b in wanted.values():
            self.track(b, now)

    def is_reachable(self, key: BindingKey) -> bool | None:
        entry = self._tracked.get(key)
        return None if entry is None else entry.reachable

    def usable(self, bindings: Iterable[Binding]) -> list[Binding]:
        """`bindings` minus those known to be unreachable (order kept)."""
        return [b for b in bindings if self.is_reachable(b.key) is not False]

    def events(self) -> list[QualifyEvent]:
        out = list(self._events)
        self._events.clear()
        return out

    def next_deadline(self) -> float | None:
        times = []
        for e in self._tracked.values():
            times.append(e.next_probe)
            if e.sent_at is not None:
                times.append(e.sent_at + self.timeout)
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[QualifyProbe]:
        """Time out overdue probes, then return the probes due now (marked as sent at `now`)."""
        probes = []
        for key, e in self._tracked.items():
            if e.sent_at is not None and now >= e.sent_at + self.timeout:
                sent, e.sent_at = e.sent_at, None
                if e.reachable is not False:
                    e.reachable = False
                    self._events.append(ContactUnreachable(key, now, sent))
            if now >= e.next_probe:
                e.next_probe = now + self.interval
                if e.sent_at is None:  # never two probes outstanding for one contact
                    e.sent_at = now
                    probes.append(QualifyProbe(key, e.contact, e.target))
        return probes

    def handle_response(self, key: BindingKey, now: float) -> None:
        """The OPTIONS sent for `key` was answered."""
        e = self._tracked.get(key)
        if e is None:
            return
        rtt = None if e.sent_at is None else now - e.sent_at
        e.sent_at = None
        if e.reachable is not True:
            e.reachable = True
            self._events.append(ContactReachable(key, now, rtt))
