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
from urllib.parse import SplitResult, urlsplit

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


def check_static(url: str, *, allow_private: bool = False) -> tuple[SplitResult, IPAddress | None]:
    """What the URL alone tells, without DNS: it parses, is http(s) with a host, carries no
    credentials, and names no non-public address (a literal IP, ``localhost``) unless
    ``allow_private``. Returns the parts and the literal address, if the host is one; raises
    :class:`UnsafeTarget`. Schemes are checked with it when written (routing/writer.py), and
    :func:`check_url` starts with it when a call asks."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port out of range or not a number)
    except ValueError as exc:
        raise UnsafeTarget("invalid_url", f"bad URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("invalid_url", "only http(s) URLs with a host are allowed")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("invalid_url", "credentials in the URL are not allowed")
    host = parts.hostname.rstrip(".")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if allow_private:
        return parts, literal
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761 §6.3: always loopback
        raise UnsafeTarget("loopback", f"{host} is a loopback address")
    reason = refusal(literal) if literal is not None else None
    if reason is not None:
        raise UnsafeTarget(reason, f"{host} is a non-public address ({reason})")
    return parts, literal


async def check_url(
    url: str, *, allow_private: bool = False, resolver: Resolver = system_resolver
) -> Target:
    """Parse, resolve and check ``url``; raises :class:`UnsafeTarget`."""
    parts, literal = check_static(url, allow_private=allow_private)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
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
