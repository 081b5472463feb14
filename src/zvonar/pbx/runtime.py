"""Start and stop the PBX inside a running Zvonar: SIP listeners, registrar, B2BUA, media.

``zvonar serve`` calls ``await start_pbx(container, PbxConfig(...))`` after the database is
up and ``await runtime.stop()`` on shutdown. The graph::

    SipRunner (UDP + TCP) ── UserAgent ── Registrar ── LocationService ── SqlLocationStore
                                   └── TenantChallenger ── DirectoryCredentialStore (bus)
              └── B2bua ── EmbeddedMediaEngine
                      └── InviteGate (trunk sources by IP, digest for our realms)
                      └── resolving(PbxResolver) (host names via HostResolver, cached)
                            └── RoutingSnapshot (numbers, schemes, staff in memory; bus-refreshed)
                            └── AcdRuntime (queue steps, supervisor actions, queue callbacks)
                            └── OutboundCalls (dial plan, toll-fraud guard, caller ID, trunks)
              └── TrunkRegistrations (REGISTER to carriers that want it)
              └── CallbackWorker (callback requests placed as originations)
                      └── container.bus (journal, notifiers) + journal.recording_path_for
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from zvonar.acd.direct import DirectCalls
from zvonar.acd.runtime import AcdRuntime
from zvonar.callbacks.worker import CallbackWorker, customer_side
from zvonar.calls.b2bua import B2bua
from zvonar.calls.overload import LagMonitor, OverloadGuard
from zvonar.calls.talking import Talking
from zvonar.container import Container
from zvonar.integrations.http_route import HttpRouter
from zvonar.integrations.signing import route_secret
from zvonar.journal.owners import OwnerLease
from zvonar.media.io import EmbeddedMediaEngine
from zvonar.media.prompts import hold_music_path
from zvonar.pbx.blf import Blf
from zvonar.pbx.config import PbxConfig
from zvonar.pbx.credentials import DirectoryCredentialStore, RealmDomains, TenantChallenger
from zvonar.pbx.dns import HostResolver, resolving, system_lookup
from zvonar.pbx.dns_client import DnsClient
from zvonar.pbx.heap import release_heap, settle_heap
from zvonar.pbx.invite_auth import InviteGate, TrunkSources
from zvonar.pbx.location_sql import SqlLocationStore
from zvonar.pbx.outbound_resolver import OutboundCalls
from zvonar.pbx.queues import attach_queues, queue_callback_dialer, queue_runtime
from zvonar.pbx.resolver import PbxResolver
from zvonar.pbx.ring_memory import RingMemory
from zvonar.pbx.snapshot import RoutingSnapshot
from zvonar.pbx.trunk_registration import TrunkRegistrations
from zvonar.sip.io.runner import SipRunner
from zvonar.sip.io.tls import TlsConfig, client_context, server_context
from zvonar.sip.location import Binding, LocationService
from zvonar.sip.registrar import Registrar, RegistrarConfig
from zvonar.sip.ua import DEFAULT_ALLOW, Flow, UserAgent
from zvonar.store.outbox import OutboxRelay

__all__ = ["PbxRuntime", "derive_secret", "start_pbx"]

log = logging.getLogger(__name__)


def derive_secret(master: str, purpose: str) -> bytes:
    """A per-purpose key from the instance secret (nonces, HTTP route signatures)."""
    return hmac.new(master.encode(), purpose.encode(), hashlib.sha256).digest()


@dataclass
class PbxRuntime:
    config: PbxConfig
    runner: SipRunner
    b2bua: B2bua
    engine: EmbeddedMediaEngine
    credentials: DirectoryCredentialStore
    location: SqlLocationStore
    resolver: PbxResolver
    http: HttpRouter
    acd: AcdRuntime
    lag: LagMonitor
    snapshot: RoutingSnapshot
    dns: HostResolver
    registrations: TrunkRegistrations
    callbacks: CallbackWorker
    udp: Flow
    tcp: Flow | None
    tls: Flow | None = None
    blf: Blf | None = None
    relay: OutboxRelay | None = None
    lease: OwnerLease | None = None  # on the journal rows this PBX opens (journal/owners.py)
    _detach: list[Callable[[], None]] = field(default_factory=list)
    _stopped: bool = False

    @property
    def ua(self) -> UserAgent:
        return self.runner.ua

    def lookup(self, aor: str) -> list[Binding]:
        """Live bindings of a canonical AOR (``sip:101@alpha.zvonar``)."""
        return self.ua.lookup(aor, self.runner.loop.time())

    async def stop(self, within: float = 5.0) -> None:
        """End calls, close sockets and the media engine, write pending registrations."""
        if self._stopped:
            return
        self._stopped = True
        if self.relay is not None:
            await self.relay.stop()
        for detach in self._detach:
            detach()
        await self.lag.stop()
        await self.callbacks.stop()
        await self.registrations.stop()
        if self.blf is not None:
            self.blf.close()
        with contextlib.suppress(Exception):
            await self.b2bua.close(within)
        await self.acd.close()
        await self.runner.close()
        await self.engine.close()
        await self.http.aclose()
        await self.location.close()
        await self.resolver.ring_memory.stop()  # the last moves, written
        if self.lease is not None:  # every call has ended and its row landed: let go
            await self.lease.stop()
        release_heap()  # the collector policy of settle_heap ends with the PBX (pbx.heap)


def tls_config(config: PbxConfig) -> TlsConfig | None:
    """SIP over TLS when the PBX has a certificate (``ZVONAR_SIP_TLS_CERT``); carriers are
    checked per ``sip_tls_ca`` / ``sip_tls_verify``, and the certificate is offered to those
    that ask for a client's."""
    if config.sip_tls_cert is None:
        return None
    cert, key = config.sip_tls_cert, config.sip_tls_key
    client = client_context(ca=config.sip_tls_ca, verify=config.sip_tls_verify, cert=cert, key=key)
    return TlsConfig(client=client, server=server_context(cert, key))


async def start_pbx(container: Container, config: PbxConfig | None = None) -> PbxRuntime:
    """Build and start the PBX over ``container`` (see the module docstring)."""
    config = config or PbxConfig()
    loop = asyncio.get_running_loop()
    master = container.settings.effective_secret_key
    tls = tls_config(config)  # a certificate that does not load stops start-up here

    # Other processes' writes from here on (marked before anything below reads the database
    # whole; relayed once the PBX runs).
    relay = None
    if config.event_relay_interval > 0:
        relay = container.outbox.relay(container.bus, interval=config.event_relay_interval)
        await relay.mark()

    credentials = DirectoryCredentialStore(container.db)
    detach = [credentials.attach(container.bus)]
    await credentials.load()

    wall_offset = time.time() - loop.time()
    location = SqlLocationStore(
        container.db,
        wall_offset=wall_offset,
        account_of=credentials.account_for_aor,
        flush_interval=config.location_flush_interval,
    )
    await location.preload()
    extra = [h for h in (config.sip_host, config.sip_advertise) if h]
    registrar = Registrar(
        LocationService(location),
        RegistrarConfig(
            min_expires=config.registration_min_expires,
            default_expires=config.registration_max_expires,
            max_expires=config.registration_max_expires,
            domains=RealmDomains(credentials, extra),
        ),
        wall_offset=wall_offset,
    )
    restored = registrar.load(loop.time())
    challenger = TenantChallenger(
        derive_secret(master, "sip-digest-nonce"),
        credentials,
        algorithms=config.digest_algorithms,
    )
    # REFER (RFC 3515) for blind transfer; NOTIFY answers the phones' own subscriptions;
    # SUBSCRIBE for their busy lamp fields (pbx/blf.py).
    ua = UserAgent(
        registrar=registrar,
        challenger=challenger,
        allow=(*DEFAULT_ALLOW, "REFER", "NOTIFY", "SUBSCRIBE"),
        min_session_expires=config.min_session_expires,
    )
    runner = SipRunner(ua)
    engine = EmbeddedMediaEngine(
        host4=config.rtp_host,
        host6=None,
        advertise4=config.media_advertise,
        port_range=config.rtp_ports,
        media_timeout=config.media_timeout,
        srtp=config.media_srtp,
    )
    http = HttpRouter()
    trunk_sources = TrunkSources(container.db)
    await trunk_sources.load()
    detach.append(trunk_sources.attach(container.bus))
    records = DnsClient.system_or_none(config.dns_servers)
    # Servers of our own answer A/AAAA too; else getaddrinfo does (it reads /etc/hosts).
    lookup = records.addresses if records is not None and config.dns_servers else system_lookup
    transports = ("UDP", "TCP", "TLS") if tls is not None else ("UDP", "TCP")
    dns = HostResolver(records=records, lookup=lookup, transports=transports)
    outbound = OutboundCalls(container.db, credentials, container.contacts.index, dns=dns)
    detach.append(outbound.attach(container.bus))

    acd = queue_runtime(container.db, container.bus, container.acd)
    detach.append(attach_queues(acd, container.bus))
    # Routing data lives in memory, refreshed by the bus: no database read on the call path.
    snapshot = RoutingSnapshot(container.db, flush=container.journal.flush)
    detach.append(snapshot.attach(container.bus))
    await snapshot.preload()

    def account_route_secret(account_id: uuid.UUID) -> str:
        return route_secret(master, account_id)

    talking = Talking()  # who is on a call: the ring strategies pass them over
    detach.append(talking.attach(container.bus))
    DirectCalls(acd, talking)  # and the queues do not offer them calls (acd/direct.py)
    ring_memory = RingMemory(container.db)  # round-robin turns survive a restart
    await ring_memory.load()
    resolver = PbxResolver(
        container.db,
        credentials,
        lambda aor: ua.lookup(aor, loop.time()),
        container.contacts.index,
        http=http,
        route_secret=account_route_secret,
        default_region=config.default_region,
        extension_calls=outbound,
        prompts_dir=container.prompts.account_dir,
        queues=acd,
        snapshot=snapshot,
        talking=talking,
        ring_memory=ring_memory,
    )
    ring_memory.start()
    overload = OverloadGuard(max_calls=config.max_calls, max_lag=config.max_loop_lag)
    lag = LagMonitor(overload)
    gate = InviteGate(ua, credentials, trunk_sources)
    b2bua = B2bua(
        runner,
        engine,
        container.bus,
        resolving(resolver, dns),
        recording_path=container.journal.recording_path_for,
        resolve_timeout=config.resolve_timeout,
        gate=gate,
        overload=overload,
        hold_music=lambda account_id: hold_music_path(
            base_dir=container.prompts.account_dir(account_id)
        ),
    )
    blf = Blf(runner, credentials, talking, forks=b2bua.fork_ids, parked=b2bua.parked_in)
    runner.app = blf.front(b2bua)  # SUBSCRIBEs and their NOTIFYs' answers; the rest: calls
    detach.append(blf.attach(container.bus))

    def devices_changed(account_id: uuid.UUID) -> None:
        acd.devices_changed(account_id)
        blf.devices_changed(account_id)

    location.on_change = devices_changed  # queues and presence follow the phones
    registrations: TrunkRegistrations | None = None
    try:
        tcp: Flow | None
        if config.sip_tcp:
            udp, tcp = await runner.listen_pair(config.sip_host, config.sip_port)
        else:
            udp, tcp = await runner.listen_udp(config.sip_host, config.sip_port), None
        tls_flow = None
        if tls is not None:
            # RFC 5922: a carrier's certificate is checked against the domain it was found by.
            tls_flow = await runner.listen_tls(
                config.sip_host, config.sip_tls_port, tls, server_names=dns.tls_names
            )
        if config.sip_advertise:
            ua.set_local_address("UDP", config.sip_advertise, udp.port)
            if tcp is not None:
                ua.set_local_address("TCP", config.sip_advertise, tcp.port)
            if tls_flow is not None:
                ua.set_local_address("TLS", config.sip_advertise, tls_flow.port)
        await b2bua.start()
        lag.start()
        await acd.start()
        acd.dial_callback = queue_callback_dialer(
            b2bua.originate,
            lambda account_id, call_id, phone: customer_side(
                outbound, account_id, call_id, phone, datetime.now(UTC)
            ),
        )
        registrations = TrunkRegistrations(container.db, runner, dns)
        gate.registered = registrations
        detach.append(registrations.attach(container.bus))
        await registrations.start()
        callbacks = CallbackWorker(
            container.callbacks,
            b2bua,
            resolver,
            outbound,
            container.db,
            credentials,
            lambda aor: ua.lookup(aor, loop.time()),
            container.bus,
        )
        await callbacks.start()
    except BaseException:
        await lag.stop()
        for off in detach:
            off()
        if registrations is not None:
            await registrations.stop()
        with contextlib.suppress(Exception):
            await b2bua.close(1.0)
        await runner.close()
        await engine.close()
        await http.aclose()
        await location.close()
        await acd.close()
        await ring_memory.stop()
        raise
    if relay is not None:
        relay.begin()
    # Held from before the first call is written; a PBX killed with calls up stops renewing
    # it, and whoever sweeps next closes its rows (journal/owners.py).
    lease = container.journal.lease()
    await lease.start()
    # The long-lived objects built above leave the young GC generations (pbx.heap).
    settle_heap()
    log.info(
        "PBX listening on %s:%d (UDP%s)%s, %d registrations restored",
        udp.host,
        udp.port,
        "+TCP" if tcp else "",
        f", TLS on {tls_flow.port}" if tls_flow else "",
        restored,
    )
    return PbxRuntime(
        config=config,
        runner=runner,
        b2bua=b2bua,
        engine=engine,
        credentials=credentials,
        location=location,
        resolver=resolver,
        http=http,
        acd=acd,
        lag=lag,
        snapshot=snapshot,
        dns=dns,
        registrations=registrations,
        callbacks=callbacks,
        blf=blf,
        udp=udp,
        tcp=tcp,
        tls=tls_flow,
        relay=relay,
        lease=lease,
        _detach=detach,
    )
