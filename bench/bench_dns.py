"""Locating a SIP server (RFC 3263) on the call path: what a lookup costs once DNS answered.

Run: .venv/bin/python bench/bench_dns.py [rounds]

Every outbound call through a trunk named by its domain, and every scheme target with a host
name, asks ``HostResolver`` where to send (NAPTR/SRV/A/AAAA). After the first call the
answers come from the resolver's cache (their TTL), so what matters per call is the cached
path: the RFC 2782 ordering drawn afresh each time (so load spreads by weight) and the
addresses of each target. Printed, per call: the sans-IO ordering alone, ``locate`` of a
trunk (SRV: two weighted servers and a standby, one of them dual-stack), ``locate`` of a SIP
URI (NAPTR → SRV), and ``resolve_waves`` of a wave holding one such target. The records
come from an in-memory table, so only our own code is timed.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from zvonar.calls.events import Target, TargetKind
from zvonar.calls.plan import RingTarget, Wave
from zvonar.pbx.dns import HostResolver, named_flow
from zvonar.sip.locate import Naptr, Srv, order_srv, plan_lookup

SRV = {
    "_sip._udp.carrier.example": [
        Srv(10, 60, 5060, "a.carrier.example"),
        Srv(10, 40, 5060, "b.carrier.example"),
        Srv(20, 0, 5060, "standby.carrier.example"),
    ],
    "_sip._tcp.partner.example": [Srv(10, 0, 5080, "pbx.partner.example")],
}
NAPTR = {
    "partner.example": [Naptr(10, 50, "s", "SIP+D2T", "_sip._tcp.partner.example")],
}
ADDRESSES = {
    "a.carrier.example": ["192.0.2.1"],
    "b.carrier.example": ["192.0.2.2", "2001:db8::2"],
    "standby.carrier.example": ["192.0.2.3"],
    "pbx.partner.example": ["198.51.100.7"],
}


class Table:
    async def naptr(self, name: str) -> tuple[list[Naptr], float]:
        return NAPTR.get(name, []), 300.0

    async def srv(self, name: str) -> tuple[list[Srv], float]:
        return SRV.get(name, []), 300.0


async def addresses(name: str) -> list[str]:
    if name not in ADDRESSES:
        raise OSError(f"{name}: no such name")
    return ADDRESSES[name]


def per_call(seconds: float, rounds: int) -> str:
    return f"{seconds / rounds * 1e6:7.2f} µs"


async def main(rounds: int) -> None:
    dns = HostResolver(records=Table(), lookup=addresses, rng=random.Random(1))
    flow = named_flow("partner.example", None)
    assert flow is not None
    target = RingTarget("sip:desk@partner.example", flow, Target(TargetKind.external, "desk"))
    wave = (Wave((target,), 20),)
    # Warm the caches: the first call of a TTL pays the queries, the rest do not.
    assert len(await dns.locate("carrier.example", None, "udp")) == 4
    assert (await dns.resolve_waves(wave))[0].targets[0].fallbacks == ()

    rng = random.Random(2)
    records = SRV["_sip._udp.carrier.example"]
    t0 = time.perf_counter()
    for _ in range(rounds):
        plan_lookup("carrier.example", None, "udp")
        order_srv(records, lambda n: rng.randint(0, n))
    pure = time.perf_counter() - t0

    t0 = time.perf_counter()
    for _ in range(rounds):
        await dns.locate("carrier.example", None, "udp")
    trunk = time.perf_counter() - t0

    t0 = time.perf_counter()
    for _ in range(rounds):
        await dns.locate("partner.example", None, None)
    uri = time.perf_counter() - t0

    t0 = time.perf_counter()
    for _ in range(rounds):
        await dns.resolve_waves(wave)
    waves = time.perf_counter() - t0

    print(f"rounds: {rounds}; cache hits {dns.stats.hits}, queries {dns.stats.misses}")
    print(f"plan + RFC 2782 order (sans-IO)       {per_call(pure, rounds)} per call")
    print(f"locate a trunk by SRV (cached)        {per_call(trunk, rounds)} per call")
    print(f"locate a SIP URI by NAPTR+SRV (cached) {per_call(uri, rounds)} per call")
    print(f"resolve_waves, one named target       {per_call(waves, rounds)} per call")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
