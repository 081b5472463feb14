"""Host names of trunks and SIP URI targets → addresses, off the event loop, with a TTL cache.

RFC 3263 lite: a target's transport comes from its URI (``transport=`` or UDP) and its port
from the URI (or 5060); only the address is looked up, as A/AAAA through the system resolver
(``loop.getaddrinfo``, which runs in the default executor, so the loop never blocks). NAPTR
and SRV (§4.1-4.2) are not done: they need a DNS client the standard library lacks.

Every lookup is bounded by ``timeout``; a failure (NXDOMAIN, timeout, no usable address) is
cached for ``negative_ttl`` and makes the target *unavailable* — it is dropped from its wave,
a wave left empty is dropped, and the call moves on like for an unregistered phone. A call is
never refused because of DNS. ``getaddrinfo`` does not tell the records' TTL, so answers are
kept for a fixed ``ttl``. Concurrent lookups of one name share one query.

Wiring: the PBX resolver emits targets whose ``Flow.host`` may be a name (:func:`named_flow`);
:func:`resolving` wraps the resolver the B2BUA calls so that every plan's names are resolved
before a single INVITE goes out (``Flow`` must carry an IP literal for the transports): the
plan's waves, and each wave a live route (``Plan.route``) hands out as the call goes — a wave
left with nobody is reported back to the route as ``unavailable`` and the route moves on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

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
from zvonar.sip.ua import Flow

__all__ = [
    "DnsStats",
    "HostResolver",
    "Lookup",
    "ResolvingRoute",
    "is_ip",
    "named_flow",
    "resolving",
]

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[list[str]]]
"""host name → its addresses (IP literals), in preference order; raises OSError on failure."""

TRANSPORTS = ("UDP", "TCP")


def is_ip(host: str) -> bool:
    """``host`` is an IP literal (IPv6 with or without brackets)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def named_flow(host: str, port: int | None, transport: str = "UDP") -> Flow | None:
    """A flow to ``host`` (an IP literal or a name still to resolve), or None when the
    transport is one we cannot reach (TLS, WS…)."""
    transport = transport.upper()
    if transport not in TRANSPORTS or not host:
        return None
    bare = host.strip("[]") if is_ip(host) else host.rstrip(".").lower()
    return Flow(transport, bare, port or 5060)


@dataclass
class DnsStats:
    hits: int = 0
    misses: int = 0  # lookups sent to the system resolver
    failures: int = 0  # of those, how many found nothing (or timed out)


@dataclass(frozen=True)
class _Entry:
    addresses: tuple[str, ...]  # empty: a cached failure
    expires: float


async def system_lookup(host: str) -> list[str]:
    """A/AAAA through ``getaddrinfo`` in the loop's executor; IPv4 first (our SIP sockets
    listen on IPv4 unless told otherwise)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return sorted(found, key=lambda a: ":" in a)  # stable: v4 before v6


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
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[tuple[str, ...]]] = {}

    def cached(self, host: str) -> tuple[str, ...] | None:
        """The cached answer for ``host`` if still fresh (empty: a cached failure)."""
        entry = self._cache.get(host.rstrip(".").lower())
        if entry is None or entry.expires <= self.clock():
            return None
        return entry.addresses

    async def addresses(self, host: str) -> tuple[str, ...]:
        """Addresses of ``host`` (an IP literal is its own); empty when it does not resolve."""
        name = host.rstrip(".").lower()
        entry = self._cache.get(name)  # before is_ip: parsing a name as an IP costs more
        if entry is not None and entry.expires > self.clock():
            self.stats.hits += 1
            return entry.addresses
        if is_ip(host):
            return (host.strip("[]"),)
        pending = self._inflight.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._query(name))
            self._inflight[name] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(name, None))
        # Shielded: one caller giving up (its own timeout) must not cancel the others' query.
        return await asyncio.shield(pending)

    async def flow(self, flow: Flow) -> Flow | None:
        """``flow`` with its host resolved to the first address, or None if it does not."""
        if is_ip(flow.host):
            return flow
        found = await self.addresses(flow.host)
        return replace(flow, host=found[0]) if found else None

    async def resolve_waves(self, waves: tuple[Wave, ...]) -> tuple[Wave, ...]:
        """``waves`` with every named target resolved; unresolvable targets dropped, and
        waves left empty with them (the call goes on to the next step)."""
        names = list({t.flow.host for w in waves for t in w.targets if not is_ip(t.flow.host)})
        if not names:
            return waves
        found = await asyncio.gather(*(self.addresses(n) for n in names))
        answers = dict(zip(names, found, strict=True))
        out: list[Wave] = []
        for wave in waves:
            kept: list[RingTarget] = []
            for target in wave.targets:
                host = target.flow.host
                if is_ip(host):
                    kept.append(target)
                elif answers[host]:
                    kept.append(replace(target, flow=replace(target.flow, host=answers[host][0])))
                else:
                    log.warning("target %s: %s does not resolve, skipped", target.uri, host)
            if kept:
                out.append(replace(wave, targets=tuple(kept)))
        return tuple(out)

    async def _query(self, name: str) -> tuple[str, ...]:
        self.stats.misses += 1
        try:
            raw = await asyncio.wait_for(self.lookup(name), self.timeout)
            found = tuple(a for a in raw if is_ip(a))
        except (OSError, TimeoutError, ValueError) as exc:  # UnicodeError: a bad IDNA name
            log.warning("DNS: %s: %s", name, exc or type(exc).__name__)
            found = ()
        if not found:
            self.stats.failures += 1
        self._store(name, found)
        return found

    def _store(self, name: str, found: tuple[str, ...]) -> None:
        now = self.clock()
        if len(self._cache) >= self.max_entries:
            # Expired entries first; if none, the oldest inserted (dicts keep order).
            for key in [k for k, e in self._cache.items() if e.expires <= now] or [
                next(iter(self._cache))
            ]:
                del self._cache[key]
        self._cache.pop(name, None)
        self._cache[name] = _Entry(found, now + (self.ttl if found else self.negative_ttl))


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
