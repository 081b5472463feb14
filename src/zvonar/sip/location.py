"""Location service (RFC 3261 §10.3, §16.5) and its persistence.

A `Binding` maps an address-of-record to one Contact, together with where the REGISTER really
came from (RFC 3581 received/rport, the transport and the connection "flow") so a UA behind
NAT is reached on the flow it registered over even when its Contact names a private address.

`LocationService` is the in-memory index (sans-IO, `now` injected). Persistence goes through
the `LocationStore` protocol; this module ships an in-memory store and a JSON-file store (the
only I/O here, kept out of the protocol logic); the platform adds an SQL one.
"""

from __future__ import annotations

import enum
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from zvonar.sip.errors import SipError
from zvonar.sip.uri import SipUri, TelUri, Uri, parse_uri, unescape, uri_equal

__all__ = [
    "Binding",
    "BindingEvent",
    "BindingEventKind",
    "InMemoryLocationStore",
    "JsonFileLocationStore",
    "LocationService",
    "LocationStore",
    "LocationStoreError",
    "Target",
    "aor_key",
]

Address = tuple[str, int]
BindingKey = tuple[str, str]  # (aor, contact)

# Transports whose flows are connections: a binding's flow id is only meaningful while the
# connection lives, so it is dropped when bindings are restored after a restart.
_CONNECTION_TRANSPORTS = frozenset({"TCP", "TLS", "WS", "WSS", "SCTP"})


class LocationStoreError(SipError):
    """The binding store failed (unreadable file, failed write): §10.3 asks for a 500."""

    default_status = 500


def aor_key(uri: Uri) -> str:
    """Canonical address-of-record (§10.3 step 5): "sip:user@host", escapes resolved,
    host lower-cased, port and every parameter dropped; sips AORs share the sip key."""
    if isinstance(uri, SipUri):
        user = unescape(uri.user) if uri.user is not None else None
        return f"sip:{user}@{uri.host}" if user is not None else f"sip:{uri.host}"
    if isinstance(uri, TelUri):
        return f"tel:{uri.digits}"
    raise SipError(f"not a registrable address-of-record: {uri}", 404)


@dataclass(frozen=True)
class Target:
    """Where to send a request for a binding: the REGISTER's source over its transport,
    through `flow_id` (a live connection id of sip/io) when there is one."""

    transport: str
    host: str
    port: int
    flow_id: str | None = None


@dataclass(frozen=True)
class Binding:
    aor: str
    contact: str  # the Contact URI as registered; it becomes the Request-URI (§16.5)
    expires_at: float  # on the registrar's `now` time base
    q: float = 1.0
    call_id: str = ""
    cseq: int = 0
    source: Address = ("", 0)  # where the REGISTER came from (RFC 3581 received/rport)
    transport: str = "UDP"
    flow_id: str | None = None
    registered_at: float = 0.0
    params: tuple[tuple[str, str | None], ...] = ()  # other Contact params (+sip.instance…)
    path: tuple[str, ...] = ()  # RFC 3327 Path values, outermost first
    user_agent: str | None = None

    @property
    def key(self) -> BindingKey:
        return (self.aor, self.contact)

    @property
    def contact_uri(self) -> Uri:
        return parse_uri(self.contact)

    @property
    def target(self) -> Target:
        return Target(self.transport, self.source[0], self.source[1], self.flow_id)

    def is_live(self, now: float) -> bool:
        return now < self.expires_at

    def remaining(self, now: float) -> int:
        """Whole seconds left, rounded down (so a UA refreshes early, never late)."""
        return max(0, math.floor(self.expires_at - now + 1e-6))

    def to_json(self, wall_offset: float = 0.0) -> dict[str, Any]:
        return {
            "aor": self.aor,
            "contact": self.contact,
            "expires_at": self.expires_at + wall_offset,
            "q": self.q,
            "call_id": self.call_id,
            "cseq": self.cseq,
            "source": [self.source[0], self.source[1]],
            "transport": self.transport,
            "flow_id": self.flow_id,
            "registered_at": self.registered_at + wall_offset,
            "params": [[k, v] for k, v in self.params],
            "path": list(self.path),
            "user_agent": self.user_agent,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], wall_offset: float = 0.0) -> Binding:
        return cls(
            aor=str(data["aor"]),
            contact=str(data["contact"]),
            expires_at=float(data["expires_at"]) - wall_offset,
            q=float(data["q"]),
            call_id=str(data["call_id"]),
            cseq=int(data["cseq"]),
            source=(str(data["source"][0]), int(data["source"][1])),
            transport=str(data["transport"]),
            flow_id=None if data.get("flow_id") is None else str(data["flow_id"]),
            registered_at=float(data["registered_at"]) - wall_offset,
            params=tuple((str(k), None if v is None else str(v)) for k, v in data["params"]),
            path=tuple(str(p) for p in data["path"]),
            user_agent=None if data.get("user_agent") is None else str(data["user_agent"]),
        )


class LocationStore(Protocol):
    """Persistence of bindings so registrations survive a restart.

    A store may also offer `batch()`, a context manager grouping the calls made inside it
    into one write; `LocationService` uses it when present.
    """

    def load_all(self) -> list[Binding]: ...

    def save(self, binding: Binding) -> None: ...

    def delete(self, aor: str, contact: str) -> None: ...


class InMemoryLocationStore:
    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self.bindings: dict[BindingKey, Binding] = {b.key: b for b in bindings}

    def load_all(self) -> list[Binding]:
        return list(self.bindings.values())

    def save(self, binding: Binding) -> None:
        self.bindings[binding.key] = binding

    def delete(self, aor: str, contact: str) -> None:
        self.bindings.pop((aor, contact), None)


class JsonFileLocationStore:
    """All bindings in one JSON file, rewritten atomically (temp file, fsync, rename).

    Times are stored as wall-clock seconds: `wall_offset` is `wall time - now` for the
    caller's `now` base (e.g. `time.time() - time.monotonic()` taken once by sip/io), so a
    restart with a new monotonic origin restores exact remaining lifetimes. Every change
    rewrites the whole file: fine for thousands of bindings, not for a large carrier.
    """

    VERSION = 1

    def __init__(self, path: str | os.PathLike[str], *, wall_offset: float = 0.0) -> None:
        self.path = Path(path)
        self.wall_offset = wall_offset
        self._cache: dict[BindingKey, Binding] | None = None
        self._batch_depth = 0
        self._dirty = False
        self.writes = 0  # files written so far (observability, tests)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Defer writes: everything inside becomes one file write at the end."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0 and self._dirty:
                self._write(self._loaded().values())

    def load_all(self) -> list[Binding]:
        self._cache = None
        return list(self._loaded().values())

    def save(self, binding: Binding) -> None:
        cache = self._loaded()
        cache[binding.key] = binding
        self._changed()

    def delete(self, aor: str, contact: str) -> None:
        if self._loaded().pop((aor, contact), None) is not None:
            self._changed()

    def _changed(self) -> None:
        self._dirty = True
        if self._batch_depth == 0:
            self._write(self._loaded().values())

    def _loaded(self) -> dict[BindingKey, Binding]:
        if self._cache is None:
            self._cache = {b.key: b for b in self._read()}
        return self._cache

    def _read(self) -> list[Binding]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LocationStoreError(f"cannot read {self.path}: {exc}") from exc
        try:
            doc = json.loads(text)
            if doc.get("version") != self.VERSION:
                raise LocationStoreError(f"{self.path}: unknown version {doc.get('version')!r}")
            return [Binding.from_json(b, self.wall_offset) for b in doc["bindings"]]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise LocationStoreError(f"{self.path} is not a location file: {exc}") from exc

    def _write(self, bindings: Iterable[Binding]) -> None:
        doc = {
            "version": self.VERSION,
            "bindings": [b.to_json(self.wall_offset) for b in bindings],
        }
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)  # atomic: readers see the old or the new file
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise LocationStoreError(f"cannot write {self.path}: {exc}") from exc
        self._dirty = False
        self.writes += 1


class BindingEventKind(enum.Enum):
    ADDED = "added"
    REFRESHED = "refreshed"
    REMOVED = "removed"  # unregistered (Expires 0, `*`) or displaced by max-contacts
    EXPIRED = "expired"


@dataclass(frozen=True)
class BindingEvent:
    kind: BindingEventKind
    binding: Binding
    at: float


@dataclass
class LocationService:
    """Bindings by AOR, backed by a `LocationStore`. Lookups never return expired bindings;
    `handle_timer` purges them (and `next_deadline` says when the next one expires)."""

    store: LocationStore = field(default_factory=InMemoryLocationStore)
    _by_aor: dict[str, dict[str, Binding]] = field(default_factory=dict, init=False)
    _events: list[BindingEvent] = field(default_factory=list, init=False)
    # The earliest expiry, computed when asked after a change: the runner asks after every
    # message, and a scan of every binding per datagram grows with the number of phones.
    _deadline: float | None = field(default=None, init=False)
    _deadline_stale: bool = field(default=True, init=False)

    def load(self, now: float) -> int:
        """Restore bindings from the store; expired ones are deleted from it. Connection
        flow ids do not survive a restart and are cleared. Returns the number restored."""
        self._by_aor.clear()
        self._deadline_stale = True
        restored = 0
        with self._batch():
            for b in self.store.load_all():
                if not b.is_live(now):
                    self.store.delete(b.aor, b.contact)
                    continue
                if b.transport.upper() in _CONNECTION_TRANSPORTS:
                    b = replace(b, flow_id=None)
                self._by_aor.setdefault(b.aor, {})[b.contact] = b
                restored += 1
        return restored

    def _batch(self) -> AbstractContextManager[object]:
        batch = getattr(self.store, "batch", None)
        return batch() if callable(batch) else nullcontext()

    def events(self) -> list[BindingEvent]:
        out = list(self._events)
        self._events.clear()
        return out

    def bindings(self, aor: str) -> list[Binding]:
        """Every stored binding of `aor`, live or not yet purged."""
        return list(self._by_aor.get(aor, {}).values())

    def all_bindings(self) -> list[Binding]:
        return [b for per in self._by_aor.values() for b in per.values()]

    def find(self, aor: str, contact: Uri) -> Binding | None:
        """The binding of `aor` whose Contact equals `contact` by §19.1.4 comparison."""
        for b in self._by_aor.get(aor, {}).values():
            try:
                if b.contact == str(contact) or uri_equal(b.contact_uri, contact):
                    return b
            except SipError:
                continue
        return None

    def lookup(self, aor: str | Uri, now: float) -> list[Binding]:
        """Live bindings of an AOR, highest q first, then most recently registered (§16.6)."""
        key = aor if isinstance(aor, str) else aor_key(aor)
        live = [b for b in self._by_aor.get(key, {}).values() if b.is_live(now)]
        return sorted(live, key=lambda b: (-b.q, -b.registered_at, b.contact))

    def apply(
        self,
        saves: Iterable[Binding],
        deletes: Iterable[Binding],
        now: float,
        removed_kind: BindingEventKind = BindingEventKind.REMOVED,
    ) -> None:
        """Commit changes: the store first, then memory, so a failed store write changes
        nothing visible (§10.3 "committed if and only if all binding updates succeed")."""
        saves, deletes = list(saves), list(deletes)
        done: list[tuple[str, Binding]] = []
        try:
            with self._batch():
                try:
                    for b in deletes:
                        self.store.delete(b.aor, b.contact)
                        done.append(("deleted", b))
                    for b in saves:
                        self.store.save(b)
                        done.append(("saved", b))
                except (OSError, SipError):
                    self._undo(done)
                    raise
        except (OSError, SipError) as exc:
            raise LocationStoreError(f"binding update failed: {exc}") from exc
        self._commit_memory(saves, deletes, now, removed_kind)

    def _commit_memory(
        self,
        saves: list[Binding],
        deletes: list[Binding],
        now: float,
        removed_kind: BindingEventKind,
    ) -> None:
        self._deadline_stale = True
        for b in deletes:
            per = self._by_aor.get(b.aor)
            if per is not None:
                per.pop(b.contact, None)
                if not per:
                    del self._by_aor[b.aor]
            self._events.append(BindingEvent(removed_kind, b, now))
        for b in saves:
            per = self._by_aor.setdefault(b.aor, {})
            kind = BindingEventKind.REFRESHED if b.contact in per else BindingEventKind.ADDED
            per[b.contact] = b
            self._events.append(BindingEvent(kind, b, now))

    def _undo(self, done: list[tuple[str, Binding]]) -> None:
        for what, b in reversed(done):
            try:
                if what == "saved":
                    old = self._by_aor.get(b.aor, {}).get(b.contact)
                    if old is None:
                        self.store.delete(b.aor, b.contact)
                    else:
                        self.store.save(old)
                else:
                    self.store.save(b)
            except (OSError, SipError):
                continue  # best effort: memory stays authoritative until the next write

    def next_deadline(self) -> float | None:
        if self._deadline_stale:
            times = [b.expires_at for b in self.all_bindings()]
            self._deadline = min(times) if times else None
            self._deadline_stale = False
        return self._deadline

    def handle_timer(self, now: float) -> list[Binding]:
        """Purge bindings whose time is up; returns them (and queues EXPIRED events)."""
        return self._purge([b for b in self.all_bindings() if not b.is_live(now)], now)

    def purge(self, aor: str, now: float) -> list[Binding]:
        """Purge the expired bindings of one AOR (the registrar does it before an update)."""
        return self._purge([b for b in self.bindings(aor) if not b.is_live(now)], now)

    def _purge(self, expired: list[Binding], now: float) -> list[Binding]:
        if expired:
            try:
                self.apply((), expired, now, BindingEventKind.EXPIRED)
            except LocationStoreError:
                # Forget them anyway: `load` purges expired bindings the store still holds.
                self._commit_memory([], expired, now, BindingEventKind.EXPIRED)
        return expired
