"""Trunk and SIP URI host names (pbx/dns.py): the system resolver for ``localhost``, an injected
one for failures and timeouts; the TTL cache, shared queries, plans with names, and outbound
calls through a trunk known by name."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime

import pytest

from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import (
    CallerAuth,
    CallStep,
    InboundCall,
    Plan,
    Rating,
    Reject,
    RingTarget,
    StepResult,
    StepResultKind,
    Wave,
)
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.dns import HostResolver, named_flow, resolving
from zvonar.pbx.outbound_resolver import OutboundCalls
from zvonar.sip.ua import Flow

from .conftest import seed_account


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDns:
    """name → addresses; a missing name fails like NXDOMAIN; counts the queries."""

    def __init__(self, table: dict[str, list[str]], delay: float = 0.0) -> None:
        self.table = table
        self.delay = delay
        self.queries: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.queries.append(host)
        if self.delay:
            await asyncio.sleep(self.delay)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def target(host: str, port: int = 5060, who: str = "x") -> RingTarget:
    flow = named_flow(host, port)
    assert flow is not None
    return RingTarget(f"sip:{who}@{host}:{port}", flow, Target(TargetKind.external, who))


async def test_localhost_resolves_through_the_system_and_is_cached() -> None:
    clock = Clock()
    dns = HostResolver(ttl=30, clock=clock)
    first = await dns.addresses("LocalHost.")
    assert first[0] == "127.0.0.1"  # IPv4 first; ::1 may follow
    assert await dns.addresses("localhost") == first
    assert (dns.stats.misses, dns.stats.hits, dns.stats.failures) == (1, 1, 0)
    clock.now += 31  # the TTL ran out: asked again
    assert await dns.addresses("localhost") == first
    assert dns.stats.misses == 2
    # IP literals are never looked up
    assert await dns.addresses("[::1]") == ("::1",)
    assert await dns.addresses("192.0.2.7") == ("192.0.2.7",)
    assert dns.stats.misses == 2


async def test_failure_is_cached_briefly_and_never_raises() -> None:
    clock = Clock()
    fake = FakeDns({"sip.carrier.test": ["192.0.2.10"]})
    dns = HostResolver(negative_ttl=5, lookup=fake, clock=clock)
    assert await dns.addresses("nx.carrier.test") == ()
    assert await dns.addresses("nx.carrier.test") == ()
    assert fake.queries == ["nx.carrier.test"]  # the failure was cached
    clock.now += 6
    fake.table["nx.carrier.test"] = ["192.0.2.11"]  # now it exists
    assert await dns.addresses("nx.carrier.test") == ("192.0.2.11",)
    assert dns.stats.failures == 1
    # An answer without a usable address is a failure too.
    fake.table["junk.test"] = ["not-an-ip"]
    assert await dns.addresses("junk.test") == ()


async def test_a_slow_server_times_out_and_queries_are_shared() -> None:
    fake = FakeDns({"slow.test": ["192.0.2.1"]}, delay=30)
    dns = HostResolver(timeout=0.3, lookup=fake)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(dns.addresses("slow.test") for _ in range(10)))
    assert answers == [()] * 10
    assert fake.queries == ["slow.test"]  # ten callers, one query
    assert loop.time() - started < 5  # bounded by the timeout (generous: a loaded machine)


async def test_plans_with_names_are_resolved_and_dead_names_skipped() -> None:
    fake = FakeDns({"pbx.branch.test": ["192.0.2.20"]})
    dns = HostResolver(lookup=fake)
    ip = target("127.0.0.1", 5099, "ip")
    good = target("pbx.branch.test", 5070, "good")
    bad = target("nx.test", 5060, "bad")
    waves = (Wave((bad,), 5), Wave((ip, good, bad), 10), Wave((good,), 15))
    out = await dns.resolve_waves(waves)
    assert [w.timeout for w in out] == [10, 15]  # the wave of only a dead name is gone
    assert out[0].targets[0] == ip
    resolved = out[0].targets[1]
    assert resolved.flow == Flow("UDP", "192.0.2.20", 5070)
    assert resolved.uri == "sip:good@pbx.branch.test:5070"  # the Request-URI keeps the name
    assert out[1].targets[0].flow.host == "192.0.2.20"
    assert sorted(fake.queries) == ["nx.test", "pbx.branch.test"]  # one query per name
    only_ips = (Wave((ip,), 5),)
    assert await dns.resolve_waves(only_ips) is only_ips


async def test_resolving_wraps_a_resolver() -> None:
    dns = HostResolver(lookup=FakeDns({"a.test": ["192.0.2.30"]}))
    account = uuid.uuid4()
    answers: dict[str, Plan | Reject] = {
        "1": Plan(account, (Wave((target("a.test"),), 5),)),
        "2": Plan(account, (Wave((target("b.test"),), 5),)),
        "3": Reject(404, "Not Found"),
    }

    async def inner(call: InboundCall) -> Plan | Reject:
        return answers[call.dialed]

    wrapped = resolving(inner, dns)
    one = await wrapped(_call("1"))
    assert isinstance(one, Plan) and one.waves[0].targets[0].flow.host == "192.0.2.30"
    two = await wrapped(_call("2"))
    assert isinstance(two, Plan) and two.waves == ()  # nothing reachable: the final step
    assert await wrapped(_call("3")) == Reject(404, "Not Found")


def test_named_flow() -> None:
    assert named_flow("[2001:db8::1]", None, "tcp") == Flow("TCP", "2001:db8::1", 5060)
    assert named_flow("Sip.Carrier.TEST.", 5080) == Flow("UDP", "sip.carrier.test", 5080)
    assert named_flow("sip.carrier.test", None, "tls") == Flow("TLS", "sip.carrier.test", 5061)
    assert named_flow("sip.carrier.test", 5061, "ws") is None
    with pytest.raises(ValueError):
        HostResolver(timeout=0)


def test_cache_hit_cost() -> None:
    """A figure for the report: a cached name costs microseconds (printed with -s)."""

    async def run() -> float:
        dns = HostResolver()
        await dns.addresses("localhost")
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            await dns.addresses("localhost")
        return (time.perf_counter() - t0) / n

    per_hit = asyncio.run(run())
    print(f"DNS cache hit: {per_hit * 1e6:.2f} us")
    assert per_hit < 1e-3


def _call(dialed: str, account: uuid.UUID | None = None, user: str = "101") -> InboundCall:
    return InboundCall(
        call_id=f"c{dialed}",
        dialed=dialed,
        caller=user,
        caller_display=None,
        from_uri=f"sip:{user}@alpha.zvonar",
        to_uri=f"sip:{dialed}@alpha.zvonar",
        source=Flow("UDP", "127.0.0.1", 5099),
        started_at=datetime(2024, 3, 4, 10, 0, tzinfo=UTC),
        auth=CallerAuth(account_id=account, user=user, realm="alpha.zvonar") if account else None,
    )


async def _internal(_call: InboundCall, _account: uuid.UUID, _realm: str) -> Reject:
    return Reject(404, "Not Found")


async def test_outbound_through_a_trunk_known_by_name(container: Container) -> None:
    alpha = await seed_account(container)
    for name, host in (("a-dead", "nx.carrier.test"), ("b-live", "localhost")):
        await container.directory.create_trunk(
            alpha.principal,
            TrunkIn(
                name=name,
                host=host,
                port=5090,
                auth_mode=TrunkAuth.ip,
                allowed_sources=["192.0.2.99"],
            ),
        )
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    fake = FakeDns({"localhost": ["127.0.0.1"]})
    outbound = OutboundCalls(
        container.db, creds, container.contacts.index, dns=HostResolver(lookup=fake)
    )
    plan = await outbound(_call("+74957654321", alpha.account_id), _internal)
    assert isinstance(plan, Plan)
    ((ring,),) = [w.targets for w in plan.waves]
    # "a-dead" sorts first among equals but does not resolve: the next trunk carries it.
    assert ring.flow == Flow("UDP", "127.0.0.1", 5090)
    assert ring.uri == "sip:+74957654321@localhost:5090"
    assert fake.queries == ["nx.carrier.test", "localhost"]

    fake.table.clear()
    dns = HostResolver(lookup=fake)
    outbound = OutboundCalls(container.db, creds, container.contacts.index, dns=dns)
    nothing = await outbound(_call("+74957654321", alpha.account_id), _internal)
    # 503 for the phone, journalled under the callee: a Plan that rings nobody
    assert isinstance(nothing, Plan) and not nothing.waves and nothing.final.status == 503
    assert nothing.dialed == "+74957654321"
    assert outbound.guard.active(alpha.account_id) == 0  # the slot went back

    # Without a resolver only IP-literal trunks count, as before: none here.
    plain = OutboundCalls(container.db, creds, container.contacts.index)
    refused = await plain(_call("+74957654321", alpha.account_id), _internal)
    assert isinstance(refused, Plan) and not refused.waves and refused.final.status == 503


class ScriptedRoute:
    """A live route handing out ``steps`` in order, recording the results it was told."""

    def __init__(self, *steps: CallStep, forever: CallStep | None = None) -> None:
        self.steps = list(steps)
        self.forever = forever
        self.results: list[StepResult | None] = []
        self.who: list[Target] = []

    async def next(self, result: StepResult | None) -> CallStep:
        self.results.append(result)
        if self.forever is not None:
            return self.forever
        return self.steps.pop(0)

    def connected(self, by: Target) -> None:
        self.who.append(by)

    @property
    def path(self) -> tuple[str, ...]:
        return ("scripted",)

    @property
    def rating(self) -> Rating | None:
        return None


async def test_a_live_route_gets_resolved_waves_and_skips_dead_ones() -> None:
    dns = HostResolver(lookup=FakeDns({"a.test": ["192.0.2.40"]}))
    account = uuid.uuid4()
    end = Reject(480, "Temporarily Unavailable", account_id=account)
    inner = ScriptedRoute(Wave((target("nx.test"),), 5), Wave((target("a.test"),), 7), end)

    async def resolver(_call: InboundCall) -> Plan:
        return Plan(account, (), route=inner)

    plan = await resolving(resolver, dns)(_call("1"))
    assert isinstance(plan, Plan) and plan.route is not None and plan.route is not inner
    route = plan.route
    step = await route.next(None)
    # The dead name's wave was reported back as unavailable; the next one comes resolved.
    assert isinstance(step, Wave) and step.timeout == 7
    assert step.targets[0].flow.host == "192.0.2.40"
    assert inner.results == [None, StepResult(StepResultKind.unavailable)]
    no_answer = StepResult(StepResultKind.no_answer)
    assert await route.next(no_answer) == end
    assert inner.results[-1] == no_answer
    who = Target(TargetKind.employee, "Anna", uuid.uuid4())
    route.connected(who)
    assert inner.who == [who] and route.path == ("scripted",) and route.rating is None

    stuck = ScriptedRoute(forever=Wave((target("nx.test"),), 5))

    async def stuck_resolver(_call: InboundCall) -> Plan:
        return Plan(account, (), route=stuck)

    plan = await resolving(stuck_resolver, dns)(_call("2"))
    assert isinstance(plan, Plan) and plan.route is not None
    assert await plan.route.next(None) == end  # never spins on names that do not resolve
