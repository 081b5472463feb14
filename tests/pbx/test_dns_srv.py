"""RFC 3263 server location against a real DNS server (dnsmasq on loopback): NAPTR, SRV in
priority/weight order with every address, the A/AAAA fallback, explicit ports, a service
declared unavailable, TTL caching, a server that does not answer, ringing a SIP URI target
located by NAPTR, and an outbound plan through a trunk located by SRV."""

from __future__ import annotations

import random
import socket
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.sip.peers.harness import free_port
from tests.support.dnsmasq import Zone, dnsmasq, needs_dnsmasq, resolver
from zvonar.accounts.models import Role
from zvonar.app import create_app
from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import CallerAuth, InboundCall, Plan, Reject, RingTarget, Wave
from zvonar.container import Container
from zvonar.directory.models import TrunkAuth
from zvonar.directory.schemas import TrunkIn
from zvonar.pbx.config import PbxConfig, parse_dns_servers
from zvonar.pbx.credentials import DirectoryCredentialStore
from zvonar.pbx.dns import (
    MAX_RECORDS,
    SERVER_SILENCE,
    HostResolver,
    named_flow,
    server_part,
)
from zvonar.pbx.dns_client import DnsClient
from zvonar.pbx.outbound_resolver import CARRIER_FAILURES, OutboundCalls
from zvonar.pbx.runtime import start_pbx
from zvonar.settings import Settings
from zvonar.sip.locate import Naptr, Srv
from zvonar.sip.ua import Flow

from .conftest import seed_account

pytestmark = [pytest.mark.peer, needs_dnsmasq]

UDP_SRV = "_sip._udp.carrier.zvonar.test"
ZONE = Zone(
    naptr=[
        # The partner prefers TCP; SIPS first of all, which we cannot speak (no TLS): skipped.
        ("partner.zvonar.test", 5, 50, "s", "SIPS+D2T", "_sips._tcp.partner.zvonar.test"),
        ("partner.zvonar.test", 10, 50, "s", "SIP+D2T", "_sip._tcp.partner.zvonar.test"),
        ("partner.zvonar.test", 20, 50, "s", "SIP+D2U", "_sip._udp.partner.zvonar.test"),
    ],
    srv=[
        ("_sips._tcp.partner.zvonar.test", "pbx.partner.zvonar.test", 5061, 10, 0),
        ("_sip._tcp.partner.zvonar.test", "pbx.partner.zvonar.test", 5082, 10, 0),
        ("_sip._udp.partner.zvonar.test", "pbx.partner.zvonar.test", 5081, 10, 0),
        # The carrier: two servers sharing the load, a standby behind them.
        (UDP_SRV, "a.carrier.zvonar.test", 5071, 10, 60),
        (UDP_SRV, "b.carrier.zvonar.test", 5072, 10, 40),
        (UDP_SRV, "standby.carrier.zvonar.test", 5073, 20, 0),
    ],
    hosts=[
        ("pbx.partner.zvonar.test", ["127.0.0.20"]),
        ("a.carrier.zvonar.test", ["127.0.0.1"]),
        ("b.carrier.zvonar.test", ["127.0.0.2", "::2"]),
        ("standby.carrier.zvonar.test", ["127.0.0.3"]),
        ("plain.zvonar.test", ["127.0.0.4"]),
        ("closed.zvonar.test", ["127.0.0.5"]),
    ],
    unavailable=["_sip._udp.closed.zvonar.test"],
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_srv_in_priority_order_with_every_address(tmp_path: Path) -> None:
    with dnsmasq(ZONE, tmp_path) as port:
        dns = resolver(port, rng=random.Random(7))
        flows = await dns.locate("Carrier.Zvonar.Test.", None, "udp")
    # Priority 10 first (a and b in weighted order), the standby last; b's IPv6 address
    # is a destination of its own, right after its IPv4 one.
    assert set(flows[:3]) == {
        Flow("UDP", "127.0.0.1", 5071),
        Flow("UDP", "127.0.0.2", 5072),
        Flow("UDP", "::2", 5072),
    }
    assert flows.index(Flow("UDP", "127.0.0.2", 5072)) + 1 == flows.index(Flow("UDP", "::2", 5072))
    assert flows[3:] == (Flow("UDP", "127.0.0.3", 5073),)


async def test_weights_share_the_first_place(tmp_path: Path) -> None:
    """60/40 weights: over many fresh orderings, a is first about 60% of the time."""
    with dnsmasq(ZONE, tmp_path) as port:
        dns = resolver(port, rng=random.Random(11))
        firsts: Counter[int] = Counter()
        for _ in range(2000):  # cached records, ordered afresh by each lookup
            flows = await dns.locate("carrier.zvonar.test", None, "udp")
            firsts[flows[0].port] += 1
    assert abs(firsts[5071] / 2000 - 0.6) < 0.05, firsts
    assert set(firsts) == {5071, 5072}  # never the standby


async def test_naptr_picks_the_transport_we_speak(tmp_path: Path) -> None:
    with dnsmasq(ZONE, tmp_path) as port:
        dns = resolver(port)
        flows = await dns.locate("partner.zvonar.test", None, None)
        # sips asks for TLS only; we have no TLS transport, so nothing is reachable.
        secure = await dns.locate("partner.zvonar.test", None, None, secure=True)
    assert flows == (Flow("TCP", "127.0.0.20", 5082), Flow("UDP", "127.0.0.20", 5081))
    assert secure == ()


async def test_a_pbx_with_tls_prefers_sips_and_remembers_the_domain(tmp_path: Path) -> None:
    """With a TLS listener the partner's first NAPTR choice (SIPS+D2T) is taken; the TLS
    server's address keeps the domain its certificate must name (RFC 5922 §4), not the SRV
    target's."""
    with dnsmasq(ZONE, tmp_path) as port:
        dns = resolver(port, transports=("UDP", "TCP", "TLS"))
        flows = await dns.locate("partner.zvonar.test", None, None)
        secure = await dns.locate("partner.zvonar.test", None, None, secure=True)
        by_ip = await dns.locate("127.0.0.20", 5061, "tls")
    assert flows == (
        Flow("TLS", "127.0.0.20", 5061),
        Flow("TCP", "127.0.0.20", 5082),
        Flow("UDP", "127.0.0.20", 5081),
    )
    assert secure == (Flow("TLS", "127.0.0.20", 5061),)
    assert by_ip == (Flow("TLS", "127.0.0.20", 5061),)
    assert dns.tls_names == {("127.0.0.20", 5061): "partner.zvonar.test"}


async def test_fallbacks_explicit_ports_and_a_closed_service(tmp_path: Path) -> None:
    with dnsmasq(ZONE, tmp_path) as port:
        dns = resolver(port)
        # No NAPTR, no SRV: the address at 5060 over UDP (§4.2).
        assert await dns.locate("plain.zvonar.test", None, None) == (
            Flow("UDP", "127.0.0.4", 5060),
        )
        # An explicit port: A/AAAA only, never the SRV records the name has.
        assert await dns.locate("carrier.zvonar.test", 5099, "udp") == ()  # it has no A
        assert await dns.locate("a.carrier.zvonar.test", 5099, "tcp") == (
            Flow("TCP", "127.0.0.1", 5099),
        )
        # SRV target ".": decidedly not available — no fallback to its A record.
        assert await dns.locate("closed.zvonar.test", None, "udp") == ()
        assert await dns.locate("nowhere.zvonar.test", None, None) == ()
        assert await dns.locate("192.0.2.9", None, "tcp") == (Flow("TCP", "192.0.2.9", 5060),)


async def test_answers_are_kept_for_their_ttl(tmp_path: Path) -> None:
    clock = Clock()
    with dnsmasq(ZONE, tmp_path) as port:
        dns = resolver(port, clock=clock, ttl=300)
        first = await dns.locate("partner.zvonar.test", None, None)
        asked = dns.stats.misses
        clock.now += 29  # the zone's TTL is 30 s
        assert await dns.locate("partner.zvonar.test", None, None) == first
        assert dns.stats.misses == asked
        clock.now += 2
        await dns.locate("partner.zvonar.test", None, None)
        assert dns.stats.misses > asked  # NAPTR and SRV asked again


async def test_a_silent_dns_server_makes_targets_unavailable_without_raising() -> None:
    # Nothing listens there: every query times out; the answer is "nothing", cached.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))  # bound and never read: queries vanish
        client = DnsClient([hole.getsockname()], timeout=0.3)
        dns = HostResolver(records=client, lookup=client.addresses, timeout=0.5)
        assert await dns.locate("carrier.zvonar.test", None, "udp") == ()
        failures = dns.stats.failures
        assert failures >= 1
        assert await dns.locate("carrier.zvonar.test", None, "udp") == ()
        assert dns.stats.failures == failures  # the failure was cached, not asked again


async def test_a_sip_uri_target_rings_where_naptr_and_srv_point(tmp_path: Path) -> None:
    flow = named_flow("partner.zvonar.test", None)
    assert flow is not None
    located = RingTarget(
        "sip:reception@partner.zvonar.test", flow, Target(TargetKind.external, "reception")
    )
    pinned_flow = named_flow("plain.zvonar.test", 5090, "tcp")  # a TCP trunk with its port
    assert pinned_flow is not None
    pinned = RingTarget(
        "sip:desk@plain.zvonar.test:5090", pinned_flow, Target(TargetKind.external, "desk")
    )
    closed_flow = named_flow("closed.zvonar.test", None, "udp")
    assert closed_flow is not None
    closed = RingTarget(
        "sip:x@closed.zvonar.test;transport=udp", closed_flow, Target(TargetKind.external, "x")
    )
    with dnsmasq(ZONE, tmp_path) as port:
        dns = resolver(port)
        waves = await dns.resolve_waves((Wave((located, pinned), 20), Wave((closed,), 20)))
        only = await dns.resolve_waves((Wave((pinned,), 20),))
    # The closed service's wave is gone; the others ring where DNS says, URIs unchanged.
    ((first, second),) = [w.targets for w in waves]
    assert first.flow == Flow("TCP", "127.0.0.20", 5082) and first.uri == located.uri
    # NAPTR's second choice is the target's next server should the first fail (§4.3), and
    # the wave leaves a silent first server after SERVER_SILENCE.
    assert first.fallbacks == (Flow("UDP", "127.0.0.20", 5081),)
    assert waves[0].silence == SERVER_SILENCE
    assert second.flow == Flow("TCP", "127.0.0.4", 5090) and second.fallbacks == ()
    # A wave without spare servers keeps waiting as it did.
    assert only[0].silence is None


async def test_an_outbound_plan_fails_over_along_the_carriers_servers(
    container: Container, tmp_path: Path
) -> None:
    alpha = await seed_account(container)
    await container.directory.create_trunk(
        alpha.principal,
        TrunkIn(
            name="carrier",
            host="carrier.zvonar.test",  # no port: located by SRV
            auth_mode=TrunkAuth.ip,
            allowed_sources=["192.0.2.99"],
        ),
    )
    creds = DirectoryCredentialStore(container.db)
    await creds.load()
    call = InboundCall(
        call_id=f"c-{uuid.uuid4().hex[:8]}",
        dialed="+74957654321",
        caller="101",
        caller_display=None,
        from_uri="sip:101@alpha.zvonar",
        to_uri="sip:+74957654321@alpha.zvonar",
        source=Flow("UDP", "127.0.0.1", 5099),
        started_at=datetime.now(UTC),
        auth=CallerAuth(account_id=alpha.account_id, user="101", realm=alpha.realm),
    )

    async def internal(_call: InboundCall, _account: uuid.UUID, _realm: str) -> Reject:
        return Reject(404, "Not Found")

    with dnsmasq(ZONE, tmp_path) as port:
        outbound = OutboundCalls(
            container.db, creds, container.contacts.index, dns=resolver(port, rng=random.Random(1))
        )
        plan = await outbound(call, internal)
    assert isinstance(plan, Plan) and plan.fail_over == CARRIER_FAILURES
    # One wave per server (4 at most), in SRV order; the standby is the last resort.
    flows = [w.targets[0].flow for w in plan.waves]
    assert len(flows) == 4 and flows[-1] == Flow("UDP", "127.0.0.3", 5073)
    # The Request-URI names the carrier's domain and the transport it was located for.
    assert {w.targets[0].uri for w in plan.waves} == {
        "sip:+74957654321@carrier.zvonar.test;transport=udp"
    }


def test_server_part_and_dns_server_settings() -> None:
    assert server_part("carrier.example", None, "UDP") == "carrier.example;transport=udp"
    assert server_part("carrier.example", 5070, "tcp") == "carrier.example:5070"
    assert server_part("2001:db8::1", None, "udp") == "[2001:db8::1]"
    assert server_part("192.0.2.1", 5060, "udp") == "192.0.2.1:5060"
    assert parse_dns_servers(" 127.0.0.1:5353, [::1]:53,10.0.0.1 ") == (
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("10.0.0.1", 53),
    )
    assert parse_dns_servers("") == ()
    for bad in ("127.0.0.1:0", "127.0.0.1:x", ":53", "[::1]:70000"):
        with pytest.raises(ValueError, match="not a DNS server"):
            parse_dns_servers(bad)
    assert Settings(dns_servers="127.0.0.1:5353").pbx_config().dns_servers == (("127.0.0.1", 5353),)
    with pytest.raises(ValueError, match="not a DNS server"):
        Settings(dns_servers="127.0.0.1:99999")


async def test_the_api_shows_where_a_trunks_calls_go(container: Container, tmp_path: Path) -> None:
    alpha = await seed_account(container)
    beta = await seed_account(container, "beta", number="+74951234568")
    made = {}
    for name, host, port in (
        ("by-srv", "carrier.zvonar.test", None),
        ("by-name", "a.carrier.zvonar.test", 5099),
        ("by-ip", "192.0.2.10", 5070),
        ("nowhere", "nowhere.zvonar.test", None),
    ):
        trunk = await container.directory.create_trunk(
            alpha.principal,
            TrunkIn(
                name=name,
                host=host,
                port=port,
                auth_mode=TrunkAuth.ip,
                allowed_sources=["192.0.2.99"],
            ),
        )
        made[name] = trunk.id

    async def token(account: uuid.UUID, email: str) -> dict[str, str]:
        user = await container.accounts.create_user(
            account, email=email, name="Admin", role=Role.admin, password="a-long-password-1"
        )
        issued = await container.accounts.create_token(
            account, name=email, role=Role.admin, created_by=user.id
        )
        return {"Authorization": f"Bearer {issued.secret}"}

    admin = await token(alpha.account_id, "admin@alpha.example")
    stranger = await token(beta.account_id, "admin@beta.example")
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
        url = f"/api/v1/pbx/trunks/{made['by-srv']}/servers"
        r = await api.get(url, headers=admin)  # no PBX in this process
        assert r.status_code == 503 and r.json()["error"]["code"] == "pbx_unavailable"
        r = await api.get(url, headers=stranger)  # another's trunk: not found, PBX or not
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    with dnsmasq(ZONE, tmp_path) as port:
        config = PbxConfig(
            sip_port=free_port(), media_timeout=0, dns_servers=(("127.0.0.1", port),)
        )
        rt = await start_pbx(container, config)
        app = create_app(container)
        app.state.pbx = rt
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
                got = {}
                for name, trunk_id in made.items():
                    r = await api.get(f"/api/v1/pbx/trunks/{trunk_id}/servers", headers=admin)
                    assert r.status_code == 200, r.text
                    got[name] = r.json()
                r = await api.get(f"/api/v1/pbx/trunks/{made['by-srv']}/servers", headers=stranger)
                assert r.status_code == 404
        finally:
            await rt.stop()
    srv = got["by-srv"]
    assert srv["lookup"] == "srv" and srv["name"] == "by-srv"
    # The carrier's three servers' four addresses, at most four tried: the standby last.
    assert len(srv["servers"]) == 4
    assert {s["port"] for s in srv["servers"][:3]} == {5071, 5072}
    assert srv["servers"][3] == {"transport": "UDP", "address": "127.0.0.3", "port": 5073}
    assert got["by-name"]["lookup"] == "address"
    assert got["by-name"]["servers"] == [{"transport": "UDP", "address": "127.0.0.1", "port": 5099}]
    assert got["by-ip"]["lookup"] == "ip"
    assert got["by-ip"]["servers"] == [{"transport": "UDP", "address": "192.0.2.10", "port": 5070}]
    assert got["nowhere"] == {
        "trunk_id": str(made["nowhere"]),
        "name": "nowhere",
        "lookup": "srv",
        "servers": [],
    }


async def test_an_answer_with_thousands_of_records_is_cut_to_the_best() -> None:
    """A DNS answer over TCP may carry thousands of SRV records; ordering them all (RFC 2782
    is quadratic) would stall the event loop, so only the best priorities are kept."""

    class Flood:
        async def naptr(self, name: str) -> tuple[list[Naptr], float]:
            return [], 0.0

        async def srv(self, name: str) -> tuple[list[Srv], float]:
            noise = [Srv(20 + i % 50, 1, 5060, f"n{i}.flood.test") for i in range(5000)]
            return [*noise, Srv(10, 0, 5099, "best.flood.test")], 60.0

    async def addresses(name: str) -> list[str]:
        return ["192.0.2.50"] if name == "best.flood.test" else ["192.0.2.51"]

    dns = HostResolver(records=Flood(), lookup=addresses)
    flows = await dns.locate("flood.test", None, "udp")
    assert flows[0] == Flow("UDP", "192.0.2.50", 5099) and len(flows) == 2  # deduplicated
    kept = dns._cache["SRV", "_sip._udp.flood.test"]
    assert len(kept.found) == MAX_RECORDS
