"""Trunks that register at their carrier: one REGISTER binding per trunk, kept alive.

A trunk registers when it is active, its ``auth_mode`` is ``registration`` and it has a
username and password (one imported from an exported configuration has no password until an
admin sets it: skipped meanwhile). The binding (RFC 3261 §10.2):

- Request-URI ``sip:<registrar or host>[:port]``, To/From ``sip:<username>@<same domain>``,
  Contact ``sip:<username>@<our address for that flow>;line=<token>``, sent to the registrar
  (or the host) at the trunk's port and transport (UDP, TCP or TLS; a TLS trunk on a PBX
  without a TLS listener is reported ``unsupported``, not registered);
- digest (§22.2) answered by :class:`~zvonar.sip.outbound.OutboundRegistration`, which also
  refreshes before expiry (50-80 % of the granted time), backs off exponentially with jitter
  after a failure, honours 423 Min-Expires, and un-REGISTERs (Expires: 0) on :meth:`stop`;
- a registrar host name goes through pbx/dns.py (RFC 3263: SRV when the trunk names no
  port); one that does not resolve is retried with the same back-off (the trunk shows
  ``unresolved`` meanwhile). When the registrar has several servers, a REGISTER that times
  out or gets 503 makes the retry go to the next one (§4.3), and the binding stays with
  whichever server took it; ``server`` in the status says which.

The ``line`` token (random, one per binding, as Asterisk's ``line`` option does) tells the
carrier's calls apart: it sends them to the bound Contact, so their Request-URI carries it back,
and :meth:`TrunkRegistrations.caller_for_line` names the trunk they come from for the INVITE
gate (pbx/invite_auth.py): such a call is a trunk's, trusted as an IP-auth trunk's is. A
carrier that rewrites the Request-URI to the dialed number loses the token; its calls are
still told by where they come from, when that is the registrar's own address and port (its
SIP port over UDP, or the connection our REGISTER opened): :meth:`caller_for_source`.

The registrations ride on the PBX's one ``UserAgent`` (``ua.add_registration``): their
requests and timers are the runner's. Trunk edits (``TrunkChanged``) re-register the trunks
whose registration settings changed and drop the ones gone. :meth:`status` is what the API
will show.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import select

from zvonar.calls.plan import CallerAuth
from zvonar.core.bus import EventBus
from zvonar.core.events import Event
from zvonar.directory.events import TrunkChanged
from zvonar.directory.models import Trunk, TrunkAuth
from zvonar.directory.secrets import open_password
from zvonar.pbx.dns import HostResolver, is_ip, named_flow, server_part
from zvonar.pbx.invite_auth import trunk_auth
from zvonar.sip.auth import ClientCredentials
from zvonar.sip.errors import SipError
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.locate import DEFAULT_PORTS
from zvonar.sip.outbound import (
    OutboundRegistration,
    Registered,
    RegistrationConfig,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
)
from zvonar.sip.ua import Flow, RegistrationUpdate, UaEvent
from zvonar.sip.uri import SipUri
from zvonar.store.base import utcnow
from zvonar.store.db import Database
from zvonar.store.sealed import Sealer, UnsealError

__all__ = ["RegState", "TrunkRegistrationStatus", "TrunkRegistrations"]

log = logging.getLogger(__name__)

UNREADABLE = "the stored password does not open with this secret_key: enter it again"


class RegState(enum.StrEnum):
    resolving = "resolving"  # looking the registrar's name up
    unresolved = "unresolved"  # it did not resolve; retried with back-off
    registering = "registering"  # a REGISTER is out
    registered = "registered"
    failed = "failed"  # refused or timed out; retried with back-off
    # A transport this PBX does not listen on (TLS without a certificate).
    unsupported = "unsupported"
    stopped = "stopped"  # unregistered (shutdown, trunk edited or removed)


@dataclass(frozen=True)
class TrunkRegistrationStatus:
    """One trunk's binding as the API shows it. ``expires``: seconds granted by the
    carrier; ``retry_at`` (wall clock): when a failed or unresolved one tries again."""

    trunk_id: uuid.UUID
    account_id: uuid.UUID
    trunk_name: str
    registrar: str  # host:port (host;transport=… when located by SRV) we register at
    state: RegState
    server: str | None = None  # the address:port our REGISTERs go to now
    expires: int | None = None
    last_status: int | None = None  # the last final response (None: timeout / no answer)
    last_reason: str | None = None
    failures: int = 0  # consecutive
    retry_at: datetime | None = None
    updated_at: datetime | None = None


# A registrar server's failures that send the retry to its next server (RFC 3263 §4.3: a
# timeout or transport error, or 503); anything else is the account's and would repeat there.
SERVER_FAILURES = frozenset({None, 500, 503, 504})


def _where(flow: Flow) -> str:
    return f"[{flow.host}]:{flow.port}" if ":" in flow.host else f"{flow.host}:{flow.port}"


@dataclass(frozen=True)
class _Settings:
    """What a trunk's registration depends on: a change re-registers it."""

    domain: str
    port: int | None  # None: located by SRV
    transport: str
    username: str
    password: str = field(repr=False)


def _settings(trunk: Trunk, sealer: Sealer | None) -> _Settings | None:
    """What to register with; None: nothing to register. ``UnsealError``: the stored password
    does not open with this installation's key."""
    wanted = trunk.active and trunk.auth_mode is TrunkAuth.registration
    if not wanted or not trunk.username or not trunk.password:
        return None
    password = open_password(sealer, trunk) or ""
    domain = (trunk.registrar or trunk.host).strip("[]").rstrip(".").lower()
    return _Settings(domain, trunk.port, trunk.transport.value.upper(), trunk.username, password)


@dataclass
class _Slot:
    trunk_id: uuid.UUID
    settings: _Settings
    status: TrunkRegistrationStatus
    reg: OutboundRegistration | None = None
    retry: asyncio.TimerHandle | None = None
    dns_failures: int = 0
    servers: tuple[Flow, ...] = ()  # the registrar's, in RFC 3263 order
    server: int = 0  # the one in use
    srtp: bool = False  # the trunk takes secure calls only (Trunk.srtp)
    line: str = field(default_factory=lambda: secrets.token_hex(8))  # the Contact's ;line=


class TrunkRegistrations:
    """``await start()``, ``attach(bus)``, ``status()``, ``await stop()`` (the module)."""

    def __init__(
        self,
        db: Database,
        runner: SipRunner,
        dns: HostResolver | None = None,
        *,
        expires: int = 3600,
        retry_base: float = 2.0,
        retry_max: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.runner = runner
        self.dns = dns
        self.expires = expires
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.clock = clock
        self.rng = rng or random.Random()
        self._slots: dict[uuid.UUID, _Slot] = {}
        # Trunks whose password does not open (the secret key changed): shown, not registered.
        self._unreadable: dict[uuid.UUID, TrunkRegistrationStatus] = {}
        self._by_reg: dict[int, _Slot] = {}
        self._by_line: dict[str, _Slot] = {}
        # The registrars' addresses; None: to be rebuilt at the next lookup (a binding was
        # located or dropped: at start-up, one rebuild for all the trunks, not one each).
        self._by_source: dict[tuple[str, int], list[_Slot]] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._changed = asyncio.Event()  # set on every registration event (stop() waits)
        runner.add_event_hook(self._on_event)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Register every trunk that should be (see the module); returns without waiting for
        the carriers' answers."""
        await self.reload()

    def attach(self, bus: EventBus) -> Callable[[], None]:
        async def on_trunk(_event: Event) -> None:
            await self.reload()

        return bus.subscribe(TrunkChanged, on_trunk)

    async def reload(self) -> None:
        """Bring the bindings in line with the trunks table."""
        async with self._lock:
            if self._closed:
                return
            async with self.db.read() as s:
                trunks = list(await s.scalars(select(Trunk)))
            wanted: dict[uuid.UUID, tuple[Trunk, _Settings]] = {}
            self._unreadable = {}
            for t in trunks:
                try:
                    cfg = _settings(t, self.db.sealer)
                except UnsealError:
                    log.error("trunk %s: its password does not open with this secret_key", t.name)
                    self._unreadable[t.id] = TrunkRegistrationStatus(
                        trunk_id=t.id,
                        account_id=t.account_id,
                        trunk_name=t.name,
                        registrar=server_part(t.registrar or t.host, t.port, t.transport),
                        state=RegState.failed,
                        last_reason=UNREADABLE,
                        updated_at=self.clock(),
                    )
                    continue
                if cfg is not None:
                    wanted[t.id] = (t, cfg)
            for trunk_id, slot in list(self._slots.items()):
                entry = wanted.get(trunk_id)
                if entry is None or entry[1] != slot.settings:
                    self._drop(slot)
                else:
                    slot.srtp = entry[0].srtp  # not a registration setting: no re-REGISTER
            for trunk_id, (trunk, cfg) in wanted.items():
                if trunk_id not in self._slots:
                    await self._begin(trunk, cfg)

    async def stop(self, within: float = 2.0) -> None:
        """Un-REGISTER every binding, waiting up to ``within`` seconds for the carriers."""
        async with self._lock:
            self._closed = True
            for slot in list(self._slots.values()):
                self._drop(slot)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._by_reg and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - loop.time()))

    # -- status --------------------------------------------------------------------------------

    def status(self, account_id: uuid.UUID | None = None) -> list[TrunkRegistrationStatus]:
        """Every registering trunk (of ``account_id`` if given), by name."""
        every = [s.status for s in self._slots.values()] + list(self._unreadable.values())
        out = [st for st in every if account_id is None or st.account_id == account_id]
        return sorted(out, key=lambda st: (str(st.account_id), st.trunk_name))

    def caller_for_line(self, line: str) -> CallerAuth | None:
        """Who sends an INVITE whose Request-URI carries ``line``: the trunk that registered
        with it (see the module docstring); None for a token no binding of ours has."""
        slot = self._by_line.get(line)
        if slot is None:
            return None
        return trunk_auth(slot.status.account_id, slot.srtp)

    def caller_for_source(self, host: str, port: int) -> CallerAuth | None:
        """Who sends an INVITE from ``host``:``port``: a trunk whose registrar is there (see
        the module docstring); None for any other address."""
        index = self._by_source
        if index is None:
            index = self._by_source = {}
            for slot in self._slots.values():
                for flow in slot.servers:
                    index.setdefault((flow.host.strip("[]").lower(), flow.port), []).append(slot)
        slots = index.get((host.strip("[]").lower(), port))
        if not slots:
            return None
        found = trunk_auth(slots[0].status.account_id, slots[0].srtp)
        for slot in slots[1:]:
            found = found | trunk_auth(slot.status.account_id, slot.srtp)
        return found

    def get(self, trunk_id: uuid.UUID) -> TrunkRegistrationStatus | None:
        slot = self._slots.get(trunk_id)
        return slot.status if slot is not None else self._unreadable.get(trunk_id)

    # -- internals -----------------------------------------------------------------------------

    async def _begin(self, trunk: Trunk, cfg: _Settings) -> None:
        status = TrunkRegistrationStatus(
            trunk_id=trunk.id,
            account_id=trunk.account_id,
            trunk_name=trunk.name,
            registrar=server_part(cfg.domain, cfg.port, cfg.transport),
            state=RegState.resolving,
            updated_at=self.clock(),
        )
        slot = _Slot(trunk.id, cfg, status, srtp=trunk.srtp)
        self._slots[trunk.id] = slot
        self._by_line[slot.line] = slot
        await self._register(slot)

    async def _register(self, slot: _Slot) -> None:
        cfg = slot.settings
        flow = named_flow(cfg.domain, cfg.port, cfg.transport)
        if flow is None:
            self._set(slot, state=RegState.unsupported, last_reason=f"{cfg.transport} trunk")
            return
        resolved: Flow | None = flow
        servers: tuple[Flow, ...] = (flow,)
        if not is_ip(flow.host):
            # RFC 3263: SRV when the trunk names no port. Only servers reachable from the
            # first one's socket are kept: the Via and Contact are that socket's.
            located = await self.dns.locate(cfg.domain, cfg.port, cfg.transport) if self.dns else ()
            resolved = located[0] if located else None
            servers = tuple(
                f for f in located if resolved and f.transport == resolved.transport
                and (":" in f.host) == (":" in resolved.host)
            )  # fmt: skip
        if self._slots.get(slot.trunk_id) is not slot:
            return  # dropped while we looked the name up
        if resolved is None:
            slot.dns_failures += 1
            delay = self._backoff(slot.dns_failures)
            self._set(
                slot,
                state=RegState.unresolved,
                last_reason=f"{cfg.domain} does not resolve",
                failures=slot.dns_failures,
                retry_at=self._wall_in(delay),
            )
            loop = asyncio.get_running_loop()
            slot.retry = loop.call_later(delay, self._retry, slot)
            return
        slot.dns_failures = 0
        ua = self.runner.ua
        try:
            host, port = ua.local_for(resolved)
        except SipError as exc:  # no listener of that transport / IP family
            self._set(slot, state=RegState.unsupported, last_reason=str(exc))
            return
        sent_by = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        params: tuple[tuple[str, str | None], ...] = (
            () if cfg.transport == "UDP" else (("transport", cfg.transport.lower()),)
        )
        domain = f"[{cfg.domain}]" if ":" in cfg.domain else cfg.domain
        explicit_port = None if cfg.port == DEFAULT_PORTS[cfg.transport] else cfg.port
        if cfg.port is None and not is_ip(cfg.domain):
            params = (("transport", cfg.transport.lower()),)  # located by SRV for it
        config = RegistrationConfig(
            registrar=SipUri("sip", None, None, domain, explicit_port, params),
            aor=SipUri("sip", cfg.username, None, domain),
            contact=ua.contact_uri(resolved, user=cfg.username).with_params(("line", slot.line)),
            via=f"SIP/2.0/{cfg.transport} {sent_by}",
            credentials=ClientCredentials(cfg.username, cfg.password),
            expires=self.expires,
            retry_base=self.retry_base,
            retry_max=self.retry_max,
        )
        reg = OutboundRegistration(config, rng=self.rng)
        slot.reg = reg
        slot.servers, slot.server = servers, 0
        self._by_source = None
        self._by_reg[id(reg)] = slot
        self._set(slot, state=RegState.registering, retry_at=None, server=_where(resolved))
        now = self.runner.loop.time()
        ua.add_registration(reg, resolved, now)
        self.runner.pump(now)

    def _retry(self, slot: _Slot) -> None:
        slot.retry = None
        if self._slots.get(slot.trunk_id) is slot and not self._closed:
            task = asyncio.get_running_loop().create_task(self._register(slot))
            task.add_done_callback(_log_failure)

    def _drop(self, slot: _Slot) -> None:
        """Forget the trunk; its binding (if any) is removed at the carrier."""
        self._slots.pop(slot.trunk_id, None)
        self._by_line.pop(slot.line, None)
        self._by_source = None
        if slot.retry is not None:
            slot.retry.cancel()
            slot.retry = None
        reg = slot.reg
        if reg is None:
            return
        now = self.runner.loop.time()
        self.runner.ua.stop_registration(reg, now)
        self.runner.pump(now)
        if reg.state is RegistrationState.STOPPED:  # nothing was bound: no answer to wait for
            self._by_reg.pop(id(reg), None)
            self._set(slot, state=RegState.stopped, expires=None)

    def _on_event(self, event: UaEvent) -> None:
        if not isinstance(event, RegistrationUpdate):
            return
        slot = self._by_reg.get(id(event.registration))
        if slot is None:
            return
        e = event.event
        if isinstance(e, Registered):
            self._set(
                slot,
                state=RegState.registered,
                expires=e.expires,
                last_status=200,
                last_reason=None,
                failures=0,
                retry_at=None,
            )
            log.info("trunk %s: registered for %d s", slot.status.trunk_name, e.expires)
        elif isinstance(e, RegistrationFailed):
            wait = None if e.retry_at is None else e.retry_at - e.at
            if e.status in SERVER_FAILURES and e.retry_at is not None and len(slot.servers) > 1:
                slot.server = (slot.server + 1) % len(slot.servers)
                nxt = slot.servers[slot.server]
                self.runner.ua.move_registration(event.registration, nxt)
                self._set(slot, server=_where(nxt))
            self._set(
                slot,
                state=RegState.failed,
                expires=None,
                last_status=e.status,
                last_reason=e.reason,
                failures=event.registration.failures,
                retry_at=self._wall_in(wait) if wait is not None else None,
            )
            log.warning(
                "trunk %s: registration failed (%s %s), retry in %.0f s",
                slot.status.trunk_name,
                e.status,
                e.reason,
                wait or 0,
            )
        elif isinstance(e, Unregistered):
            del self._by_reg[id(event.registration)]
            self._set(slot, state=RegState.stopped, expires=None, last_status=e.status)
        self._changed.set()

    def _set(self, slot: _Slot, **changes: object) -> None:
        slot.status = replace(slot.status, updated_at=self.clock(), **changes)  # type: ignore[arg-type]

    def _backoff(self, failures: int) -> float:
        cap = min(self.retry_max, self.retry_base * 2.0 ** (failures - 1))
        return cap / 2 + self.rng.uniform(0, cap / 2)  # as OutboundRegistration's

    def _wall_in(self, seconds: float) -> datetime:
        return self.clock() + timedelta(seconds=seconds)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("trunk registration failed", exc_info=task.exception())
