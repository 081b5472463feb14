"""Locating a SIP server from a URI (RFC 3263 §4, the client side), sans-IO.

The caller runs the DNS queries this module names and hands back what they found; this
module decides which queries apply and orders the answers. The three paths of §4:

* an IP literal, or a URI with an explicit port: no NAPTR, no SRV; the host's A/AAAA (an IP
  is its own) at that port, or the transport's default port (§4.2);
* a ``transport`` parameter but no port: SRV for that transport (``_sip._udp.<host>``…),
  and when the domain has no such records, A/AAAA at the default port (§4.2);
* neither: NAPTR first (§4.1). Records whose service we do not speak are discarded, the rest
  ordered by order, then preference, and their replacements queried for SRV. With no usable
  NAPTR, SRV for each transport we speak, in our order; with no SRV either, A/AAAA at 5060
  over UDP (5061 over TLS for ``sips``).

SRV answers are ordered by RFC 2782: lowest priority first, and within a priority a
weighted random order (zero weights first, then a running sum against a uniform draw). A
lone record whose target is ``.`` means the service is decidedly not available: the
result is then empty and no A/AAAA fallback is tried. The ordered list is what the client
fails over along (§4.3): the next destination when a request times out, the transport
fails or the server answers 503.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PORTS",
    "Destination",
    "LookupPlan",
    "Naptr",
    "Srv",
    "after_naptr",
    "from_srv",
    "is_ip",
    "order_srv",
    "plan_lookup",
]

# NAPTR service field → our transport name (RFC 3263 §4.1; case-insensitive).
NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS"}
SRV_PREFIXES = {"UDP": "_sip._udp.", "TCP": "_sip._tcp.", "TLS": "_sips._tcp."}
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}


@dataclass(frozen=True, slots=True)
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str  # a domain name, without the trailing dot; "" or "." for none


@dataclass(frozen=True, slots=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str  # a domain name, without the trailing dot; "." for "not available here"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to send: ``host`` is an IP literal or a name whose A/AAAA are still to find."""

    transport: str  # "UDP" | "TCP" | "TLS"
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class LookupPlan:
    """The queries a URI calls for, in order: ``direct`` alone (no SRV/NAPTR at all), or
    NAPTR of ``naptr`` (when set), then SRV of ``srv``'s names, then ``fallback``."""

    direct: Destination | None = None
    naptr: str | None = None
    srv: tuple[tuple[str, str], ...] = ()  # (transport, SRV name), in preference order
    fallback: tuple[Destination, ...] = ()


_V4_CHARS = frozenset("0123456789.")


def is_ip(host: str) -> bool:
    """``host`` is an IP literal (IPv6 with or without brackets). A name is told apart without
    parsing (an IPv4 literal is digits and dots, an IPv6 one has colons): a failed parse
    raises, and this runs for every destination of every call through a named server."""
    bare = host.strip("[]")
    if ":" not in bare and not _V4_CHARS.issuperset(bare):
        return False
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return False
    return True


def _name(domain: str) -> str:
    return domain.rstrip(".").lower()


def plan_lookup(
    host: str,
    port: int | None,
    transport: str | None,
    *,
    secure: bool = False,
    supported: Sequence[str] = ("UDP", "TCP"),
) -> LookupPlan:
    """What to look up for a URI's ``host``, ``port`` and ``transport`` parameter (None when
    absent); ``secure``: a ``sips`` URI (TLS only). ``supported``: the transports we can
    send on, in our order of preference."""
    bare = host.strip("[]")
    numeric = is_ip(bare)
    chosen = transport.upper() if transport else None
    if secure and (chosen is not None or port is not None or numeric):
        chosen = "TLS"  # sips: TLS whatever the parameter says; a bare name still asks NAPTR
    if numeric or port is not None:
        # §4.1/§4.2: a numeric address or an explicit port: A/AAAA only (an IP is its own);
        # with no transport given, UDP (TLS over TCP for sips).
        proto = chosen or "UDP"
        address = bare if numeric else _name(bare)
        return LookupPlan(
            direct=Destination(proto, address, port or DEFAULT_PORTS.get(proto, 5060))
        )
    name = _name(bare)
    if chosen is not None:
        srv = ((chosen, SRV_PREFIXES[chosen] + name),) if chosen in SRV_PREFIXES else ()
        return LookupPlan(
            srv=srv, fallback=(Destination(chosen, name, DEFAULT_PORTS.get(chosen, 5060)),)
        )
    wanted = ["TLS"] if secure else [t for t in supported if t in SRV_PREFIXES]
    proto = "TLS" if secure else "UDP"
    return LookupPlan(
        naptr=name,
        srv=tuple((t, SRV_PREFIXES[t] + name) for t in wanted),
        fallback=(Destination(proto, name, DEFAULT_PORTS[proto]),),
    )


def after_naptr(
    records: Iterable[Naptr], *, secure: bool = False, supported: Sequence[str] = ("UDP", "TCP")
) -> tuple[tuple[str, str], ...]:
    """The SRV names NAPTR ``records`` lead to, best first, as (transport, name): only
    terminal ``s`` records of services we speak (SIPS only for ``secure``)."""
    usable: list[Naptr] = []
    for rec in records:
        proto = NAPTR_SERVICES.get(rec.service.upper())
        if proto is None or proto not in supported or "s" not in rec.flags.lower():
            continue
        if secure and proto != "TLS":
            continue
        if _name(rec.replacement) in ("", "."):
            continue
        usable.append(rec)
    usable.sort(key=lambda r: (r.order, r.preference))
    out: list[tuple[str, str]] = []
    for rec in usable:
        pair = (NAPTR_SERVICES[rec.service.upper()], _name(rec.replacement))
        if pair not in out:
            out.append(pair)
    return tuple(out)


def order_srv(records: Iterable[Srv], draw: Callable[[int], int]) -> list[Srv]:
    """``records`` in the order to try them (RFC 2782); ``draw(n)`` returns a uniform
    integer in ``0..n`` inclusive. Empty when the service is decidedly not available."""
    # A "." target says "not here" (RFC 2782): alone, the service is unavailable; beside
    # others it is noise. Either way it is never a destination.
    recs = [r for r in records if _name(r.target) not in ("", ".")]
    out: list[Srv] = []
    for priority in sorted({r.priority for r in recs}):
        # Zero weights first: they are picked only when the draw is 0 (RFC 2782's rule).
        group = sorted((r for r in recs if r.priority == priority), key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = draw(total)
            running = 0
            for i, rec in enumerate(group):
                running += rec.weight
                if running >= pick:
                    out.append(group.pop(i))
                    break
            else:  # a draw out of range: take the last rather than loop forever
                out.append(group.pop())
    return out


def from_srv(transport: str, ordered: Iterable[Srv]) -> list[Destination]:
    """Destinations for SRV records already in order (a port of 0 reaches nobody: skipped)."""
    return [Destination(transport, _name(r.target), r.port) for r in ordered if r.port > 0]
