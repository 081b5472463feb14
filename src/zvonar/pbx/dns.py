"""Host names of trunks and SIP URI targets → addresses (RFC 3263), off the event loop, cached.

A named destination is located as RFC 3263 §4 says (``sip/locate.py`` decides the queries
and orders the answers; ``pbx/dns_client.py`` asks them): an explicit port means A/AAAA
only; a ``transport`` parameter (a trunk's transport) means SRV for it; neither means NAPTR,
then SRV, then A/AAAA at 5060. SRV answers come out in RFC 2782 order (priority, then
weighted random), every address of every target a destination of its own, so a caller can
fail over along the list (§4.3). NAPTR/SRV answers are kept for their TTL (within
``min_ttl``..``max_ttl``). Without a DNS client (no resolver configuration), only A/AAAA
are looked up, as before RFC 3263's SRV existed.

A/AAAA go through the system resolver (``loop.getaddrinfo``, in the default executor, so
``/etc/hosts`` counts) unless the PBX is given DNS servers of its own; ``getaddrinfo`` does
not tell the records' TTL, so those answers are kept for a fixed ``ttl``.

Every lookup is bounded by ``timeout``; a failure (NXDOMAIN, timeout, no usable address) is
cached for ``negative_ttl`` and makes the target *unavailable* — it is dropped from its wave,
a wave left empty is dropped, and the call moves on like for an unregistered phone. A call is
never refused because of DNS. Concurrent lookups of one name share one query.

Wiring: the PBX resolver emits targets whose ``Flow.host`` may be a name (:func:`named_flow`);
:func:`resolving` wraps the resolver the B2BUA calls so that every plan's names are resolved
before a single INVITE goes out (``Flow`` must carry an IP literal for the transports): the
plan's waves, and each wave a live route (``Plan.route``) hands out as the call goes — a wave
left with nobody is reported back to the route as ``unavailable`` and the route moves on. A
ringing target takes its first destination and keeps the next ones as its ``fallbacks``
(tried in the same wave when a server fails, ``calls/waves.py``); an outbound call through a
trunk rings the trunk's destinations as waves of their own (``pbx/outbound_resolver.py``).

A TLS destination located from a name leaves that name in ``tls_names`` under its address:
the TLS transport checks the server's certificate against it (RFC 5922 §4).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from zvonar.calls.events import Target
from zvonar.calls.pickup import FeatureResolver
from zvonar.calls.plan import (
    CallStep,
    InboundCall,
    Pickup,
    Plan,
    Rating,
    Reject,
    RingTarget,
    Route,
    StepResult,
    StepResultKind,
    Wave,
)
from zvonar.sip.errors import SipError
from zvonar.sip.locate import (
    DEFAULT_PORTS,
    Destination,
    Naptr,
    Srv,
    after_naptr,
    from_srv,
    is_ip,
    order_srv,
    plan_lookup,
)
from zvonar.sip.ua import Flow
from zvonar.sip.uri import SipUri, parse_uri

__all__ = [
    "SERVER_SILENCE",
    "DnsStats",
    "HostResolver",
    "Lookup",
    "Records",
    "ResolvingRoute",
    "is_ip",
    "named_flow",
    "resolving",
    "server_part",
]

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[list[str]]]
"""host name → its addresses (IP literals), in preference order; raises OSError on failure."""

TRANSPORTS = ("UDP", "TCP", "TLS")  # what a flow can name; a resolver locates only what
# its PBX listens on (``HostResolver.transports``: TLS needs a certificate)
_T = TypeVar("_T")
_R = TypeVar("_R")
MAX_DESTINATIONS = 8  # a located URI's destinations kept, at most (failover candidates)
MAX_FALLBACKS = 3  # a ringing target's servers after its first
# Records of one answer kept (the best priorities/orders): a DNS answer over TCP may hold
# thousands, and RFC 2782's weighted ordering is quadratic in them, on the event loop.
MAX_RECORDS = 64
MAX_TLS_NAMES = 4096  # addresses whose certificate name we remember (one per TLS server)
# A server that has not even said 100 Trying by then is taken for dead and the next one tried
# (calls' Wave.silence): over UDP that is four sends of the INVITE, far from Timer B's 32 s.
SERVER_SILENCE = 5.0


class Records(Protocol):
    """NAPTR and SRV queries (``pbx/dns_client.py``): (records, TTL in seconds); an empty
    list when there are none; OSError when the servers fail."""

    async def naptr(self, name: str) -> tuple[list[Naptr], float]: ...

    async def srv(self, name: str) -> tuple[list[Srv], float]: ...


def named_flow(host: str, port: int | None, transport: str = "UDP") -> Flow | None:
    """A flow to ``host`` (an IP literal or a name still to resolve), or None when the
    transport is one the stack does not speak (WS…)."""
    transport = transport.upper()
    if transport not in TRANSPORTS or not host:
        return None
    bare = host.strip("[]") if is_ip(host) else host.rstrip(".").lower()
    return Flow(transport, bare, port or DEFAULT_PORTS[transport])


def server_part(host: str, port: int | None, transport: str) -> str:
    """A Request-URI's ``host[:port][;transport=…]`` for a server configured by host and an
    optional port (a trunk, a registrar): with no port, the transport goes in as a parameter,
    so the URI itself says "SRV for this transport" (RFC 3263 §4.1) to whoever reads it."""
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    if port is not None:
        return f"{shown}:{port}"
    return shown if is_ip(bare) else f"{shown};transport={transport.lower()}"


@dataclass
class DnsStats:
    hits: int = 0
    misses: int = 0  # queries asked (the system resolver, or DNS servers of our own)
    failures: int = 0  # of those, how many failed: an error, no answer in time, no address


@dataclass(frozen=True)
class _Entry:
    found: tuple[Any, ...]  # addresses, or NAPTR/SRV records; empty: nothing there
    expires: float


Key = tuple[str, str]  # ("A" for A/AAAA, "NAPTR" or "SRV"; the name)
Answer = tuple[tuple[Any, ...], float | None]  # what was found, and its TTL (None: unknown)


async def system_lookup(host: str) -> list[str]:
    """A/AAAA through ``getaddrinfo`` in the loop's executor; IPv4 first (our SIP sockets
    listen on IPv4 unless told otherwise)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return sorted(found, key=lambda a: ":" in a)  # stable: v4 before v6


def _rank(record: Naptr | Srv) -> tuple[int, int]:
    return (record.order, record.preference) if isinstance(record, Naptr) else (record.priority, 0)


async def _each(ask: Callable[[_T], Awaitable[_R]], items: Sequence[_T]) -> list[_R]:
    """``ask`` of every item, in order: concurrently when several need the network, awaited
    in turn otherwise. A cached answer costs a microsecond awaited directly; ``gather`` would
    wrap each in a task and cost tens of them (bench/bench_dns.py)."""
    if len(items) <= 1:
        return [await ask(item) for item in items]
    return list(await asyncio.gather(*(ask(item) for item in items)))


class HostResolver:
    """``await dns.addresses(name)`` → addresses (empty: unavailable); see the module."""

    def __init__(
        self,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 10.0,
        timeout: float = 2.0,
        lookup: Lookup = system_lookup,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 4096,
        records: Records | None = None,
        rng: random.Random | None = None,
        min_ttl: float = 5.0,
        max_ttl: float = 3600.0,
        transports: tuple[str, ...] = ("UDP", "TCP"),
    ) -> None:
        if not (ttl > 0 and negative_ttl > 0 and timeout > 0 and max_entries > 0):
            raise ValueError("ttl, negative_ttl, timeout and max_entries must be positive")
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.timeout = timeout
        self.lookup = lookup
        self.clock = clock
        self.max_entries = max_entries
        self.stats = DnsStats()
        self._cache: dict[Key, _Entry] = {}
        self._inflight: dict[Key, asyncio.Future[tuple[Any, ...]]] = {}
        self.records = records
        self.rng = rng or random.SystemRandom()
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.transports = transports
        # (address, port) of a TLS server → the domain its certificate must name (RFC 5922
        # §4: the domain we were asked for, not the SRV target); the TLS transport reads it.
        self.tls_names: dict[tuple[str, int], str] = {}

    def cached(self, host: str) -> tuple[str, ...] | None:
        """The cached answer for ``host`` if still fresh (empty: a cached failure)."""
        return self._fresh(("A", host.rstrip(".").lower()))

    async def addresses(self, host: str) -> tuple[str, ...]:
        """Addresses of ``host`` (an IP literal is its own); empty when it does not resolve."""
        name = host.rstrip(".").lower()
        found = self._fresh(("A", name))  # before is_ip: parsing a name as an IP costs more
        if found is not None:
            self.stats.hits += 1
            return found
        if is_ip(host):
            return (host.strip("[]"),)

        async def ask() -> Answer:
            usable = tuple(a for a in await self.lookup(name) if is_ip(a))
            if not usable:
                raise OSError("no usable address")
            return usable, None  # getaddrinfo tells no TTL

        return await self._shared(("A", name), ask)

    async def flow(self, flow: Flow) -> Flow | None:
        """``flow`` with its host resolved to the first address, or None if it does not."""
        if is_ip(flow.host):
            return flow
        found = await self.addresses(flow.host)
        if not found:
            return None
        located = replace(flow, host=found[0])
        self._name_tls(flow.host, (located,))
        return located

    async def locate(
        self, host: str, port: int | None, transport: str | None, *, secure: bool = False
    ) -> tuple[Flow, ...]:
        """Where to send a request for a URI with this ``host``, ``port`` and ``transport``
        parameter (None when absent), best first (RFC 3263; see the module); empty when
        nothing we can reach is found."""
        plan = plan_lookup(host, port, transport, secure=secure, supported=self.transports)
        if plan.direct is not None:
            dests = [plan.direct]
        elif self.records is None:
            dests = list(plan.fallback)
        else:
            names = plan.srv
            if plan.naptr is not None:
                naptr = await self._lookup("NAPTR", plan.naptr)
                records = [r for r in naptr if isinstance(r, Naptr)]
                usable = after_naptr(records, secure=secure, supported=self.transports)
                names = usable or names
            answers = await _each(lambda n: self._lookup("SRV", n), [n for _, n in names])
            dests = []
            for (proto, _), found in zip(names, answers, strict=True):
                srv = [r for r in found if isinstance(r, Srv)]
                dests.extend(from_srv(proto, order_srv(srv, self._draw)))
            if not any(answers):
                dests = list(plan.fallback)  # no SRV at all: A/AAAA at the default port
        flows = await self._flows(dests)
        self._name_tls(host, flows)
        return flows

    def _name_tls(self, host: str, flows: Sequence[Flow]) -> None:
        if is_ip(host):
            return  # checked against the address itself
        names = self.tls_names
        for flow in flows:
            if flow.transport == "TLS":
                if len(names) >= MAX_TLS_NAMES:
                    names.clear()  # rebuilt by the next lookups; a bound, not a cache
                names[(flow.host, flow.port)] = host.rstrip(".").lower()

    async def locate_uri(self, uri: SipUri) -> tuple[Flow, ...]:
        return await self.locate(
            uri.host, uri.port, uri.param("transport"), secure=uri.scheme == "sips"
        )

    def _draw(self, total: int) -> int:
        return self.rng.randint(0, total)

    async def _flows(self, dests: Sequence[Destination]) -> tuple[Flow, ...]:
        dests = [d for d in dests if d.transport in self.transports]
        names = list(dict.fromkeys(d.host for d in dests if not is_ip(d.host)))
        answers: dict[str, tuple[str, ...]] = {}
        for name in names:  # the cache first: only the names it lacks go to the network
            hit = self.cached(name)
            if hit is not None:
                self.stats.hits += 1
                answers[name] = hit
        missing = [n for n in names if n not in answers]
        answers.update(zip(missing, await _each(self.addresses, missing), strict=True))
        flows: list[Flow] = []
        for dest in dests:
            hosts = (dest.host.strip("[]"),) if is_ip(dest.host) else answers[dest.host]
            for address in hosts:
                flow = Flow(dest.transport, address, dest.port)
                if flow not in flows:
                    flows.append(flow)
        return tuple(flows[:MAX_DESTINATIONS])

    async def _lookup(self, rtype: str, name: str) -> tuple[Naptr | Srv, ...]:
        key = (rtype, name)
        found = self._fresh(key)
        if found is not None:
            self.stats.hits += 1
            return found

        async def ask() -> Answer:
            assert self.records is not None
            query = self.records.naptr if rtype == "NAPTR" else self.records.srv
            records, ttl = await query(name)
            if len(records) > MAX_RECORDS:
                log.warning(
                    "DNS: %s %s: %d records, the best %d kept", *key, len(records), MAX_RECORDS
                )
                records = sorted(records, key=_rank)[:MAX_RECORDS]
            return tuple(records), ttl

        return await self._shared(key, ask)

    def _fresh(self, key: Key) -> tuple[Any, ...] | None:
        entry = self._cache.get(key)
        return entry.found if entry is not None and entry.expires > self.clock() else None

    async def _shared(self, key: Key, ask: Callable[[], Awaitable[Answer]]) -> tuple[Any, ...]:
        """``ask``'s answer, cached; concurrent askers of one key share one query."""
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(key, ask))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(key, None))
        # Shielded: one caller giving up (its own timeout) must not cancel the others' query.
        return await asyncio.shield(pending)

    async def _ask(self, key: Key, ask: Callable[[], Awaitable[Answer]]) -> tuple[Any, ...]:
        self.stats.misses += 1
        ttl: float | None = None
        try:
            found, ttl = await asyncio.wait_for(ask(), self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:  # UnicodeError: a bad IDNA name
            log.warning("DNS: %s %s: %s", *key, exc or type(exc).__name__)
            found = ()
            self.stats.failures += 1
        if not found:
            keep = self.negative_ttl
        else:
            keep = self.ttl if ttl is None else min(max(ttl, self.min_ttl), self.max_ttl)
        now = self.clock()
        if len(self._cache) >= self.max_entries:
            # Expired entries first; if none, the oldest inserted (dicts keep order).
            for old in [k for k, e in self._cache.items() if e.expires <= now] or [
                next(iter(self._cache))
            ]:
                del self._cache[old]
        self._cache.pop(key, None)
        self._cache[key] = _Entry(found, now + keep)
        return found

    async def _target_flows(self, target: RingTarget) -> tuple[Flow, ...]:
        """A named target's destinations: located from its Request-URI when the flow goes to
        the URI's own host (RFC 3263), else the flow's host by A/AAAA."""
        try:
            uri = parse_uri(target.uri)
        except SipError:
            uri = None
        given = target.flow
        if isinstance(uri, SipUri) and uri.host.strip("[]").rstrip(".").lower() == given.host:
            # A port in the URI pins the server, and then the flow's transport (a TCP trunk
            # named with its port) is the one: its URI need not say so.
            transport = uri.param("transport") or (given.transport if uri.port else None)
            return await self.locate(uri.host, uri.port, transport, secure=uri.scheme == "sips")
        flow = await self.flow(given)
        return (flow,) if flow is not None else ()

    async def resolve_waves(self, waves: tuple[Wave, ...]) -> tuple[Wave, ...]:
        """``waves`` with every named target resolved to its first destination, the others its
        ``fallbacks`` (and the wave a ``silence`` bound, so a dead first server is left in
        seconds); unresolvable targets dropped, and waves left empty with them (the call goes
        on to the next step)."""
        named = [t for w in waves for t in w.targets if not is_ip(t.flow.host)]
        if not named:
            return waves
        found = await _each(self._target_flows, named)
        answers = {id(t): flows for t, flows in zip(named, found, strict=True)}
        out: list[Wave] = []
        for wave in waves:
            kept: list[RingTarget] = []
            for target in wave.targets:
                if is_ip(target.flow.host):
                    kept.append(target)
                elif flows := answers[id(target)]:
                    spare = flows[1 : 1 + MAX_FALLBACKS]
                    kept.append(replace(target, flow=flows[0], fallbacks=spare))
                else:
                    log.warning(
                        "target %s: %s does not resolve, skipped", target.uri, target.flow.host
                    )
            if kept:
                spares = any(t.fallbacks for t in kept) and wave.silence is None
                silence = SERVER_SILENCE if spares else wave.silence
                out.append(replace(wave, targets=tuple(kept), silence=silence))
        return tuple(out)


MAX_SKIPPED = 64  # waves in a row a route may hand out with nobody reachable


class ResolvingRoute:
    """A live route whose waves come out with their names resolved (the module)."""

    def __init__(self, inner: Route, dns: HostResolver, account_id: uuid.UUID) -> None:
        self.inner = inner
        self.dns = dns
        self.account_id = account_id

    async def next(self, result: StepResult | None) -> CallStep:
        step = await self.inner.next(result)
        for _ in range(MAX_SKIPPED):
            if not isinstance(step, Wave):
                return step
            kept = await self.dns.resolve_waves((step,))
            if kept:
                return kept[0]
            step = await self.inner.next(StepResult(StepResultKind.unavailable))
        # A route that never stops offering dead names: end the call rather than spin.
        return Reject(480, "Temporarily Unavailable", account_id=self.account_id)

    def connected(self, by: Target) -> None:
        self.inner.connected(by)

    @property
    def path(self) -> tuple[str, ...]:
        return self.inner.path

    @property
    def rating(self) -> Rating | None:
        return self.inner.rating


def resolving(inner: FeatureResolver, dns: HostResolver) -> FeatureResolver:
    """The resolver the B2BUA calls: ``inner``'s plans with their host names resolved."""

    async def resolve(call: InboundCall) -> Plan | Reject | Pickup:
        outcome = await inner(call)
        if not isinstance(outcome, Plan):
            return outcome
        if outcome.route is not None:
            route = ResolvingRoute(outcome.route, dns, outcome.account_id)
            return replace(outcome, route=route)
        if outcome.waves:
            waves = await dns.resolve_waves(outcome.waves)
            if waves is not outcome.waves:
                return replace(outcome, waves=waves)
        return outcome

    return resolve
