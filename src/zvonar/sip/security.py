"""SIP edge security, sans-IO: failed-auth blocking, scanner filtering, per-source rate limits.

Every component takes `now` from the caller and keeps bounded memory. `SecurityPolicy` is the
facade the transport/UA calls for each incoming request; it returns a decision (`Allow`,
`Drop` — silently, no response — or `Reject(status)`) and queues typed `SecurityEvent`s that
the I/O layer drains with `events()` and logs as structured records.
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from zvonar.sip.errors import SipError
from zvonar.sip.message import SipRequest

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_SCANNER_SIGNATURES",
    "Allow",
    "BlockerConfig",
    "Decision",
    "Drop",
    "DropReason",
    "FailedAuthBlocker",
    "RateLimit",
    "RateLimiter",
    "Reject",
    "ScannerFilter",
    "ScannerMatch",
    "SecurityConfig",
    "SecurityEvent",
    "SecurityEventKind",
    "SecurityPolicy",
]

Address = tuple[str, int]


class SecurityEventKind(enum.Enum):
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    SCANNER = "scanner"
    FLOOD = "flood"


@dataclass(frozen=True)
class SecurityEvent:
    """One security fact for structured logs. `source` is an IP address; an account guard
    (distributed guessing of one account) has `source=None` and the `account` set."""

    kind: SecurityEventKind
    at: float
    source: str | None
    account: str | None = None
    until: float | None = None
    reason: str = ""


Emit = Callable[[SecurityEvent], None]


# --------------------------------------------------------------------------------------------
# Failed authentication blocker
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockerConfig:
    """`max_failures` failures from one IP within `window` seconds block it for `block_for`.

    Per account: `account_max_failures` failures (from any IPs) within `account_window` put the
    account under guard for `account_guard_for`: while guarded, a single failure against it
    blocks the offending IP. With `account_lockout` the account itself is also refused (403)
    while guarded — off by default because it lets an attacker lock a user out.
    """

    max_failures: int = 5
    window: float = 60.0
    block_for: float = 900.0
    account_max_failures: int = 10
    account_window: float = 300.0
    account_guard_for: float = 900.0
    account_lockout: bool = False
    max_tracked: int = 65536  # failure histories kept per kind (IPs, accounts); LRU beyond
    max_blocked: int = 65536  # simultaneous blocks; the soonest-to-expire is dropped beyond

    def __post_init__(self) -> None:
        counts = (self.max_failures, self.account_max_failures, self.max_tracked, self.max_blocked)
        if min(counts) < 1 or min(self.window, self.account_window) <= 0:
            raise ValueError("blocker limits and windows must be positive")


def _push(
    table: OrderedDict[str, deque[float]], key: str, now: float, window: float, cap: int, n: int
) -> int:
    """Record a failure at `now` in a sliding window; returns the failures inside the window."""
    dq = table.get(key)
    if dq is None:
        dq = table[key] = deque(maxlen=n)
        while len(table) > cap:
            table.popitem(last=False)
    table.move_to_end(key)
    while dq and now - dq[0] >= window:  # a failure exactly `window` ago has left the window
        dq.popleft()
    dq.append(now)
    return len(dq)


class FailedAuthBlocker:
    """Counts authentication failures per source IP and per account; blocks sources."""

    def __init__(self, config: BlockerConfig | None = None, *, emit: Emit | None = None) -> None:
        self.config = config or BlockerConfig()
        self._by_source: OrderedDict[str, deque[float]] = OrderedDict()
        self._by_account: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: dict[str, float] = {}  # ip -> until
        self._guarded: dict[str, float] = {}  # account -> until
        # Expiry heaps with lazy deletion: an entry is current only if the dict agrees.
        self._block_heap: list[tuple[float, str]] = []
        self._guard_heap: list[tuple[float, str]] = []
        self._events: list[SecurityEvent] = []
        self._emit: Emit = emit or self._events.append

    def events(self) -> list[SecurityEvent]:
        """Drain the events queued since the last call (only when no `emit` was given)."""
        out = list(self._events)
        self._events.clear()
        return out

    def record_failure(self, source: str | None, account: str | None, now: float) -> None:
        """A request from `source` carried credentials for `account` that were refused.

        `source=None` counts towards the account only (e.g. a trusted gateway relayed it).
        """
        self.handle_timer(now)
        c = self.config
        if account:
            n = _push(
                self._by_account,
                account,
                now,
                c.account_window,
                c.max_tracked,
                c.account_max_failures,
            )
            if account not in self._guarded and n >= c.account_max_failures:
                self._guarded[account] = now + c.account_guard_for
                heapq.heappush(self._guard_heap, (now + c.account_guard_for, account))
                self._emit(
                    SecurityEvent(
                        SecurityEventKind.BLOCKED,
                        now,
                        None,
                        account,
                        now + c.account_guard_for,
                        f"{n} failed authentications for the account within {c.account_window:g}s",
                    )
                )
        if source is None or source in self._blocked:
            return
        n = _push(self._by_source, source, now, c.window, c.max_tracked, c.max_failures)
        if n >= c.max_failures:
            self.block(
                source,
                now,
                c.block_for,
                account=account,
                reason=f"{n} failed authentications within {c.window:g}s",
            )
        elif account and account in self._guarded:
            self.block(
                source,
                now,
                c.block_for,
                account=account,
                reason="failed authentication for a guarded account",
            )

    def block(
        self,
        source: str,
        now: float,
        duration: float,
        *,
        account: str | None = None,
        reason: str = "",
    ) -> None:
        """Block `source` until `now + duration` (extends, never shortens, a current block)."""
        until = now + duration
        current = self._blocked.get(source)
        if current is not None and current >= until:
            return
        if current is None and len(self._blocked) >= self.config.max_blocked:
            _, soonest = _pop_current(self._block_heap, self._blocked)
            del self._blocked[soonest]
            self._emit(SecurityEvent(SecurityEventKind.UNBLOCKED, now, soonest, reason="evicted"))
        self._blocked[source] = until
        heapq.heappush(self._block_heap, (until, source))
        self._by_source.pop(source, None)  # the count starts afresh after the block
        self._emit(SecurityEvent(SecurityEventKind.BLOCKED, now, source, account, until, reason))

    def unblock(self, source: str, now: float) -> None:
        """Lift a block by hand (an administrator's action)."""
        if self._blocked.pop(source, None) is not None:
            self._emit(SecurityEvent(SecurityEventKind.UNBLOCKED, now, source, reason="manual"))

    def is_blocked(self, source: str, now: float) -> bool:
        until = self._blocked.get(source)
        if until is None:
            return False
        if now < until:
            return True
        self.handle_timer(now)
        return False

    def blocked_until(self, source: str, now: float) -> float | None:
        return self._blocked.get(source) if self.is_blocked(source, now) else None

    def is_guarded(self, account: str, now: float) -> bool:
        until = self._guarded.get(account)
        return until is not None and now < until

    def is_account_locked(self, account: str, now: float) -> bool:
        return self.config.account_lockout and self.is_guarded(account, now)

    def next_deadline(self) -> float | None:
        times = [
            _peek_current(self._block_heap, self._blocked),
            _peek_current(self._guard_heap, self._guarded),
        ]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        """Expire blocks and guards whose time has come, emitting UNBLOCKED for each."""
        while (
            until := _peek_current(self._block_heap, self._blocked)
        ) is not None and until <= now:
            _, ip = _pop_current(self._block_heap, self._blocked)
            del self._blocked[ip]
            self._emit(SecurityEvent(SecurityEventKind.UNBLOCKED, now, ip, reason="expired"))
        while (
            until := _peek_current(self._guard_heap, self._guarded)
        ) is not None and until <= now:
            _, account = _pop_current(self._guard_heap, self._guarded)
            del self._guarded[account]
            self._emit(
                SecurityEvent(SecurityEventKind.UNBLOCKED, now, None, account, reason="expired")
            )


def _peek_current(heap: list[tuple[float, str]], current: dict[str, float]) -> float | None:
    """Earliest expiry in `heap` that `current` still holds, dropping outdated entries."""
    while heap and current.get(heap[0][1]) != heap[0][0]:
        heapq.heappop(heap)
    return heap[0][0] if heap else None


def _pop_current(heap: list[tuple[float, str]], current: dict[str, float]) -> tuple[float, str]:
    _peek_current(heap, current)
    return heapq.heappop(heap)


# --------------------------------------------------------------------------------------------
# Scanner filter
# --------------------------------------------------------------------------------------------

DEFAULT_SCANNER_SIGNATURES: tuple[str, ...] = (
    "friendly-scanner",  # SIPVicious svmap/svwar default User-Agent
    "friendly-request",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sundayddr",
    "iwar",
    "sivus",
    "vaxsipuseragent",
    "pplsip",
    "smap",
    "siparmyknife",
)


@dataclass(frozen=True)
class ScannerMatch:
    signature: str
    field: str  # "User-Agent" or "From"


class ScannerFilter:
    """Recognizes known SIP scanning tools by User-Agent or From display name.

    Signatures match case-insensitively as whole words (not inside a longer alphanumeric run),
    so "smap" does not hit "Asmapro". Hits are counted per signature.
    """

    def __init__(self, signatures: Iterable[str] = DEFAULT_SCANNER_SIGNATURES) -> None:
        sigs = sorted({s.lower() for s in signatures}, key=len, reverse=True)
        alternation = "|".join(re.escape(s) for s in sigs) or r"(?!)"
        self._re = re.compile(rf"(?<![a-z0-9])(?:{alternation})(?![a-z0-9])", re.IGNORECASE)
        self.hits: dict[str, int] = {}

    def match_values(self, user_agent: str | None, from_display: str | None) -> ScannerMatch | None:
        for fieldname, value in (("User-Agent", user_agent), ("From", from_display)):
            m = self._re.search(value) if value else None
            if m is not None:
                sig = m.group().lower()
                self.hits[sig] = self.hits.get(sig, 0) + 1
                return ScannerMatch(sig, fieldname)
        return None

    def match(self, request: SipRequest) -> ScannerMatch | None:
        display: str | None
        try:
            display = request.from_.display_name
        except SipError:  # a broken From is the transaction layer's business, not ours
            display = None
        try:
            agent = request.user_agent
        except SipError:
            agent = None
        return self.match_values(agent, display)


# --------------------------------------------------------------------------------------------
# Rate limiter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """Token bucket: `rate` requests per second sustained, bursts of up to `burst`."""

    rate: float
    burst: float


DEFAULT_RATE_LIMITS: Mapping[str, RateLimit] = {
    "REGISTER": RateLimit(rate=2.0, burst=20.0),
    "INVITE": RateLimit(rate=5.0, burst=30.0),
    "*": RateLimit(rate=50.0, burst=200.0),  # every other method
}

_EPS = 1e-9  # float slack so that e.g. 10 × 0.1 s of refill counts as one whole token


class RateLimiter:
    """Token bucket per (source IP, method class), LRU-bounded to `max_sources` buckets.

    Method classes are the keys of `limits`; methods without their own key share "*"
    (no "*" key: such methods are not limited). Evicting the least recently seen bucket
    forgets an idle source, never an active flooder (it is always the most recent).
    """

    def __init__(
        self, limits: Mapping[str, RateLimit] = DEFAULT_RATE_LIMITS, *, max_sources: int = 65536
    ) -> None:
        self.limits = dict(limits)
        self.max_sources = max_sources
        self._buckets: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def allow(self, source: str, method: str, now: float) -> bool:
        cls = method if method in self.limits else "*"
        limit = self.limits.get(cls)
        if limit is None:
            return True
        key = (source, cls)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [limit.burst, now]
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket[1])
            bucket[0] = min(limit.burst, bucket[0] + elapsed * limit.rate)
            bucket[1] = now
        if bucket[0] + _EPS >= 1.0:
            bucket[0] = max(0.0, bucket[0] - 1.0)
            return True
        return False

    def __len__(self) -> int:
        return len(self._buckets)


# --------------------------------------------------------------------------------------------
# Facade
# --------------------------------------------------------------------------------------------


class DropReason(enum.Enum):
    BLOCKED = "blocked"
    SCANNER = "scanner"
    FLOOD = "flood"


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Drop:
    """Discard silently: no response, so scanners learn nothing (and get no amplification)."""

    reason: DropReason
    detail: str = ""


@dataclass(frozen=True)
class Reject:
    """Answer with `status` (e.g. 503 + Retry-After for a flood over a reliable transport)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


Decision = Allow | Drop | Reject
_ALLOW = Allow()


@dataclass(frozen=True)
class SecurityConfig:
    blocker: BlockerConfig = field(default_factory=BlockerConfig)
    rate_limits: Mapping[str, RateLimit] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    max_rate_sources: int = 65536
    scanner_signatures: tuple[str, ...] = DEFAULT_SCANNER_SIGNATURES
    block_scanners_for: float | None = 3600.0  # also block a scanner's IP; None: just drop
    flood_status: int | None = None  # None: drop floods silently; 503: Reject with Retry-After
    flood_retry_after: int = 30
    trusted: tuple[str, ...] = ()  # CIDRs (carrier trunks, monitoring) exempt from every check
    event_interval: float = 60.0  # at most one SCANNER/FLOOD event per source per interval
    max_event_sources: int = 4096


class SecurityPolicy:
    """What the transport/UA asks about each incoming request, before any processing.

    Order: trusted → Allow; blocked source → Drop; scanner → Drop (and block the IP);
    over the rate → Drop (or Reject 503). After digest verification the UA reports refusals
    with `record_auth_failure` (a `Failed` from `DigestChallenger.check`) and asks
    `check_account` before accepting a login when account lockout is configured.
    """

    def __init__(self, config: SecurityConfig | None = None) -> None:
        self.config = config or SecurityConfig()
        self._events: list[SecurityEvent] = []
        self.blocker = FailedAuthBlocker(self.config.blocker, emit=self._events.append)
        self.scanners = ScannerFilter(self.config.scanner_signatures)
        self.rates = RateLimiter(self.config.rate_limits, max_sources=self.config.max_rate_sources)
        self._trusted = tuple(ipaddress.ip_network(n, strict=False) for n in self.config.trusted)
        self._last_event: OrderedDict[tuple[str, SecurityEventKind], float] = OrderedDict()
        self.counters: dict[str, int] = {"allowed": 0, **{r.value: 0 for r in DropReason}}

    def events(self) -> list[SecurityEvent]:
        out = list(self._events)
        self._events.clear()
        return out

    def is_trusted(self, ip: str) -> bool:
        if not self._trusted:
            return False
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
        return any(addr in net for net in self._trusted)

    def check_source(self, source: Address, now: float) -> Allow | Drop:
        """The cheap pre-parse check: drop datagrams from blocked IPs before parsing them."""
        ip = source[0]
        if not self.is_trusted(ip) and self.blocker.is_blocked(ip, now):
            self.counters[DropReason.BLOCKED.value] += 1
            return Drop(DropReason.BLOCKED)
        return _ALLOW

    def check_request(self, request: SipRequest, source: Address, now: float) -> Decision:
        ip = source[0]
        if self.is_trusted(ip):
            self.counters["allowed"] += 1
            return _ALLOW
        if self.blocker.is_blocked(ip, now):
            self.counters[DropReason.BLOCKED.value] += 1
            return Drop(DropReason.BLOCKED)
        hit = self.scanners.match(request)
        if hit is not None:
            self.counters[DropReason.SCANNER.value] += 1
            self._rare_event(
                SecurityEventKind.SCANNER, ip, now, f"{hit.field} matches {hit.signature!r}"
            )
            if self.config.block_scanners_for is not None:
                self.blocker.block(
                    ip, now, self.config.block_scanners_for, reason=f"scanner {hit.signature!r}"
                )
            return Drop(DropReason.SCANNER, hit.signature)
        if not self.rates.allow(ip, request.method, now):
            self.counters[DropReason.FLOOD.value] += 1
            self._rare_event(SecurityEventKind.FLOOD, ip, now, f"{request.method} rate exceeded")
            if self.config.flood_status is not None:
                retry = (("Retry-After", str(self.config.flood_retry_after)),)
                return Reject(self.config.flood_status, "rate limited", retry)
            return Drop(DropReason.FLOOD, request.method)
        self.counters["allowed"] += 1
        return _ALLOW

    def record_auth_failure(self, source: Address, account: str | None, now: float) -> None:
        # A trusted gateway is never blocked but still counts towards the account's guard.
        ip = None if self.is_trusted(source[0]) else source[0]
        self.blocker.record_failure(ip, account, now)

    def check_account(self, account: str, now: float) -> Allow | Reject:
        if self.blocker.is_account_locked(account, now):
            return Reject(403, "Forbidden")
        return _ALLOW

    def next_deadline(self) -> float | None:
        return self.blocker.next_deadline()

    def handle_timer(self, now: float) -> None:
        self.blocker.handle_timer(now)

    def _rare_event(self, kind: SecurityEventKind, ip: str, now: float, reason: str) -> None:
        key = (ip, kind)
        last = self._last_event.get(key)
        if last is not None and now - last < self.config.event_interval:
            return
        self._last_event[key] = now
        self._last_event.move_to_end(key)
        while len(self._last_event) > self.config.max_event_sources:
            self._last_event.popitem(last=False)
        self._emit(SecurityEvent(kind, now, ip, reason=reason))

    def _emit(self, event: SecurityEvent) -> None:
        self._events.append(event)
