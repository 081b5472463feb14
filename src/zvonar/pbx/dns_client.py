"""The DNS queries RFC 3263 needs (NAPTR, SRV, A/AAAA), over dnspython's asyncio resolver.

``pbx/dns.py`` decides what to ask (through ``sip/locate.py``) and caches; this module only
asks. It keeps no cache of its own (dnspython's is off) so the one in ``HostResolver`` is the
only place a TTL lives. A name that does not exist, or has no records of the type, is an
empty answer; a server that fails or does not answer within ``timeout`` raises ``OSError``,
which the resolver caches briefly as "nothing there".

The servers are the system's (``/etc/resolv.conf``) unless given: ``ZVONAR_DNS_SERVERS``
(a ``host[:port]`` list, ``pbx/config.py``) sets them; that is how tests point the PBX at a
local dnsmasq.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver
from dns.rdtypes.IN.NAPTR import NAPTR
from dns.rdtypes.IN.SRV import SRV

from zvonar.sip.locate import Naptr, Srv

__all__ = ["DnsClient"]

log = logging.getLogger(__name__)


class DnsClient:
    """``await client.srv(name)`` → (records, ttl); see the module."""

    def __init__(self, servers: Sequence[tuple[str, int]] = (), *, timeout: float = 2.0) -> None:
        if servers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
        else:
            # Raises dns.resolver.NoResolverConfiguration without a usable resolv.conf.
            resolver = dns.asyncresolver.Resolver()
        resolver.cache = None
        resolver.lifetime = timeout
        self.resolver = resolver

    @classmethod
    def system_or_none(cls, servers: Sequence[tuple[str, int]] = ()) -> DnsClient | None:
        """A client, or None when there are no servers to ask (no resolv.conf, none given)."""
        try:
            return cls(servers)
        except (dns.resolver.NoResolverConfiguration, OSError) as exc:
            log.warning("DNS: no resolver configuration (%s): SRV/NAPTR lookups are off", exc)
            return None

    async def _query(
        self, name: str, rdtype: dns.rdatatype.RdataType
    ) -> tuple[list[dns.rdata.Rdata], float]:
        try:
            answer = await self.resolver.resolve(
                name, rdtype, search=False, raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], 0.0
        except dns.exception.DNSException as exc:  # timeout, SERVFAIL from all, bad reply
            raise OSError(f"{name} {rdtype.name}: {exc}") from exc
        rrset = answer.rrset
        if rrset is None:
            return [], 0.0
        return list(rrset), float(rrset.ttl)

    async def naptr(self, name: str) -> tuple[list[Naptr], float]:
        rdatas, ttl = await self._query(name, dns.rdatatype.NAPTR)
        out = [
            Naptr(
                r.order,
                r.preference,
                r.flags.decode("ascii", "replace"),
                r.service.decode("ascii", "replace"),
                r.replacement.to_text(omit_final_dot=True),
            )
            for r in rdatas
            if isinstance(r, NAPTR)
        ]
        return out, ttl

    async def srv(self, name: str) -> tuple[list[Srv], float]:
        rdatas, ttl = await self._query(name, dns.rdatatype.SRV)
        out = [
            Srv(
                r.priority,
                r.weight,
                r.port,
                r.target.to_text(omit_final_dot=True) or ".",
            )
            for r in rdatas
            if isinstance(r, SRV)
        ]
        return out, ttl

    async def addresses(self, name: str) -> list[str]:
        """A, then AAAA, of ``name`` (both asked at once); OSError when both fail."""
        results = await asyncio.gather(
            self._query(name, dns.rdatatype.A),
            self._query(name, dns.rdatatype.AAAA),
            return_exceptions=True,
        )
        found: list[str] = []
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                found.extend(r.to_text() for r in result[0])
        if not found and len(errors) == len(results):
            raise OSError(str(errors[0]))
        return found
