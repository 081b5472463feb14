"""Server-side request forgery guard for URLs customers give us.

A customer's route URL must not make Zvonar call its own admin endpoints, the cloud metadata
service or the office LAN. We resolve the host once, refuse every non-public address, and the
caller connects to the checked IP itself (so a second, rebinding DNS answer cannot redirect it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# RFC 6598 shared address space (carrier-grade NAT); ``is_private`` does not cover it everywhere.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeTarget(Exception):
    """The URL or the address it resolves to may not be called; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to ``ip``:``port``, present ``host`` (Host header, TLS SNI)."""

    scheme: str
    host: str
    port: int
    ip: str
    path: str  # path and query, at least "/"

    @property
    def pinned_url(self) -> str:
        addr = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{addr}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "ipv4_mapped"
        if ip.sixtofour is not None or ip.teredo is not None:
            return "tunnel_address"
    checks = (
        ("loopback", ip.is_loopback),
        ("link_local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("cgnat", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        # Covers RFC 1918, IPv6 ULA fc00::/7, documentation and benchmarking ranges.
        ("private", ip.is_private),
        ("reserved", ip.is_reserved or not ip.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos: list[Any] = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_url(
    url: str, *, allow_private: bool = False, resolver: Resolver = system_resolver
) -> Target:
    """Parse, resolve and check ``url``; raises :class:`UnsafeTarget`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget("invalid_url", f"bad URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("invalid_url", "only http(s) URLs with a host are allowed")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("invalid_url", "credentials in the URL are not allowed")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    try:
        addresses = [str(literal)] if literal is not None else await resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget("dns_error", f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise UnsafeTarget("dns_error", f"{host} has no address")
    # Every address must pass: a host with one public and one private record is refused, so the
    # answer order cannot be used to slip through.
    for addr in addresses:
        reason = refusal(ipaddress.ip_address(addr.split("%", 1)[0]))
        if reason is not None and not allow_private:
            raise UnsafeTarget(reason, f"{host} resolves to a non-public address ({reason})")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, host, port, addresses[0].split("%", 1)[0], path)
